"""
The FastAGI wire protocol: one connection from Asterisk per call.
"""

from __future__ import annotations

from twisted.internet import defer, tcp
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver

from switchboard.agi.environment import read_lines
from switchboard.agi.errors import AGIConnectionLost, AGITimeout
from switchboard.agi.reply import _COMMON, HANGUP, AGIReply, ReplyReader, Unexpected
from switchboard.agi.session import AGISession
from switchboard.text import printable


_NEVER = float("inf")


class FastAGIProtocol(LineReceiver):
    """
    Reads the environment, starts the factory's handler with an
    L{AGISession}, carries commands and replies, and closes the connection
    when the handler is done.

    Limits (from the factory): lines longer than C{max_line} bytes, more
    than C{max_env_lines} environment lines, or C{idle_timeout} seconds
    without a byte from Asterisk while the environment or a reply is
    awaited close this connection (with a logged reason) and fail the
    session's pending commands; so does an environment not complete
    C{env_timeout} seconds after the connect. Nothing received affects
    other sessions.

    A reply line can only answer a command already sent: lines that
    arrived in the same read as the bytes before the command went out
    (a caller-ID name with a line feed and a forged C{200 result=...})
    are dropped and logged, never taken as the next command's reply.

    @ivar factory: the L{FastAGIFactory} (set by C{buildProtocol}).
    @ivar session: the L{AGISession}, once the environment is complete.
    """

    delimiter = b"\n"  # Asterisk ends lines with "\n"; a stray "\r" is dropped
    log = Logger()

    factory = None
    session = None

    # Per connection; these defaults are replaced as it goes.
    _env_lines = 0
    _env_tail = b""
    _refused = False
    _closing = False
    _timer = None  # the connection's one timer: environment and idle limits
    _timer_at = _NEVER  # when it fires
    _env_deadline = None  # when the environment must be complete, until it is
    _idle_timeout = None
    _idle_from = 0.0
    _seconds = None  # the factory's clock's seconds()
    _peer = None
    counted = False  # in the factory's connection counts
    _reads = 0  # reads so far; a command remembers the read it was sent in
    _sent_in = -1
    _write = None  # the transport's write, or sendNow (see connectionMade)

    def __init__(self):
        self._env = {}
        self._reader = ReplyReader()

    @property
    def peer(self):
        """The address Asterisk connected from."""
        return self._peer

    # Connection

    def connectionMade(self):
        self._peer = self.transport.getPeer()
        if not self.factory.allowed(self._peer):
            self._refused = True
            self._closing = True
            self.factory.refuse("allowlist", self._peer, "refused FastAGI connection from {peer}")
            _abort(self.transport)
            return
        if not self.factory.admit(self):
            self._refused = True
            self._closing = True
            _abort(self.transport)
            return
        self.counted = True
        self._write = sender(self.transport)
        self._seconds = self.factory.clock.seconds
        self.MAX_LENGTH = self.factory.max_line
        keep_alive = getattr(self.transport, "setTcpKeepAlive", None)
        if keep_alive is not None:
            keep_alive(True)  # notice a vanished Asterisk during long EXECs
        # Both limits on the environment, on the connection's one timer.
        env_timeout, idle_timeout = self.factory.env_timeout, self.factory.idle_timeout
        now = self._idle_from = self._seconds()
        self._env_deadline = now + env_timeout
        self._idle_timeout = idle_timeout
        self._wake(env_timeout if idle_timeout is None else min(env_timeout, idle_timeout))

    def dataReceived(self, data):
        if self._closing:
            return
        self._reads += 1
        self._idle_from = self._seconds()
        if self.session is None:
            data = self._environmentData(data)
            if not data or self._closing:
                return
        elif (data[-1:] == b"\n" and b"\n" not in (line := data[:-1]) and not self._buffer
              and len(data) <= self.MAX_LENGTH):
            # The usual segment: one whole reply, and the usual reply, one
            # seen before (what ReplyReader.feed would answer, looked up
            # here; a command is in flight, sent in an earlier read).
            reply = _COMMON.get(line.decode("utf-8", "replace"))
            if reply is not None and not self._reader.in_reply:
                self._idle_timeout = None  # answered: nothing awaited now
                self.session.replyReceived(reply)
            else:
                self.lineReceived(line)
            return
        LineReceiver.dataReceived(self, data)

    def connectionLost(self, reason=None):
        self._closing = True
        self._stopTimer()
        self.factory.release(self)
        if self.session is not None:
            self.session.connectionClosed(_LOST)

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
            line=printable(line.strip()[:200]),
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
        if event.__class__ is AGIReply and self._sent_in != self._reads:
            self._idle_timeout = None  # answered: nothing awaited now
            self.session.replyReceived(event)  # the usual line: a command's 200 reply
            return
        if event is None:
            return
        if event is HANGUP:
            self.session.hangupReceived()
        elif self._sent_in == self._reads and not isinstance(event, Unexpected):
            # Received before the command in flight was sent: no answer to it.
            self.log.warn(
                "AGI {script} on {channel}: dropping reply {line!r} that arrived before "
                "any command was sent (a forged line in a caller-ID name?)",
                script=printable(self.session.script),
                channel=self.session.channel,
                line=printable(getattr(event, "line", None) or str(event))[:200],
            )
        elif isinstance(event, Unexpected):
            if event.line:
                self.log.warn(
                    "AGI {script} on {channel}: ignoring unexpected line {line!r}",
                    script=printable(self.session.script),
                    channel=self.session.channel,
                    line=printable(event.line[:200]),
                )
        else:
            self._idle_timeout = None
            self.session.replyReceived(event)

    # The session

    def _startSession(self):
        self._idle_timeout = None
        self._env_deadline = None  # (the timer may still fire for it, and go on)
        self.factory.environmentDone(self)
        self.session = AGISession(
            self._env, self, idle_timeout=self.factory.idle_timeout, peer=self._peer
        )
        self._env = {}
        if not self.factory.authorize(self.session):
            # Nothing run, SWITCHBOARD_RESULT left unset: the dialplan
            # serves the call natively.
            self._closing = True
            self._stopTimer()
            self.session.connectionClosed(_REFUSED)
            self.transport.loseConnection()
            return
        try:
            d = self.factory.dispatch(self.session)
        except BaseException:
            d = defer.fail()
        d.addCallbacks(self._handlerReturned, self._dispatchFailed)

    def _dispatchFailed(self, failure):
        self.log.failure("FastAGI dispatch failed", failure)
        self._handlerReturned(None)

    def _handlerReturned(self, ignored):
        session = self.session
        if session.idle:
            self._handlerDone(None)  # the usual end: every command answered
        else:
            session.drain().addCallback(self._handlerDone)

    def _handlerDone(self, ignored):
        if self._closing:
            return
        self._closing = True
        self._stopTimer()
        self.session.connectionClosed(_FINISHED)
        self.transport.loseConnection()

    # Link used by the session

    def sendLine(self, line):
        if self._closing:
            return
        self._sent_in = self._reads
        self._write(line + b"\n")

    def sendCommand(self, data, timeout):
        """
        Send command line C{data} (without its newline) and wait for its
        reply at most C{timeout} seconds without a byte from Asterisk
        (L{None}: no limit): L{sendLine} and L{watchReplies} in one.
        """
        if self._closing:
            return
        self._sent_in = self._reads
        self._write(data + b"\n")
        self._idle_timeout = timeout
        if timeout is not None:
            now = self._idle_from = self._seconds()
            if self._timer_at > now + timeout:
                self._wake(timeout)

    def watchReplies(self, timeout):
        """
        Close the connection if Asterisk sends nothing for C{timeout}
        seconds (restarted by every byte received); L{None} stops watching.
        """
        # One timer per connection, moved only when a limit gets earlier:
        # bytes and commands just note the time, and the timer, when it
        # fires, waits on for what is left (a few attribute writes per
        # command instead of a new timer each). The same timer keeps the
        # environment's limit while it is read.
        self._idle_timeout = timeout
        if timeout is None or self._closing:
            return
        now = self._idle_from = self._seconds()
        if self._timer_at > now + timeout:
            self._wake(timeout)

    def _wake(self, delay):
        """Have the timer fire C{delay} seconds from now."""
        if self._timer is None:
            self._timer = self.factory.clock.callLater(delay, self._timerExpired)
        else:
            self._timer.reset(delay)
        self._timer_at = self._timer.getTime()

    def evict(self, reason):
        """The factory closes this connection (still sending its environment)."""
        self._abort(reason)

    def _stopTimer(self):
        self._idle_timeout = None
        self._env_deadline = None
        self._timer_at = _NEVER
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None

    def _timerExpired(self):
        self._timer = None
        self._timer_at = _NEVER
        if self._closing:
            return
        now = self._seconds()
        left = _NEVER
        if self._env_deadline is not None:
            if now >= self._env_deadline:
                self._abort(f"no complete environment {self.factory.env_timeout:g} s after "
                            "connecting", AGITimeout)
                return
            left = self._env_deadline - now
        if self._idle_timeout is not None:
            idle = self._idle_from + self._idle_timeout - now
            if idle <= 0:
                waiting = "the environment" if self.session is None else "a reply"
                self._abort(f"no data from Asterisk for {self._idle_timeout:g} s while "
                            f"waiting for {waiting}", AGITimeout)
                return
            left = min(left, idle)
        if left != _NEVER:
            self._wake(left)
        # else nothing awaited: the timer lapses until the next command

    def _abort(self, reason, error=AGIConnectionLost):
        """Close this connection at once, logging why."""
        if self._closing:
            return
        self._closing = True
        self._stopTimer()
        session = self.session
        message = ("closing FastAGI connection from {peer} (script {script}, channel "
                   "{channel}): {reason}")
        if session is None:
            # Before the environment: anyone on the host can cause these by
            # the hundred; logged at most once a minute per address.
            self.factory.warn("abort", self._peer, message, script="?", channel="?",
                              reason=reason)
        else:
            self.log.warn(message, peer=_describe(self._peer),
                          script=printable(session.script), channel=session.channel,
                          reason=reason)
        if session is not None:
            session.connectionClosed(error(reason))
        _abort(self.transport)


#: Why a session's connection closed; the session fails what waits with
#: a new exception of the same type and message (L{AGISession.connectionClosed}).
_FINISHED = AGIConnectionLost("the AGI session has finished")
_REFUSED = AGIConnectionLost("the AGI session was refused")
_LOST = AGIConnectionLost("the AGI connection was lost")


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


def sender(transport):
    """
    How to write to C{transport}: its C{write}, or for a TCP connection of
    Twisted's reactors a write that sends at once when nothing is waiting
    in the transport's buffer.

    Twisted's C{write} only buffers: the reactor is asked to watch the
    socket for writability (an C{epoll_ctl}), sends on its next turn, and
    stops watching (another C{epoll_ctl}), for each command of a call.
    A command is a few dozen bytes sent when nothing else is in flight, so
    the socket takes it at once: sending it there and then is what
    asyncio's transports do. Anything the socket does not take at once (a
    full buffer, an error) goes to the transport's C{write} as before, so
    the order of bytes and the handling of a broken connection are the
    reactor's.
    """
    sock = getattr(transport, "socket", None)
    if type(transport) is not tcp.Server or sock is None or not all(
            hasattr(transport, name) for name in _BUFFER_STATE):
        return transport.write
    write = transport.write
    send = sock.send

    def sendNow(data: bytes):
        t = transport
        if (t.dataBuffer or t._tempDataLen or t.TLS or t.producer is not None
                or t.disconnecting or t._writeDisconnected or not t.connected):
            write(data)
            return
        try:
            sent = send(data)
        except OSError:  # would block, or the connection broke: the reactor finds out
            sent = 0
        if sent < len(data):
            write(data[sent:])

    return sendNow


#: What L{sender} looks at in a transport before sending past its buffer.
_BUFFER_STATE = ("dataBuffer", "_tempDataLen", "TLS", "producer", "disconnecting",
                 "_writeDisconnected", "connected")


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
