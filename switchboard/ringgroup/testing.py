"""
A fake L{ICallPlacer} for tests (as C{twisted.internet.testing} holds
Twisted's): it records each originate and lets the test decide its fate.
"""

from __future__ import annotations

from twisted.internet import defer
from zope.interface import implementer

from switchboard.ami.originate import OriginateResult
from switchboard.ringgroup.interfaces import ICallPlacer


class PlacedCall:
    """One originate the fake received; L{finish} gives it an outcome."""

    def __init__(self, channel, kwargs, deferred):
        self.refused = False
        self.channel = channel
        self.kwargs = kwargs
        self.deferred = deferred

    @property
    def channel_id(self):
        return self.kwargs["channel_id"]

    @property
    def variables(self):
        return self.kwargs["variables"]

    def finish(self, outcome, channel=None, reason=None):
        """Asterisk's outcome of the call: C{"answered"}, C{"busy"}, C{"no-answer"}..."""
        self.deferred.callback(OriginateResult(self.channel_id, outcome, reason, outcome,
                                               channel=channel))

    def refuse(self, reason=None, message="refused"):
        """Asterisk refused the call (C{reason} None: it would not even try)."""
        self.refused = True
        self.deferred.callback(OriginateResult(self.channel_id, "failed", reason, message))

    def __repr__(self):
        return f"<PlacedCall {self.channel} {self.channel_id}>"


@implementer(ICallPlacer)
class FakeCallPlacer:
    """
    Records what is asked: C{calls} (L{PlacedCall}s, their Deferreds left
    to the test), C{hangups}, C{state_asked}.

    @ivar connected: what L{can_place_calls} says; L{connect} sets it and
        fires those waiting in L{when_connected}.
    @ivar refuse_with: an exception class: originate and channel_state
        fail with it at once (no link).
    @ivar refuse_calls: C{(reason, message)}: each originate is answered
        at once with that failure, as Asterisk does while shutting down
        (reason None) or when no channel came up (reason 0).
    @ivar channels: unique id -> state, what channel_state answers.
    @ivar on_originate: called with each L{PlacedCall}.
    """

    def __init__(self):
        self.calls: list = []
        self.hangups: list = []
        self.refuse_with = None
        self.refuse_calls = None
        self.on_originate = None
        self.connected = True
        self.channels: dict = {}
        self.state_asked: list = []
        self.waiting: list = []

    def originate(self, channel, *, context=None, exten=None, priority=1, variables=None,
                  caller_id=None, timeout=30.0, channel_id=None):
        kwargs = dict(context=context, exten=exten, priority=priority, variables=variables,
                      caller_id=caller_id, timeout=timeout, channel_id=channel_id)
        if self.refuse_with is not None:
            return defer.fail(self.refuse_with("not connected to Asterisk"))
        call = PlacedCall(channel, kwargs, defer.Deferred())
        self.calls.append(call)
        if self.on_originate:
            self.on_originate(call)
        if self.refuse_calls is not None:
            call.refuse(*self.refuse_calls)
        return call.deferred

    def hangup(self, channel):
        self.hangups.append(channel)
        return defer.succeed(True)

    def channel_state(self, uniqueid):
        self.state_asked.append(uniqueid)
        if self.refuse_with is not None:
            return defer.fail(self.refuse_with("not connected to Asterisk"))
        return defer.succeed(self.channels.get(uniqueid))

    def can_place_calls(self) -> bool:
        return bool(self.connected)

    def when_connected(self):
        if self.connected:
            return defer.succeed(None)
        d = defer.Deferred()
        self.waiting.append(d)
        return d

    def connect(self) -> None:
        """The link is up: calls can be placed, and those waiting are told."""
        self.connected = True
        waiting, self.waiting = self.waiting, []
        for d in waiting:
            d.callback(None)

    def pending(self) -> list:
        """The calls whose outcome is not known yet."""
        return [c for c in self.calls if not c.deferred.called]

    def placed(self) -> list:
        """The calls Asterisk took (not refused)."""
        return [c for c in self.calls if not c.refused]
