"""
One FastAGI call: its environment and the commands sent on its channel,
and L{drive}, which runs a handler's coroutine.
"""

from __future__ import annotations

import contextvars
from collections import deque
from typing import Dict, Optional

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from switchboard.agi.commands import MAX_COMMAND_BYTES, AGICommands, _nothing, encode_command
from switchboard.agi.environment import arguments, script_and_query
from switchboard.agi.errors import AGIConnectionLost, AGIError, AGIHangup
from switchboard.agi.interfaces import IAGISession
from switchboard.agi.reply import AGIReply

_DEFAULT = object()

#: Where a Deferred keeps its callbacks (C{callbacks} before Twisted 25.5).
_CALLBACKS = "_callbacks" if "_callbacks" in vars(defer.Deferred()) else "callbacks"


def _cancel(command):
    command.session._cancel(command)


class _Command(defer.Deferred):
    """
    A command line waiting to be sent, or waiting for its reply: the
    Deferred its issuer holds, which fires with the (converted) reply.

    A coroutine run by L{drive} that awaits it is resumed with the outcome
    directly (L{waiter}), without a callback: the Deferred's result is
    then L{None}, as it is once C{ensureDeferred}'s callback has taken
    it. A callback added meanwhile, C{callback}, C{errback} or C{cancel}
    put the coroutine back first in the chain as an ordinary callback.
    """

    waiter = None  # the _Run to resume with the outcome, while it awaits this

    if _CALLBACKS != "_callbacks":  # Twisted before 25.5 named them "callbacks"
        _callbacks = property(lambda self: self.callbacks)

    def __init__(self, session, line: str, data: bytes, channel: bool, idle_timeout,
                 convert=None, raw=False):
        defer.Deferred.__init__(self, _cancel)
        self.session = session
        self.line = line
        self.data = data
        self.channel = channel
        self.raw = raw
        self.idle_timeout = idle_timeout
        self.convert = convert

    def __await__(self):
        if self.called:
            return (yield from defer.Deferred.__iter__(self))
        # Whoever resumes the awaiting coroutine sends the outcome (L{drive}
        # and Twisted's own coroutine runner both do) or throws the error.
        return (yield self)

    __iter__ = __await__

    def fire(self, outcome):
        """
        Fire once (with the converted reply), unless the waiter cancelled.
        """
        if self.called:
            return
        error = None
        if outcome.__class__ is AGIReply or not isinstance(outcome, Exception):
            convert = self.convert
            if convert is _nothing:
                outcome = None
            elif convert is not None:
                try:
                    outcome = convert(outcome)
                except Exception as e:
                    error, outcome = Failure(e, type(e), e.__traceback__), None
        else:
            error, outcome = outcome, None
        waiter = self.waiter
        if waiter is None or self._callbacks:
            if waiter is not None:
                self._detach()
            if error is not None:
                defer.Deferred.errback(self, error)
            else:
                defer.Deferred.callback(self, outcome)
            return
        self.waiter = None
        self.called = True
        self._canceller = None
        self.result = None
        waiter.resume(outcome, error)

    def _detach(self):
        """Put the waiting coroutine first among the callbacks."""
        waiter, self.waiter = self.waiter, None
        defer.Deferred.addBoth(self, waiter.settled, None)
        chain = self._callbacks
        chain.insert(0, chain.pop())

    def callback(self, result):
        if self.waiter is not None:
            self._detach()
        defer.Deferred.callback(self, result)

    def errback(self, fail=None):
        if self.waiter is not None:
            self._detach()
        if fail is None:
            fail = Failure(captureVars=self.debug)
        defer.Deferred.errback(self, fail)


class _Run(defer.Deferred):
    """
    A coroutine run as C{defer.ensureDeferred} runs it; see L{drive}.

    @ivar waiting: what the coroutine awaits now (L{None} while it runs
        or once it is done).
    """

    def __init__(self, coroutine):
        defer.Deferred.__init__(self)
        self.coroutine = coroutine
        self.context = contextvars.copy_context()
        self.waiting = None
        self.resume(None, None)

    def resume(self, value, error):
        """
        Run the coroutine on with C{value} (or C{error}, an exception or a
        L{Failure}, raised where it awaits) until it awaits something not
        there yet, or ends.
        """
        coroutine = self.coroutine
        run = self.context.run
        while True:
            try:
                if error is None:
                    awaited = run(coroutine.send, value)
                elif isinstance(error, Failure):
                    awaited = run(error.throwExceptionIntoGenerator, coroutine)
                else:
                    awaited = run(coroutine.throw, error)
            except StopIteration as done:
                self.waiting = None
                self.callback(done.value)
                return
            except BaseException:
                self.waiting = None
                self.errback()
                return
            if awaited.__class__ is _Command and awaited.waiter is None and not awaited.called:
                awaited.waiter = self  # the usual wait: a command of a session
                self.waiting = awaited
                return
            if not isinstance(awaited, defer.Deferred):
                value, error = awaited, None  # as ensureDeferred: sent back
                continue
            # Any other Deferred: a callback, which may run at once.
            self.waiting = awaited
            now = []
            awaited.addBoth(self.settled, now)
            if not now:
                now.append(False)  # not yet: settled() resumes
                return
            result = now[1]
            value, error = (None, result) if isinstance(result, Failure) else (result, None)

    def settled(self, result, now):
        """A Deferred the coroutine awaits has fired with C{result}."""
        if now is not None and not now:
            now.extend((True, result))  # fired at once: resume() goes on
            return None
        if isinstance(result, Failure):
            self.resume(None, result)
        else:
            self.resume(result, None)
        return None

    def cancel(self):
        """
        Cancel what the coroutine awaits (it sees C{CancelledError} there
        and may go on), as C{ensureDeferred} does.
        """
        if not self.called and self.waiting is not None:
            self.waiting.cancel()
            return
        defer.Deferred.cancel(self)


def drive(coroutine) -> defer.Deferred:
    """
    Run C{coroutine} (a handler's C{async def}) and return a Deferred of
    its result, as C{defer.ensureDeferred} does (a Deferred is returned as
    it is).

    The difference is the cost of a command: a command of an
    L{AGISession} that the coroutine awaits resumes it directly when its
    reply comes, where C{ensureDeferred} would add a callback and run the
    Deferred's callback chain for it. Everything else awaited (a database
    query, a timer) is waited for as C{ensureDeferred} waits.
    """
    if isinstance(coroutine, defer.Deferred):
        return coroutine
    if not (hasattr(coroutine, "send") and hasattr(coroutine, "throw")):
        raise defer.NotACoroutineError(f"{coroutine!r} is not a coroutine or a Deferred")
    return _Run(coroutine)


class _Once:
    """
    An attribute computed when first read, then an ordinary one (few
    handlers read it: no need to compute it for every call).
    """

    def __init__(self, compute):
        self.compute = compute
        self.__doc__ = compute.__doc__

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        value = instance.__dict__[self.name] = self.compute(instance)
        return value


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
        @param link: where command lines go: an object with
            C{sendCommand(bytes, timeout)} (send a line, and wait for its
            reply at most C{timeout} idle seconds, L{None}: no limit) and
            C{watchReplies(None)} (no command in flight): the protocol,
            which stops watching itself when it hands a reply to
            L{replyReceived}.
        """
        self.env = dict(env)
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

    @_Once
    def args(self):
        """The C{AGI()} arguments, read from the environment when first asked for."""
        return arguments(self.env)

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

    @property
    def idle(self) -> bool:
        """No command is in flight or queued."""
        return self._current is None and not self._queue

    def drain(self) -> defer.Deferred:
        """
        A Deferred that fires when no command is in flight or queued.
        """
        if self.idle:
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
        if line.__class__ is str and line.isprintable():
            data = line.encode()  # the usual line: what encode_command gives
            if len(data) >= MAX_COMMAND_BYTES:
                data = encode_command(line)  # refused
        else:
            data = encode_command(line)
        if self.closed:
            return defer.fail(AGIConnectionLost(f"{line}: the AGI connection is closed"))
        if self.hungup:
            return defer.fail(AGIHangup(f"{line}: the caller hung up"))
        if idle_timeout is _DEFAULT:
            idle_timeout = self.idle_timeout
        command = _Command(self, line, data, channel, idle_timeout, convert, raw)
        if self._current is None and not self._queue:
            self._current = command  # the usual case: nothing in flight
            self._link.sendCommand(data, idle_timeout)
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
        self._link.sendCommand(command.data, command.idle_timeout)

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
        if reply.__class__ is AGIReply and reply.result != "-1":
            outcome = reply  # the usual reply
        else:
            outcome = self._interpret(command, reply)
        # Send what was queued before anything the waiter issues on firing.
        # (The protocol stopped watching for replies before handing this
        # one: it answers the command in flight.)
        if self._queue:
            self._sendNext()
        elif self._drain_waiters:
            self._fireAll(self._drain_waiters, None)
        command.fire(outcome)

    def _interpret(self, command: _Command, reply):
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
