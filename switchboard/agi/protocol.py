"""
The FastAGI wire protocol: one connection from Asterisk per call.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver

from switchboard.agi.environment import read_lines
from switchboard.agi.errors import AGIConnectionLost, AGITimeout
from switchboard.agi.reply import HANGUP, ReplyReader, Unexpected
from switchboard.agi.session import AGISession


class FastAGIProtocol(LineReceiver):
    """
    Reads the environment, starts the factory's handler with an
    L{AGISession}, carries commands and replies, and closes the connection
    when the handler is done.

    Limits (from the factory): lines longer than C{max_line} bytes, more
    than C{max_env_lines} environment lines, or C{idle_timeout} seconds
    without a byte from Asterisk while the environment or a reply is
    awaited close this connection (with a logged reason) and fail the
    session's pending commands. Nothing received affects other sessions.

    @ivar factory: the L{FastAGIFactory} (set by C{buildProtocol}).
    @ivar session: the L{AGISession}, once the environment is complete.
    """

    delimiter = b"\n"  # Asterisk ends lines with "\n"; a stray "\r" is dropped
    log = Logger()

    factory = None
    session = None

    def __init__(self):
        self._env = {}
        self._env_lines = 0
        self._env_tail = b""
        self._reader = ReplyReader()
        self._refused = False
        self._closing = False
        self._idle_call = None
        self._idle_timeout = None
        self._idle_from = 0.0
        self._peer = None

    # Connection

    def connectionMade(self):
        self._peer = self.transport.getPeer()
        if not self.factory.allowed(self._peer):
            self._refused = True
            self._closing = True
            self.log.warn("refused FastAGI connection from {peer}", peer=_describe(self._peer))
            _abort(self.transport)
            return
        self.MAX_LENGTH = self.factory.max_line
        keep_alive = getattr(self.transport, "setTcpKeepAlive", None)
        if keep_alive is not None:
            keep_alive(True)  # notice a vanished Asterisk during long EXECs
        self.watchReplies(self.factory.idle_timeout)

    def dataReceived(self, data):
        if self._closing:
            return
        self._idle_from = self.factory.clock.seconds()
        if self.session is None:
            data = self._environmentData(data)
            if not data or self._closing:
                return
        elif (not self._buffer and data.endswith(b"\n") and data.count(b"\n") == 1
              and len(data) <= self.MAX_LENGTH):
            self.lineReceived(data[:-1])  # the usual segment: one whole reply
            return
        LineReceiver.dataReceived(self, data)

    def connectionLost(self, reason=None):
        self._closing = True
        self._stopIdleTimer()
        if self.session is not None:
            self.session.connectionClosed(AGIConnectionLost("the AGI connection was lost"))

    def lineLengthExceeded(self, line):
        self._abort(f"line longer than {self.MAX_LENGTH} bytes")

    # The environment, read a block at a time (it comes in one or two
    # segments; line-by-line dispatch cost more than the rest of a call).

    def _environmentData(self, data: bytes) -> bytes:
        """
        Take the environment lines in C{data}; return the bytes after the
        blank line that ends it (for the reply reader), or C{b""}.
        """
        lines = (self._env_tail + data).split(b"\n")
        self._env_tail = lines.pop()
        end = _blank_line(lines)
        block = lines if end is None else lines[:end]
        longest = self.MAX_LENGTH
        widest = max(block, key=len, default=b"")
        if len(widest) > longest:
            self.lineLengthExceeded(widest)
            return b""
        self._env_lines += len(block)
        limit = self.factory.max_env_lines
        if self._env_lines > limit:
            self._abort(f"environment longer than {limit} lines")
            return b""
        text = b"\n".join(block).decode("utf-8", "replace")
        for line in read_lines(text, self._env):
            self._ignored(line)
        if end is None:
            if len(self._env_tail) > longest:
                self.lineLengthExceeded(self._env_tail)
            return b""
        rest = b"\n".join(lines[end + 1:] + [self._env_tail])
        self._env_tail = b""
        self._startSession()
        return rest

    def _ignored(self, line: str):
        self.log.warn(
            "FastAGI from {peer}: ignoring environment line {line!r}",
            peer=_describe(self._peer),
            line=line.strip()[:200],
        )

    # Lines

    def lineReceived(self, line):
        if self._closing:
            return
        if line.endswith(b"\r"):
            line = line[:-1]
        self._replyLine(line.decode("utf-8", "replace"))

    def _replyLine(self, text):
        event = self._reader.feed(text)
        if event is None:
            return
        if event is HANGUP:
            self.session.hangupReceived()
        elif isinstance(event, Unexpected):
            if event.line:
                self.log.warn(
                    "AGI {script} on {channel}: ignoring unexpected line {line!r}",
                    script=self.session.script,
                    channel=self.session.channel,
                    line=event.line[:200],
                )
        else:
            self.session.replyReceived(event)

    # The session

    def _startSession(self):
        self._idle_timeout = None
        self.session = AGISession(
            self._env, self, idle_timeout=self.factory.idle_timeout, peer=self._peer
        )
        self._env = {}
        d = defer.maybeDeferred(self.factory.dispatch, self.session)
        d.addErrback(
            lambda f: self.log.failure("FastAGI dispatch failed", f)
        )
        d.addCallback(lambda _: self.session.drain())
        d.addCallback(self._handlerDone)

    def _handlerDone(self, ignored):
        if self._closing:
            return
        self._closing = True
        self._stopIdleTimer()
        self.session.connectionClosed(AGIConnectionLost("the AGI session has finished"))
        self.transport.loseConnection()

    # Link used by the session

    def sendLine(self, line):
        if self._closing:
            return
        self.transport.write(line + b"\n")

    def watchReplies(self, timeout):
        """
        Close the connection if Asterisk sends nothing for C{timeout}
        seconds (restarted by every byte received); L{None} stops watching.
        """
        # One timer per connection, moved only when the limit gets earlier:
        # bytes and commands just note the time, and the timer, when it
        # fires, waits on for what is left (a few attribute writes per
        # command instead of a new timer each).
        self._idle_timeout = timeout
        if timeout is None or self._closing:
            return
        clock = self.factory.clock
        now = self._idle_from = clock.seconds()
        deadline = now + timeout
        if self._idle_call is None:
            self._idle_call = clock.callLater(timeout, self._idleExpired)
        elif self._idle_call.getTime() > deadline:
            self._idle_call.reset(timeout)

    def _stopIdleTimer(self):
        self._idle_timeout = None
        if self._idle_call is not None:
            if self._idle_call.active():
                self._idle_call.cancel()
            self._idle_call = None

    def _idleExpired(self):
        self._idle_call = None
        if self._idle_timeout is None or self._closing:
            return  # nothing awaited: the timer lapses until the next command
        left = self._idle_from + self._idle_timeout - self.factory.clock.seconds()
        if left > 0:
            self._idle_call = self.factory.clock.callLater(left, self._idleExpired)
            return
        waiting = "the environment" if self.session is None else "a reply"
        self._abort(
            f"no data from Asterisk for {self._idle_timeout:g} s while waiting for {waiting}",
            AGITimeout,
        )

    def _abort(self, reason, error=AGIConnectionLost):
        """Close this connection at once, logging why."""
        if self._closing:
            return
        self._closing = True
        self._stopIdleTimer()
        session = self.session
        self.log.warn(
            "closing FastAGI connection from {peer} (script {script}, channel {channel}): "
            "{reason}",
            peer=_describe(self._peer),
            script=session.script if session else "?",
            channel=session.channel if session else "?",
            reason=reason,
        )
        if session is not None:
            session.connectionClosed(error(reason))
        _abort(self.transport)


def _blank_line(lines):
    """The index of the first empty (or lone CR) line, or L{None}."""
    found = None
    for blank in (b"", b"\r"):
        try:
            index = lines.index(blank)
        except ValueError:
            continue
        found = index if found is None else min(found, index)
    return found


def _abort(transport):
    abort = getattr(transport, "abortConnection", None)
    if abort is not None:
        abort()
    else:
        transport.loseConnection()


def _describe(address) -> str:
    host = getattr(address, "host", None)
    port = getattr(address, "port", None)
    if host is None:
        return str(address)
    return f"{host}:{port}" if port is not None else str(host)
