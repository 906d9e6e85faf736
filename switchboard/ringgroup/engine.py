"""
The ring-group engine: a group rings its parties, each call (a I{leg}) under
a channel id chosen here, and follows each leg to its fate.

  - Parties are rung all at once (L{RingGroup.ring_all}: one originate each,
    nothing awaited, so none waits for another) or one after another
    (L{RingGroup.ring_in_order}: the next once a leg's fate is known and it
    is not rung again).
  - A leg ending in one of the outcomes its L{Retry} names is rung again,
    after C{Retry.after} seconds, C{Retry.times} times, as a new leg.
  - A call that could not be placed (the AMI link is down, or Asterisk
    refused it, e.g. while restarting) is not an outcome: it is tried again
    every C{originate_retry} seconds (longer, up to 10 s, for a party with
    several legs not placed), for as long as the owner wants
    the group to ring. That retry keeps the leg's channel id: when the link
    dropped after Asterisk took the first call, that call may still be
    ringing, and Asterisk refuses a second channel with the same id, so a
    party is never rung twice at once for one leg. When the retry is
    refused, Asterisk is asked whether that first call is up; if it is, the
    leg follows it (its hangup, or someone answering it) instead of
    counting as failed and ringing the phone a third time.
  - With no AMI link, a leg is placed through a line the owner lent the
    group (L{CallerLines}: the #9 caller's FastAGI session), if any.
  - A leg is hung up by its channel's unique id (its leg id), so a channel
    not named yet is found too; one created after it was cancelled is hung
    up as soon as Asterisk reports it (L{RingEngine.note_channel}).
  - The owner (an L{IRingListener}) is told what happens (C{noted}), each
    leg's fate once (C{ended}), and calls not placed (C{not_placed}).

Per leg, the reactor does what the alarm did before this engine existed:
one originate, one callback pair and one errback on its Deferred.
"""

from __future__ import annotations

import uuid

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from switchboard.ami.errors import (
    AMIArgumentError,
    AMIConnectionLost,
    AMINotConnected,
    AMITimeout,
)
from switchboard.ringgroup.lines import CallerLines

# Leg states the engine sets; owners add their own (e.g. "confirmed").
RINGING = "ringing"
ANSWERED = "answered"
BUSY = "busy"
NO_ANSWER = "no-answer"
FAILED = "failed"
CANCELLED = "cancelled"   # still ringing when the owner stopped it: hung up
LIVE = (RINGING, ANSWERED)
# What L{IRingListener.noted} is told before a party is rung again.
RETRY = "retry"

_LINK_TROUBLE = (AMINotConnected, AMIConnectionLost, AMITimeout)
_OUTCOMES = {"answered": ANSWERED, "busy": BUSY, "no-answer": NO_ANSWER,
             "congestion": FAILED, "failed": FAILED}
_UNSAFE = str.maketrans("", "", "\r\n\0\"<>")


class CallRefused(Exception):
    """Asterisk did not place a leg's call (it refused the originate)."""


class Retry:
    """
    Ring a party again, C{after} seconds later, when its leg ends in one of
    C{outcomes}, at most C{times} times. An owner may change C{times} and
    C{after} in place (a reloaded configuration): legs already rung follow.
    """

    __slots__ = ("outcomes", "times", "after")

    def __init__(self, outcomes, times, after):
        self.outcomes = tuple(outcomes)
        self.times = times
        self.after = after

    def __repr__(self) -> str:
        return f"<Retry {self.outcomes} x{self.times} after {self.after}s>"


class Party:
    """Who to ring: C{target} (as the owner knows it), C{dial} (the dial string), a C{tag}."""

    __slots__ = ("target", "dial", "tag", "retry")

    def __init__(self, target, dial, tag="", retry=None):
        self.target = target
        self.dial = dial
        self.tag = tag
        self.retry = retry


class Leg:
    """One call placed for a group; C{id} is also the channel's unique id."""

    __slots__ = ("id", "group", "tag", "target", "dial", "attempt", "state", "channel",
                 "changed", "resumed", "following", "quiet", "via_line", "retry", "then", "gone")

    def __init__(self, id, group, tag, target, dial, attempt=1):
        self.id = id
        self.group = group
        self.tag = tag            # the owner's name for why it rings (e.g. a stage)
        self.target = target      # the party as the owner knows it (E.164...)
        self.dial = dial          # the channel originated
        self.attempt = attempt
        self.state = RINGING
        self.channel = None       # the channel's name once Asterisk reports it
        self.changed = None       # POSIX time of the last state change
        # Placed again, with the same id, after the AMI link lost the outcome
        # of the first call, which may still be up.
        self.resumed = False
        self.following = False    # ... and found up: the leg is that first call
        # A retry of a call not placed: its attempt is not noted again.
        self.quiet = False
        self.via_line = False     # placed through a lent line (no AMI)
        self.retry = None         # the L{Retry} of its party
        self.then = None          # parties to ring after it, in order
        # Followed, not placed here (L{RingGroup.follow}): its state and
        # detail once its channel is gone.
        self.gone = None

    @property
    def live(self) -> bool:
        return self.state in LIVE

    def __repr__(self) -> str:
        return f"<Leg {self.id} {self.tag} {self.target} {self.state}>"


class RingEngine:
    """
    Runs the ring groups of one feature: the legs by id (AMI events name
    them by unique id), the lines lent to groups, and the L{ICallPlacer}.

    @param placer: an L{ICallPlacer}.
    @param follow_every: seconds between looks at a first call that is
        still up after its retry was refused.
    """

    log = Logger()

    def __init__(self, placer, clock=None, *, follow_every=5.0):
        if clock is None:
            from twisted.internet import reactor as clock
        self.placer = placer
        self.clock = clock
        self.follow_every = follow_every
        self.lines = CallerLines()
        self.legs: dict = {}     # leg id (= channel unique id) -> Leg
        #: None, or a callable its owner sets: None to act now, or a Deferred
        #: to wait for before placing a call or running a timer (the owner
        #: checks it still holds its groups, e.g. after the process was
        #: stopped: L{switchboard.leases.LeaseKeeper.checked}).
        self.gate = None

    def waiting(self):
        """The gate's Deferred to wait for, or None to act now."""
        return self.gate() if self.gate is not None else None

    def group(self, listener, subject=None, **kwargs) -> RingGroup:
        """A new L{RingGroup} owned by C{listener} (an L{IRingListener})."""
        return RingGroup(self, listener, subject, **kwargs)

    def leg(self, leg_id) -> Leg | None:
        return self.legs.get(str(leg_id).strip())

    def can_place_calls(self) -> bool:
        try:
            return bool(self.placer.can_place_calls())
        except Exception:
            self.log.failure("cannot tell whether calls can be placed")
            return False

    def when_connected(self) -> defer.Deferred:
        return defer.maybeDeferred(self.placer.when_connected)

    def forget(self, group) -> None:
        """C{group}'s legs are no longer looked up by id."""
        for leg_id in group.legs:
            self.legs.pop(leg_id, None)

    def note_channel(self, uniqueid, channel) -> None:
        """
        Asterisk created a channel (AMI C{Newchannel}: C{Uniqueid},
        C{Channel}); if it is one of our legs, remember its name, and hang
        it up at once if the leg was cancelled meanwhile.
        """
        leg = self.legs.get(uniqueid)
        if leg is None:
            return
        leg.channel = channel
        if leg.state == CANCELLED:
            leg.group.hang_up(leg)

    def note_hangup(self, uniqueid) -> None:
        """
        Asterisk hung up a channel (AMI C{Hangup}: C{Uniqueid}); a leg that
        follows that first call, still ringing when it is gone, was not
        answered. (Other legs learn their outcome from their originate.)
        """
        leg = self.legs.get(uniqueid)
        if leg is not None and leg.following and leg.group._following(leg):
            leg.group._first_call_ended(leg)


class RingGroup:
    """
    The legs rung for one purpose (an alarm, a broadcast), and the timers of
    its retries. Its owner, C{listener}, decides whether it still rings
    (C{wanted}) and is told each leg's fate; C{subject} is the owner's own
    object (an alarm), for it to find from a leg.

    @param key: what the owner lends lines under (L{CallerLines}).
    @param name: how logs name the group (C{"ALARM 12"}).
    @param prefix: leg ids are C{prefix-N-random}.
    @param leg_type: the class of its legs (an owner's subclass of L{Leg}).
    @param placer: the L{ICallPlacer} of its calls (default: the engine's).
    """

    log = Logger()

    def __init__(self, engine, listener, subject=None, *, context, exten, caller_name="",
                 caller_number="", ring_timeout=30.0, originate_retry=2.0, key="",
                 name="", prefix="swb", leg_type=Leg, placer=None):
        self.engine = engine
        #: Where its calls are placed, hung up and looked at: the engine's
        #: L{ICallPlacer} unless the owner gave one (an alarm: its caller's Asterisk).
        self.placer = placer or engine.placer
        self.clock = engine.clock
        self.listener = listener
        self.subject = subject
        self.context = context
        self.exten = exten
        self.caller_name = caller_name
        self.caller_number = caller_number
        self.ring_timeout = ring_timeout
        self.originate_retry = originate_retry
        self.key = key
        self.name = name
        self.prefix = prefix
        self.leg_type = leg_type
        self.legs: dict = {}      # leg id -> Leg (the latest leg of an id)
        self.timers: list = []    # the owner's and the retries' DelayedCalls
        self.retries = 0          # retries waiting for their time
        self.made = 0

    def can_place_calls(self) -> bool:
        """Whether its placer can place calls now (its Asterisk is linked)."""
        try:
            return bool(self.placer.can_place_calls())
        except Exception:
            self.log.failure("{group}: cannot tell whether calls can be placed", group=self.name)
            return False

    # Ringing -----------------------------------------------------------------------

    def ring_all(self, parties) -> list:
        """Ring every party now, each on its own leg; nothing is awaited."""
        return [self.ring(p.target, p.dial, p.tag, retry=p.retry) for p in parties]

    def ring_in_order(self, parties) -> Leg | None:
        """
        Ring the first party now, and each next one once the previous leg's
        fate is known and it is not rung again (while the group is wanted).
        """
        parties = list(parties)
        if not parties:
            return None
        first = parties[0]
        return self.ring(first.target, first.dial, first.tag, retry=first.retry,
                         then=tuple(parties[1:]))

    def ring(self, target, dial, tag="", *, retry=None, attempt=1, leg_id=None, quiet=False,
             then=None) -> Leg:
        """
        Place one call to C{dial} for C{target}: a new leg, or with
        C{leg_id} the call placed again for the leg of that id (a resumed
        leg, whose first call may still be up).
        """
        self.made += 1
        resumed = leg_id is not None
        if leg_id is None:
            leg_id = f"{self.prefix}-{self.made}-{uuid.uuid4().hex[:12]}"
        previous = self.legs.get(leg_id) if resumed else None
        leg = self.leg_type(leg_id, self, tag, target, dial, attempt)
        leg.resumed = resumed
        if previous is not None:
            leg.channel = previous.channel  # the first call's, if Asterisk named it
        leg.changed = self.clock.seconds()
        leg.quiet = quiet
        leg.retry = retry
        leg.then = then
        self.legs[leg_id] = leg
        self.engine.legs[leg_id] = leg
        wait = self.engine.waiting()
        if wait is None:
            self._place(leg)
        else:
            wait.addBoth(lambda _: self._place(leg) if self.current(leg) else None)
        return leg

    def _place(self, leg) -> None:
        """Note C{leg} ringing (unless quiet) and originate its call."""
        attempt, tag, leg_id = leg.attempt, leg.tag, leg.id
        if not leg.quiet:
            self.listener.noted(leg, RINGING, tag + (f", attempt {attempt}" if attempt > 1
                                                     else ""))
        try:
            d = self.placer.originate(
                leg.dial, context=self.context, exten=self.exten, priority=1,
                variables=self.listener.variables(leg), caller_id=self.caller_id(),
                timeout=self.ring_timeout, channel_id=leg_id)
        except Exception:
            d = defer.fail()
        d.addCallbacks(self._outcome, self._not_placed, callbackArgs=(leg,), errbackArgs=(leg,))
        d.addErrback(self._leg_error, leg)

    def caller_id(self) -> str:
        name = str(self.caller_name or "").translate(_UNSAFE)
        number = str(self.caller_number or "").translate(_UNSAFE)
        return f'"{name}" <{number}>' if number else f'"{name}"'

    def adopt(self, leg_id, tag, target, dial) -> Leg:
        """A leg this server did not place (before a restart), taken up under C{leg_id}."""
        leg = self.leg_type(leg_id, self, tag, target, dial)
        leg.changed = self.clock.seconds()
        self.legs[leg.id] = leg
        self.engine.legs[leg.id] = leg
        return leg

    def follow(self, leg, gone_state, gone_detail) -> None:
        """
        Follow C{leg} (adopted: its call was placed elsewhere, ringing or
        answered) by its channel id: if Asterisk has no such channel the leg
        ends now in C{gone_state}, else once the channel hangs up (AMI
        C{Hangup}, or seen gone every C{follow_every} seconds). Nothing is
        placed again.
        """
        leg.gone = (gone_state, gone_detail)
        leg.following = True
        self._follow_first_call(leg)

    # What happens to legs -----------------------------------------------------------

    def mark(self, leg, state, detail="") -> None:
        """C{leg} is now in C{state} (noted), its fate still open (e.g. answered)."""
        leg.state = state
        leg.changed = self.clock.seconds()
        self.listener.noted(leg, state, detail)

    def settle(self, leg, state, detail="") -> None:
        """
        C{leg} ended in C{state} (an outcome, or what its owner learnt: a
        refusal...): noted, rung again if its L{Retry} says so, its fate told.
        """
        self.mark(leg, state, detail)
        self._ended(leg)

    def _ended(self, leg):
        retried = False
        if self.listener.wanted(self):
            retry = leg.retry
            if retry is not None and leg.state in retry.outcomes and leg.attempt <= retry.times:
                self.later(retry.after, self._again, leg, leg.attempt + 1,
                           f"{leg.state} before", retry=True)
                retried = True
            elif leg.then:
                party = leg.then[0]
                self.ring(party.target, party.dial, party.tag, retry=party.retry,
                          then=leg.then[1:])
        self.listener.ended(leg, retried)

    def current(self, leg) -> bool:
        """C{leg} is still the one ringing for its id, in a group still wanted."""
        return (leg.state == RINGING and self.legs.get(leg.id) is leg
                and self.listener.wanted(self))

    def live_legs(self) -> list:
        return [leg for leg in self.legs.values() if leg.live]

    def hang_up(self, leg) -> None:
        # A leg's id is its channel's unique id, which Asterisk's Hangup
        # accepts too: a channel not named yet (or whose Newchannel was
        # lost with the link) is still found. Not created yet: no such
        # channel, and RingEngine.note_channel hangs it up once it is.
        channel = leg.channel or leg.id
        d = defer.maybeDeferred(self.placer.hangup, channel)
        d.addErrback(lambda f: self.log.failure("hanging up {channel}", f, channel=channel))

    def cancel_ringing(self, detail="") -> None:
        """Every leg still ringing is cancelled (its fate) and hung up."""
        for leg in list(self.legs.values()):
            if leg.state == RINGING:
                self.mark(leg, CANCELLED, detail)
                self.hang_up(leg)
                self.listener.ended(leg, False)

    # Timers ----------------------------------------------------------------------------

    def later(self, delay, f, *args, retry=False) -> None:
        """
        Call C{f(*args)} after C{delay} unless L{cancel_timers} is called
        first; a C{retry} counts in C{retries} until it fires.
        """
        if retry:
            self.retries += 1

        def fire():
            if retry:
                self.retries -= 1
            wait = self.engine.waiting()
            if wait is None:
                f(*args)
            else:
                wait.addBoth(lambda _: f(*args) if self.listener.wanted(self) else None)

        self.timers.append(self.clock.callLater(delay, fire))

    def due_within(self, within) -> bool:
        """Whether a timer of this group fires within C{within} seconds."""
        now = self.clock.seconds()
        self.timers = [t for t in self.timers if t.active()]
        return any(t.getTime() - now <= within for t in self.timers)

    def cancel_timers(self) -> None:
        for call in self.timers:
            if call.active():
                call.cancel()
        self.timers = []
        self.retries = 0

    # Outcomes ---------------------------------------------------------------------

    def _leg_error(self, failure, leg):
        """What went wrong handling C{leg}'s calls: logged, never lost in a Deferred."""
        self.log.failure("{group}: leg {leg}", failure, group=self.name, leg=leg.id)

    def _outcome(self, result, leg):
        if getattr(result, "channel", None) and leg.channel is None:
            leg.channel = result.channel
        state = _OUTCOMES.get(result.outcome, FAILED)
        if state == ANSWERED:
            if leg.state == RINGING:
                self.mark(leg, ANSWERED)
            return
        if leg.state != RINGING:
            return  # already answered, or hung up by a cancel
        detail = result.message if state == FAILED else ""
        if state == FAILED and leg.resumed:
            self._look_for_first_call(leg, detail)
            return
        if result.not_placed:
            self._not_placed(Failure(CallRefused(detail or "Asterisk refused the call")), leg)
            return
        self.settle(leg, state, detail)

    def _not_placed(self, failure, leg):
        """
        C{leg}'s call was not placed. Only a call that can never be placed
        (an unsafe dial string) is an outcome; anything else (no link,
        Asterisk refusing while it restarts) is trouble to retry, so a
        group is never left with every party "rung" and nothing ringing.
        """
        if failure.check(AMIArgumentError):
            self.log.failure("{group}: {dial} can never be called", failure,
                             group=self.name, dial=leg.dial)
            if leg.state == RINGING:
                self.settle(leg, FAILED, str(failure.value)[:200])
            return
        if failure.check(AMITimeout) and leg.channel is not None and self.current(leg):
            # Asterisk made the call's channel (its Newchannel was seen): the
            # call was placed, its outcome is late (Asterisk overloaded: the
            # phone may still ring). Placing it again could ring it twice:
            # the leg follows that call until it ends.
            self.log.warn("{group}: no outcome for {dial} in time, but its channel {channel} "
                          "was made: following it", group=self.name, dial=leg.dial,
                          channel=leg.channel)
            self.follow(leg, NO_ANSWER, "placed, no outcome in time; its call ended unanswered")
            return
        link_down = failure.check(*_LINK_TROUBLE) is not None
        if not link_down and not failure.check(CallRefused):
            self.log.failure("{group}: originate of {dial} failed", failure,
                             group=self.name, dial=leg.dial)
            if leg.state == RINGING and leg.resumed:
                self._look_for_first_call(leg, str(failure.value)[:200])
                return
        lines = self.engine.lines
        if failure.check(AMINotConnected) and leg.state == RINGING and self.listener.wanted(self):
            line = lines.line_for(self.key)
            if line is not None:
                self._place_through_line(leg, line)
                return
        if not leg.quiet:
            self.log.critical("{group}: could not call {dial} ({error}); trying again",
                              group=self.name, dial=leg.dial, error=failure.value)
        if leg.state == RINGING:
            if leg.quiet:
                leg.state = FAILED
            else:
                self.mark(leg, FAILED, f"call not placed: {failure.value}; tried again until "
                                       f"it is"[:200])
        if self.listener.wanted(self):
            failures = sum(1 for other in self.legs.values() if other.target == leg.target
                           and other.tag == leg.tag and other.state == FAILED)
            delay = min(self.originate_retry * 2 ** max(0, failures - 1), 10.0)
            if failure.check(AMIConnectionLost, AMITimeout) and lines.line_for(self.key) is not None:
                # Lost in flight, the call is most likely still ringing: the
                # lent line places it again only once its ring time is
                # over, so that no phone is rung twice at once. (A link back
                # by then retries it under its own channel id.)
                ringing_until = leg.changed + self.ring_timeout
                delay = max(delay, ringing_until - self.clock.seconds())
            self.later(delay, self._again, leg, leg.attempt, "call not placed", leg.id,
                       retry=True)
            self.listener.not_placed(leg, link_down)

    def _again(self, leg, attempt, why, leg_id=None):
        if not self.listener.wanted(self):
            return
        if leg_id is not None and (leg.state != FAILED or self.legs.get(leg_id) is not leg):
            return  # the first call turned up meanwhile (answered): nothing to place
        # Calls not placed are tried again every few seconds while the link
        # is down: the owner is told of the first try and the outcome, not each.
        quiet = leg_id is not None and (leg.quiet or leg.resumed)
        if not quiet:
            self.listener.noted(leg, RETRY, f"{leg.tag}: {why}")
        self.ring(leg.target, leg.dial, leg.tag, retry=leg.retry, attempt=attempt,
                  leg_id=leg_id, quiet=quiet, then=leg.then)

    # A lent line (no AMI link) -------------------------------------------------------

    def _place_through_line(self, leg, line):
        """No AMI link: place C{leg} with the Originate application on a lent line."""
        leg.via_line = True
        self.log.critical("{group}: no AMI link: {dial} placed through the caller's line",
                          group=self.name, dial=leg.dial)
        self.listener.noted(leg, RINGING,
                            f"{leg.tag}: placed through the caller's line (no AMI link)")
        args = CallerLines.originate_args(
            leg.dial, self.listener.variables(leg), context=self.context, exten=self.exten,
            ring_timeout=self.ring_timeout, caller_number=self.caller_number,
            caller_name=str(self.caller_name or "").translate(_UNSAFE))
        try:
            d = line.exec_("Originate", *args)
        except Exception:
            d = defer.fail()

        def line_gone(failure):
            self.log.warn("{group}: the caller's line could not place {dial}: {error}",
                          group=self.name, dial=leg.dial, error=failure.getErrorMessage())
            self.engine.lines.release(self.key, line)
            if leg.state == RINGING and self.legs.get(leg.id) is leg:
                leg.via_line = False
                self._not_placed(Failure(AMINotConnected("no AMI link, no caller's line")),
                                 leg)

        d.addErrback(line_gone)
        d.addErrback(self._leg_error, leg)
        self.later(self.ring_timeout + 10.0, self._line_unanswered, leg)

    def _line_unanswered(self, leg):
        if leg.state == RINGING and self.legs.get(leg.id) is leg:
            self.settle(leg, NO_ANSWER, "placed through the caller's line: not answered "
                                        "within the ring time")

    # First calls still up (a refused retry) ----------------------------------------------

    def _look_for_first_call(self, leg, why):
        """
        A resumed leg was not placed. Asterisk refuses a channel id in use,
        so the call the link lost may still be up: if it is, the leg
        follows it; if not (or nobody can tell), the leg has failed.
        """
        d = self._first_call_state(leg)

        def decided(state):
            if not self.current(leg):
                return
            if state is None:
                # Nothing is up with that id: the refusal was Asterisk's own
                # trouble, retried like a call that could not be placed.
                self._not_placed(Failure(CallRefused(why or "retry refused")), leg)
                return
            leg.following = True
            self.listener.noted(leg, RINGING, f"{leg.tag}: the call placed before the AMI "
                                              f"link dropped is still up ({state})")
            self.later(self.engine.follow_every, self._follow_first_call, leg)

        d.addCallback(decided)
        d.addErrback(self._leg_error, leg)

    def _following(self, leg) -> bool:
        """C{leg} is followed, still ringing (or answered, if adopted) in a group still wanted."""
        if leg.gone is None or leg.state != ANSWERED:
            return self.current(leg)
        return self.legs.get(leg.id) is leg and self.listener.wanted(self)

    def _follow_first_call(self, leg):
        """Look again at the first call of C{leg}: once it is gone unanswered, so is the leg."""
        if not self._following(leg):
            return
        d = self._first_call_state(leg, unknown="unknown")

        def looked(state):
            if not self._following(leg):
                return
            if state is None:
                self._first_call_ended(leg)
            else:
                self.later(self.engine.follow_every, self._follow_first_call, leg)

        d.addCallback(looked)
        d.addErrback(self._leg_error, leg)

    def _first_call_state(self, leg, unknown=None):
        """
        Deferred state of the channel with C{leg}'s id, L{None} if there is
        none; C{unknown} when Asterisk cannot be asked.
        """
        try:
            d = self.placer.channel_state(leg.id)
        except Exception:
            d = defer.fail()

        def cannot_ask(failure):
            self.log.warn("{group}: cannot ask Asterisk about {leg}: {error}",
                          group=self.name, leg=leg.id, error=failure.getErrorMessage())
            return unknown

        return d.addErrback(cannot_ask)

    def _first_call_ended(self, leg):
        if leg.gone is not None:
            self.settle(leg, *leg.gone)
        else:
            self.settle(leg, NO_ANSWER, "the call placed before the AMI link dropped ended")

    def __repr__(self) -> str:
        return f"<RingGroup {self.name or self.key} {len(self.legs)} legs>"
