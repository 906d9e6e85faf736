"""
One FastAGI call: its environment and the commands sent on its channel.
"""

from __future__ import annotations

from collections import deque
from typing import Dict, Optional

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from switchboard.agi.commands import AGICommands, encode_command
from switchboard.agi.environment import arguments, script_and_query
from switchboard.agi.errors import AGIConnectionLost, AGIError, AGIHangup
from switchboard.agi.interfaces import IAGISession
from switchboard.agi.reply import AGIReply

_DEFAULT = object()


class _Command(defer.Deferred):
    """
    A command line waiting to be sent, or waiting for its reply: the
    Deferred its issuer holds, which fires with the (converted) reply.
    """

    def __init__(self, session, line: str, data: bytes, channel: bool, idle_timeout,
                 convert=None, raw=False):
        defer.Deferred.__init__(self, session._cancel)
        self.line = line
        self.data = data
        self.channel = channel
        self.raw = raw
        self.idle_timeout = idle_timeout
        self.convert = convert

    def fire(self, outcome):
        """
        Fire once (with the converted reply), unless the waiter cancelled.
        """
        if self.called:
            return
        if isinstance(outcome, Exception):
            self.errback(outcome)
            return
        if self.convert is not None:
            try:
                outcome = self.convert(outcome)
            except Exception:
                self.errback()
                return
        self.callback(outcome)


@implementer(IAGISession)
class AGISession(AGICommands):
    """
    A FastAGI session: what Asterisk told about the call, and the commands.

    Commands are sent one at a time, in the order they were issued; each
    returns a Deferred that fires with its reply. Once the caller has hung
    up (Asterisk's C{HANGUP} notice) or the connection has closed, commands
    still queued and every command issued afterwards fail with
    L{AGIHangup} (L{AGIConnectionLost} for a closed connection).

    @ivar env: the environment, C{agi_} prefix stripped (C{env["channel"]},
        C{env["callerid"]}, C{env["uniqueid"]}...).
    @ivar args: the C{AGI()} arguments (C{agi_arg_1} ... C{agi_arg_N}).
    @ivar script: the script name from C{agi_network_script}: path without
        query string and leading C{/} (C{"alarm"}).
    @ivar query: the query string of C{agi_network_script} as a dict.
    @ivar hungup: C{True} once the caller hung up or the session ended.
    @ivar closed: C{True} once the connection to Asterisk is gone.
    @ivar idle_timeout: seconds to wait for Asterisk's reply bytes before
        giving up (L{None}: no limit).
    @ivar peer: the address Asterisk connected from (for logging).
    """

    log = Logger()

    def __init__(self, env: Dict[str, str], link=None, *, idle_timeout=300.0, peer=None):
        """
        @param env: environment with the C{agi_} prefix already stripped.
        @param link: where command lines go: an object with C{sendLine(bytes)}
            and C{watchReplies(timeout)} (the protocol); C{watchReplies} gets
            the idle limit of the command in flight, or L{None} when none is.
        """
        self.env = dict(env)
        self.args = arguments(self.env)
        self.script, self.query = script_and_query(self.env.get("network_script", ""))
        self.hungup = False
        self.closed = False
        self.idle_timeout = idle_timeout
        self.peer = peer
        self._link = link
        self._current: Optional[_Command] = None
        self._queue = deque()
        self._hangup_waiters = []
        self._drain_waiters = []

    def __repr__(self) -> str:
        return f"<AGISession {self.script!r} {self.channel!r}>"

    @property
    def channel(self) -> str:
        """The channel name, for logging (C{"?"} when Asterisk sent none)."""
        return self.env.get("channel", "?")

    # What the handler uses

    def when_hungup(self) -> defer.Deferred:
        """
        A Deferred that fires (with L{None}) when the caller hangs up, or the
        session ends, whichever comes first; at once if that already
        happened.
        """
        if self.hungup:
            return defer.succeed(None)
        d = defer.Deferred()
        self._hangup_waiters.append(d)
        return d

    def send_command(self, line: str, *, idle_timeout=_DEFAULT) -> defer.Deferred:
        """
        Send one raw command line, e.g. C{'SAY ALPHA "abc" ""'}.

        @param idle_timeout: seconds this command may go without a byte from
            Asterisk (default: the session's), L{None} for no limit.
        @return: Deferred firing with the L{AGIReply}; it fails with
            L{AGIHangup} on C{511}, on C{result=-1} after the caller hung
            up, or when the connection is lost; with L{AGICommandError} on
            C{510}/C{520}; with L{AGIArgumentError} (nothing sent) if C{line}
            contains CR, LF or NUL or is too long.
        """
        try:
            return self._execute(line, idle_timeout=idle_timeout)
        except Exception:
            return defer.fail()

    def drain(self) -> defer.Deferred:
        """
        A Deferred that fires when no command is in flight or queued.
        """
        if self._current is None and not self._queue:
            return defer.succeed(None)
        d = defer.Deferred()
        self._drain_waiters.append(d)
        return d

    # The command queue

    def _execute(self, line: str, *, channel=False, idle_timeout=_DEFAULT, convert=None,
                 raw=False):
        """
        Queue command C{line}; see L{AGICommands}. With C{raw}, a C{200}
        reply goes to C{convert} as it is, C{result=-1} included: the
        command tells a hangup from a failure itself (C{STREAM FILE} of a
        missing file, C{RECORD FILE} ended by a hangup).
        """
        data = encode_command(line)
        if self.closed:
            return defer.fail(AGIConnectionLost(f"{line}: the AGI connection is closed"))
        if self.hungup:
            return defer.fail(AGIHangup(f"{line}: the caller hung up"))
        if idle_timeout is _DEFAULT:
            idle_timeout = self.idle_timeout
        command = _Command(self, line, data, channel, idle_timeout, convert, raw)
        if self._current is None and not self._queue:
            self._send(command)  # the usual case: nothing in flight
        else:
            self._queue.append(command)
        return command

    def _cancel(self, command: _Command):
        # A queued command is simply not sent. One in flight cannot be
        # recalled: its reply will still come, and is dropped.
        try:
            self._queue.remove(command)
        except ValueError:
            pass

    def _send(self, command: _Command):
        self._current = command
        self._link.sendLine(command.data)
        self._link.watchReplies(command.idle_timeout)

    def _sendNext(self):
        while self._current is None and self._queue:
            command = self._queue.popleft()
            if not command.called:
                self._send(command)
        if self._current is None:
            self._link.watchReplies(None)
            if self._drain_waiters:
                self._fireAll(self._drain_waiters, None)

    @staticmethod
    def _fireAll(waiters, result):
        if not waiters:
            return
        pending = list(waiters)
        del waiters[:]
        for d in pending:
            if not d.called:
                d.callback(result)

    # Events from the protocol

    def replyReceived(self, reply):
        """
        Asterisk answered the command in flight.

        @param reply: an L{AGIReply}, or the L{AGIError} a reply stands for
            (C{510}, C{520}: L{AGICommandError}; C{511}: L{AGIHangup}).
        """
        command = self._current
        if command is None:
            self.log.warn(
                "AGI {script} on {channel}: reply with no command pending: {reply!r}",
                script=self.script,
                channel=self.channel,
                reply=reply,
            )
            return
        self._current = None
        outcome = self._interpret(command, reply)
        # Send what was queued before anything the waiter issues on firing.
        self._sendNext()
        command.fire(outcome)

    def _interpret(self, command: _Command, reply):
        if reply.__class__ is AGIReply and reply.result != "-1":
            return reply  # the usual reply, first
        if isinstance(reply, AGIError):
            return reply
        if command.raw:
            return reply
        if isinstance(reply, AGIReply) and reply.result == "-1":
            if self.hungup:
                return AGIHangup(f"{command.line}: result=-1 after the caller hung up")
            if command.channel or reply.data == "hangup":
                return AGIHangup(f"{command.line}: result=-1 (hangup or failure)")
        return reply

    def hangupReceived(self):
        """
        Asterisk said C{HANGUP}: the caller is gone. The command in flight
        still gets its reply; queued ones are dropped.
        """
        if self.hungup:
            return
        self.hungup = True
        self.log.info(
            "AGI {script}: caller on {channel} hung up", script=self.script, channel=self.channel
        )
        self._dropQueue(lambda c: AGIHangup(f"{c.line}: the caller hung up"))
        self._fireAll(self._hangup_waiters, None)
        if self._current is None:
            self._fireAll(self._drain_waiters, None)

    def connectionClosed(self, reason: AGIConnectionLost):
        """
        The connection is gone (or being closed): fail whatever waits.
        """
        if self.closed:
            return
        self.closed = True
        self.hungup = True
        current, self._current = self._current, None
        if current is not None:
            current.fire(type(reason)(*reason.args))
        self._dropQueue(lambda c: type(reason)(*reason.args))
        self._fireAll(self._hangup_waiters, None)
        self._fireAll(self._drain_waiters, None)

    def _dropQueue(self, error):
        queued = list(self._queue)
        self._queue.clear()
        for command in queued:
            command.fire(error(command))
