"""
The trunk's lines, shared by every feature's calls.

A site's trunk carries a limited number of calls at once. Calls that save
lives (a C{#9}'s legs) are I{urgent}: they always get a line at once. Other
calls (a broadcast's) are I{normal}: they start only while a line is free
for them, and when urgent calls need more lines than are free, the youngest
normal calls are given back (hung up by their owner, told through
C{on_yield}), so an alarm never waits for a notice.

    trunk = Trunk(clock)                    # the server's, in L{switchboard.features.Core}
    trunk.lines = 60                        # the trunk's size (None: unlimited, never yields)
    placer = trunk.placer(AMICallPlacer(ami), urgent=True)      # the alarm's
    placer = trunk.placer(AMICallPlacer(ami), on_yield=give_back)  # a broadcast's

A line is held from the originate until the call is over: its originate
fails or ends unanswered, or Asterisk reports the channel's C{Hangup}
(L{Trunk.note_hangup}, which the server subscribes to). A call whose hangup
was never seen (the AMI link dropped meanwhile) is let go after
C{hold_limit} seconds.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from switchboard.ringgroup.interfaces import ICallPlacer


class NoLineFree(Exception):
    """A normal call was asked for while every line is taken (or held for urgent calls)."""


class _Held:
    __slots__ = ("urgent", "since", "on_yield")

    def __init__(self, urgent, since, on_yield):
        self.urgent = urgent
        self.since = since
        self.on_yield = on_yield


class Trunk:
    """
    Who holds the trunk's lines: channel id -> urgent or not, since when.

    @ivar lines: how many calls the trunk carries at once; None: as many as
        are asked for (nothing yields).
    """

    log = Logger()

    def __init__(self, clock=None, *, lines=None, hold_limit=3600.0):
        if clock is None:
            from twisted.internet import reactor as clock
        self.clock = clock
        self.lines = lines
        self.hold_limit = hold_limit
        self._held: dict = {}   # channel id -> _Held, in the order taken
        self.yielded = 0        # normal calls given back to urgent ones, ever

    def in_use(self, urgent=None) -> int:
        """Lines held (by urgent calls only, normal ones only, or all)."""
        self._expire()
        if urgent is None:
            return len(self._held)
        return sum(1 for h in self._held.values() if h.urgent == urgent)

    def free(self) -> int | None:
        """Lines a normal call may take now (None: unlimited)."""
        if self.lines is None:
            return None
        return max(0, self.lines - self.in_use())

    def take(self, channel_id, *, urgent=False, on_yield=None) -> None:
        """
        Hold a line for the call C{channel_id}. An urgent call always gets
        one: normal calls are given back (youngest first) while more lines
        are held than the trunk has. A normal call raises L{NoLineFree} when
        none is free.
        """
        if not urgent and self.free() == 0:
            raise NoLineFree(f"all {self.lines} lines are in use")
        self._held[channel_id] = _Held(urgent, self.clock.seconds(), on_yield)
        if urgent and self.lines is not None:
            over = len(self._held) - self.lines
            if over > 0:
                self._give_back(over)

    def release(self, channel_id) -> None:
        """The call C{channel_id} is over: its line is free."""
        self._held.pop(channel_id, None)

    def note_hangup(self, uniqueid) -> None:
        """Asterisk hung up the channel C{uniqueid} (AMI C{Hangup}): release it if held."""
        self.release(str(uniqueid or "").strip())

    def holds(self, channel_id) -> bool:
        return channel_id in self._held

    def placer(self, inner, *, urgent=False, on_yield=None) -> "TrunkPlacer":
        """An L{ICallPlacer} over C{inner} whose calls hold lines of this trunk."""
        return TrunkPlacer(self, inner, urgent=urgent, on_yield=on_yield)

    def _give_back(self, count) -> None:
        normal = [cid for cid, h in self._held.items() if not h.urgent]
        for channel_id in reversed(normal[-count:]):
            held = self._held.pop(channel_id)
            self.yielded += 1
            self.log.info("trunk: call {channel_id} gives its line to an urgent call",
                          channel_id=channel_id)
            if held.on_yield is not None:
                try:
                    held.on_yield(channel_id)
                except Exception:
                    self.log.failure("trunk: giving back {channel_id}", channel_id=channel_id)

    def _expire(self) -> None:
        if not self._held:
            return
        limit = self.clock.seconds() - self.hold_limit
        stale = [cid for cid, h in self._held.items() if h.since < limit]
        for channel_id in stale:
            self.log.warn("trunk: no hangup seen for {channel_id} in {limit:.0f} s; its line "
                          "is counted free", channel_id=channel_id, limit=self.hold_limit)
            del self._held[channel_id]


@implementer(ICallPlacer)
class TrunkPlacer:
    """
    Places calls through C{inner} (an L{ICallPlacer}), each holding a line
    of C{trunk} from the originate until it is over.
    """

    def __init__(self, trunk, inner, *, urgent=False, on_yield=None):
        self.trunk = trunk
        self.inner = inner
        self.urgent = urgent
        self.on_yield = on_yield

    def originate(self, channel, *, context, exten, priority, variables, caller_id, timeout,
                  channel_id):
        try:
            self.trunk.take(channel_id, urgent=self.urgent, on_yield=self.on_yield)
        except NoLineFree as e:
            return defer.fail(e)
        try:
            d = self.inner.originate(channel, context=context, exten=exten, priority=priority,
                                     variables=variables, caller_id=caller_id,
                                     timeout=timeout, channel_id=channel_id)
        except Exception:
            self.trunk.release(channel_id)
            raise

        def over_unless_answered(result):
            if getattr(result, "outcome", None) != "answered":
                self.trunk.release(channel_id)
            return result

        def failed(failure):
            self.trunk.release(channel_id)
            return failure

        return d.addCallbacks(over_unless_answered, failed)

    def hangup(self, channel):
        return self.inner.hangup(channel)

    def channel_state(self, uniqueid):
        return self.inner.channel_state(uniqueid)

    def can_place_calls(self) -> bool:
        return self.inner.can_place_calls()

    def when_connected(self):
        return self.inner.when_connected()
