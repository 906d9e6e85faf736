"""
The server's part of a broadcast: which household is called when, through
which lines, and what each call came to.

Every C{poll} seconds the dispatcher reads the campaigns not ended from the
database (staff pause, resume and cancel them from the CLI), starts those
due (rendering the notice first), and fills the lines it may use with due
deliveries:

  - at most C{lines} broadcast calls at once, and never a line of the trunk
    that is not free (L{switchboard.ringgroup.trunk}): a C{#9} alarm's
    calls are urgent, and when they need more lines than are free the
    youngest broadcast calls are hung up (C{yielded}: called again a few
    seconds later, not counted);
  - normal campaigns place no call in quiet hours (the community's time
    zone); urgent ones do, and go first;
  - each delivery is marked C{calling} and its attempt written before its
    call is placed; a household that pressed 1 is C{heard} and never
    called again, by this server or by the next one after a restart.

A call is one ring group of the ring-group engine (L{switchboard.ringgroup})
with one leg: its channel id, its fate (answered, busy, no answer, failed:
the AMI client reads busy from the C{Hangup} cause) and calls not placed
come from there.
An answered call runs the FastAGI script C{broadcast} (L{broadcast.handler}),
which reports heard (1) or not; a call hung up before it did is
C{unconfirmed}. Busy, no answer, unconfirmed and failed calls count: a
delivery is called again C{retry_after} seconds later, at most C{retries}
times, then given up with the last outcome as the reason.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from functools import partial

from twisted.internet import defer, task
from twisted.logger import Logger
from zope.interface import implementer

from broadcast import store
from broadcast.models import (
    BUSY,
    CALL_FAILED,
    HEARD_IT,
    NO_ANSWER,
    NOT_PLACED,
    PAUSED,
    RUNNING,
    SCHEDULED,
    SENT_IT,
    STOPPED,
    TEXT,
    UNCONFIRMED,
    URGENT,
    YIELDED,
)
from switchboard.community.mobiles import mask
from switchboard.ringgroup import ANSWERED, IRingListener
from switchboard.ringgroup import BUSY as LEG_BUSY
from switchboard.ringgroup import CANCELLED as LEG_CANCELLED
from switchboard.ringgroup import NO_ANSWER as LEG_NO_ANSWER

CONTEXT = "switchboard-broadcast"
#: Said after the notice (its own rendering: a notice may be as long as a prompt may).
QUESTION = "收到请按一，重听请按二。"
_LEG_OUTCOMES = {LEG_BUSY: BUSY, LEG_NO_ANSWER: NO_ANSWER}


def utc_now(clock) -> datetime:
    """The clock's time as the naive UTC datetime the tables store."""
    return datetime.fromtimestamp(clock.seconds(), timezone.utc).replace(tzinfo=None)


class Call:
    """One call of a delivery, from its attempt's row to its outcome."""

    __slots__ = ("campaign_id", "delivery_id", "attempt_id", "number", "group", "leg",
                 "answered", "stop", "settled", "guard", "sounds")

    def __init__(self, campaign_id, delivery_id, attempt_id, number, sounds):
        self.campaign_id = campaign_id
        self.delivery_id = delivery_id
        self.attempt_id = attempt_id
        self.number = number
        self.sounds = sounds      # (notice, question): sound names to play
        self.group = None
        self.leg = None
        self.answered = False
        self.stop = None          # why it is being hung up: YIELDED, STOPPED
        self.settled = None       # a Deferred once its outcome is being written
        self.guard = None

    def __repr__(self) -> str:
        return f"<Call {self.attempt_id} of delivery {self.delivery_id} {mask(self.number)}>"


class CampaignState:
    """A campaign the dispatcher follows, with its sounds once ready."""

    def __init__(self, active):
        self.active = active
        self.sounds = None        # (notice, question) once rendered
        self.preparing = None     # the rendering's Deferred

    @property
    def id(self):
        return self.active.id


@implementer(IRingListener)
class Dispatcher:
    """
    @param database: a L{switchboard.storage.Database}.
    @param engine: the L{switchboard.ringgroup.RingEngine} calls are placed with
        (its placer holds normal lines of the trunk, yielding to L{yield_line}).
    @param settings: the L{broadcast.config.BroadcastSettings}.
    @param dialer: E.164 -> dial string (L{switchboard.dialing.Dialer}).
    @param tz: the community's time zone (quiet hours).
    @param speech: a L{switchboard.speech.Speech}, or None (recordings only).
    @param trunk: the L{switchboard.ringgroup.Trunk}, or None (only C{lines} limits).
    @param texts: the L{switchboard.texting.TextSender} text notices go through,
        or None (text campaigns cannot run).
    """

    log = Logger()

    def __init__(self, database, engine, settings, dialer, tz, *, clock, speech=None,
                 trunk=None, poll=1.0, caller_number="", texts=None, fastagi=""):
        self.database = database
        self.engine = engine
        self.settings = settings
        self.dialer = dialer
        self.tz = tz
        self.clock = clock
        self.speech = speech
        self.trunk = trunk
        self.poll = poll
        self.caller_number = caller_number
        self.texts = texts
        #: This instance's FastAGI address (agi.advertise): its calls are
        #: answered here first, where they are tracked ("" leaves the dialplan's).
        self.fastagi = fastagi
        self.calls: dict = {}        # leg id -> Call, placed and not settled
        self.sending: dict = {}      # attempt id -> Call of a text notice on its way
        self.by_attempt: dict = {}   # attempt id -> Call
        self.campaigns: dict = {}    # id -> CampaignState (not ended)
        self._loop = None
        self._busy = False
        self._soon = None            # a round asked for before the next poll
        self._ready = False          # recovered from the last run
        self.placed = 0              # calls placed since start (tests, logs)

    # Running ---------------------------------------------------------------------

    def start(self) -> defer.Deferred:
        """Recover what the last run left calling, then look every C{poll} seconds."""
        hold = self.settings.ring_timeout + 5.0
        d = self.database.run(partial(store.recover, now=utc_now(self.clock), hold=hold))

        def recovered(count):
            if count:
                self.log.warn("broadcast: {count} calls were up when the server stopped; "
                              "those households are called again (who pressed 1 is not)",
                              count=count)
            self._ready = True
            self._loop = task.LoopingCall(self.tick)
            self._loop.clock = self.clock
            self._loop.start(self.poll, now=True).addErrback(
                lambda f: self.log.failure("broadcast: the dispatcher stopped", f))

        return d.addCallback(recovered)

    def stop(self) -> None:
        """Place no more calls; those up are left to end (the next start recovers them)."""
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        if self._soon is not None and self._soon.active():
            self._soon.cancel()
        for call in list(self.calls.values()):
            if call.guard is not None and call.guard.active():
                call.guard.cancel()

    def refill_soon(self, delay=0.05) -> None:
        """
        A line came free (a call settled): a round in C{delay} seconds rather
        than at the next poll, so a line does not stand idle for up to
        C{poll} seconds between two notices (with 3 s calls that was a
        sixth of the trunk). Rounds asked for meanwhile are one round.
        """
        if self._soon is not None and self._soon.active():
            return
        if self._loop is None or not self._loop.running:
            return

        def due():
            self._soon = None
            if self._busy:
                # A round is under way: it may have read the lines before this
                # one came free; look again once it is over.
                self.refill_soon(delay)
                return
            self.tick()

        self._soon = self.clock.callLater(delay, due)

    def tick(self):
        """Follow the campaigns, then fill the free lines (one tick at a time)."""
        if self._busy or not self._ready:
            return None
        self._busy = True
        d = self.database.run(store.active)
        d.addCallback(self._follow)
        d.addCallback(lambda _: self._fill())
        d.addErrback(lambda f: self.log.failure("broadcast: a dispatcher round failed", f))

        def done(_):
            self._busy = False

        return d.addBoth(done)

    # Campaigns ------------------------------------------------------------------

    def _follow(self, actives) -> None:
        now = utc_now(self.clock)
        seen = {a.id: a for a in actives}
        for campaign_id in [cid for cid in self.campaigns if cid not in seen]:
            # Cancelled (or done) since the last look: nothing of it rings on.
            del self.campaigns[campaign_id]
            self._stop_calls(campaign_id, STOPPED)
        for active in actives:
            state = self.campaigns.get(active.id)
            if state is None:
                state = self.campaigns[active.id] = CampaignState(active)
            state.active = active
            if active.status == PAUSED:
                continue  # its calls up end as they will; no new one
            if state.sounds is None and state.preparing is None and active.start_at <= now:
                self._prepare(state)
            elif state.sounds is not None and active.status == SCHEDULED:
                self._begin(state)

    def _prepare(self, state) -> None:
        """Render the campaign's notice and question (or take its recording), then start it."""
        active = state.active
        renderings = []
        if active.channel == TEXT:
            # Nothing to render: the text goes as it is.
            if self.texts is None:
                renderings.append(defer.fail(ValueError("no text channel configured")))
            else:
                renderings.append(defer.succeed("text"))
        elif active.recording:
            renderings.append(defer.succeed(active.recording))
        elif self.speech is None:
            renderings.append(defer.fail(ValueError("no speech engine to say the text and "
                                                    "no recording given")))
        else:
            renderings.append(defer.maybeDeferred(self.speech.render, active.text))
        if self.speech is not None and active.channel != TEXT:
            question = defer.maybeDeferred(self.speech.render, QUESTION)
            question.addErrback(lambda f: None)  # the keys are pressed without it
        else:
            question = defer.succeed(None)
        renderings.append(question)
        d = defer.gatherResults(renderings, consumeErrors=True)
        state.preparing = d

        def ready(names):
            state.sounds = tuple(names)
            state.preparing = None
            self.log.info("broadcast: campaign {id} ready to play ({sound})", id=active.id,
                          sound=names[0])
            if active.status == SCHEDULED:
                self._begin(state)

        def failed(failure):
            state.preparing = None
            error = failure.value.subFailure if isinstance(failure.value,
                                                           defer.FirstError) else failure
            note = f"nothing to play: {error.getErrorMessage()}"
            self.log.error("broadcast: campaign {id} cannot run: {note}", id=active.id,
                           note=note)
            self.campaigns.pop(active.id, None)
            return self.database.run(partial(store.fail, campaign_id=active.id, note=note,
                                             now=utc_now(self.clock)))

        d.addCallbacks(ready, failed)
        d.addErrback(lambda f: self.log.failure("broadcast: preparing campaign {id}", f,
                                                id=active.id))

    def _begin(self, state) -> None:
        d = self.database.run(partial(store.start, campaign_id=state.id,
                                      now=utc_now(self.clock)))

        def started(ok):
            if ok:
                state.active = replace(state.active, status=RUNNING)
                self.log.info("broadcast: campaign {id} started", id=state.id)

        d.addCallbacks(started, lambda f: self.log.failure("broadcast: starting {id}", f,
                                                           id=state.id))

    def quiet_now(self) -> bool:
        """Whether it is quiet hours in the community now."""
        hours = self.settings.quiet_hours
        if hours is None:
            return False
        local = datetime.fromtimestamp(self.clock.seconds(), self.tz)
        return hours.contains(local.time())

    # Lines -------------------------------------------------------------------------

    def free_lines(self) -> int:
        """Calls that may be placed now: the broadcast's share, within the trunk's free lines."""
        free = self.settings.lines - len(self.calls) - len(self.sending)
        if self.trunk is not None:
            trunk_free = self.trunk.free()
            if trunk_free is not None:
                free = min(free, trunk_free)
        return max(0, free)

    def _fill(self):
        free = self.free_lines()
        if free <= 0 or not self.engine.can_place_calls():
            return None
        quiet = self.quiet_now()
        running = [s for s in self.campaigns.values()
                   if s.active.status == RUNNING and s.sounds is not None
                   and (s.active.priority == URGENT or not quiet)]
        if not running:
            return None
        running.sort(key=lambda s: (s.active.priority != URGENT, s.id))
        now = utc_now(self.clock)
        d = self.database.run(partial(store.due, campaign_ids=[s.id for s in running],
                                      now=now, limit=free))
        d.addCallback(self._begin_calls, now)
        d.addCallback(lambda _: self._end_idle(running, now))
        return d

    def _end_idle(self, running, now):
        """
        A running campaign with no call up may have nothing left (its last
        call settled while it was paused): done, if the database agrees.
        """
        busy = {call.campaign_id for call in
                list(self.calls.values()) + list(self.sending.values())}
        idle = [s.id for s in running if s.id not in busy]
        if not idle:
            return None

        def check(session):
            return [cid for cid in idle if store.finish_if_done(session, cid, now)]

        def ended(done):
            for cid in done:
                self.log.info("broadcast: campaign {campaign} done", campaign=cid)
                self.campaigns.pop(cid, None)

        return self.database.run(check).addCallback(ended)

    def _begin_calls(self, due, now):
        if not due:
            return None
        # An alarm may have taken lines while the database answered.
        due = due[:self.free_lines()]
        d = self.database.run(partial(store.begin, deliveries=[item.id for item in due],
                                      now=now))

        def place(started):
            for item in due:
                attempt_id = started.get(item.id)
                state = self.campaigns.get(item.campaign_id)
                if attempt_id is None:
                    continue  # paused or cancelled meanwhile
                if state is None or state.sounds is None:
                    # Cancelled while the row was written: this attempt never rang.
                    self._write(Call(item.campaign_id, item.id, attempt_id, item.number, None),
                                STOPPED, "cancelled before it was placed")
                    continue
                call = Call(item.campaign_id, item.id, attempt_id, item.number, state.sounds)
                if state.active.channel == TEXT:
                    self._send_text(call, state.active.text)
                else:
                    self._place(call)

        return d.addCallback(place)

    def _place(self, call) -> None:
        group = self.engine.group(
            self, call, context=CONTEXT, exten="s", caller_number=self.caller_number,
            caller_name="", ring_timeout=self.settings.ring_timeout,
            name=f"BROADCAST {call.campaign_id}", prefix=f"bcast-{call.attempt_id}")
        call.group = group
        self.by_attempt[call.attempt_id] = call
        self.placed += 1
        leg = group.ring(call.number, self.dialer.dial_string(call.number, self.settings.trunk),
                         "broadcast")
        call.leg = leg
        self.calls[leg.id] = call
        # A call answered whose end is never heard of (the AMI link lost its
        # Hangup): let go once no notice could still be playing.
        call.guard = self.clock.callLater(self.settings.ring_timeout + 900.0,
                                          self.settle, call, NOT_PLACED, "no end seen")

    def _send_text(self, call, text) -> None:
        """A text notice: sent (taken for sending) or failed, counted like a call."""
        self.sending[call.attempt_id] = call
        self.placed += 1
        d = self.texts.send(call.number, text)

        def sent(result):
            self.sending.pop(call.attempt_id, None)
            call.settled = self._write(call, SENT_IT if result.sent else CALL_FAILED,
                                       result.detail)

        d.addCallback(sent)
        d.addErrback(lambda f: self.log.failure("broadcast: text to {number}", f,
                                                number=mask(call.number)))

    def yield_line(self, channel_id) -> None:
        """The trunk took C{channel_id}'s line back for an urgent call: hang it up."""
        call = self.calls.get(channel_id)
        if call is None:
            return
        self._hang_up(call, YIELDED)

    def _stop_calls(self, campaign_id, why) -> None:
        for call in [c for c in self.calls.values() if c.campaign_id == campaign_id]:
            self._hang_up(call, why)

    def _hang_up(self, call, why) -> None:
        if call.settled is not None:
            return
        call.stop = why
        if call.leg is not None and call.leg.state == "ringing":
            call.group.cancel_ringing(why)  # its fate, CANCELLED, comes to ended()
        else:
            call.group.hang_up(call.leg)    # answered: its Hangup settles it

    # What the engine tells (IRingListener) ---------------------------------------

    def wanted(self, group) -> bool:
        return group.subject.settled is None

    def variables(self, leg) -> dict:
        call = leg.group.subject
        return {"SWITCHBOARD_BROADCAST": str(call.campaign_id),
                "SWITCHBOARD_ATTEMPT": str(call.attempt_id),
                "SWITCHBOARD_DELIVERY": str(call.delivery_id),
                "SWITCHBOARD_LEG": leg.id,
                # What the dialplan plays once if the server is gone when it answers.
                "SWITCHBOARD_SOUND": call.sounds[0] if call.sounds else "",
                **({"SWITCHBOARD_AGI": self.fastagi} if self.fastagi else {})}

    def noted(self, leg, kind, detail) -> None:
        if kind == ANSWERED:
            leg.group.subject.answered = True

    def ended(self, leg, retried) -> None:
        call = leg.group.subject
        if leg.state == LEG_CANCELLED:
            self.settle(call, call.stop or STOPPED, "hung up before it was answered")
        else:
            self.settle(call, _LEG_OUTCOMES.get(leg.state, CALL_FAILED), leg.state)

    def not_placed(self, leg, link_down) -> None:
        call = leg.group.subject
        self.settle(call, YIELDED if call.stop == YIELDED else NOT_PLACED,
                    "no AMI link" if link_down else "Asterisk did not place it")

    # AMI events -------------------------------------------------------------------

    def note_channel(self, uniqueid, channel) -> None:
        self.engine.note_channel(uniqueid, channel)

    def note_hangup(self, uniqueid) -> None:
        """A channel is gone: an answered call's end."""
        self.engine.note_hangup(uniqueid)
        call = self.calls.get(uniqueid)
        if call is not None and call.answered and call.settled is None:
            self.settle(call, call.stop or UNCONFIRMED, "hung up without pressing 1")

    # Outcomes ---------------------------------------------------------------------

    def call_for(self, attempt_id):
        """The call of attempt C{attempt_id} (its FastAGI session asks), or None."""
        try:
            return self.by_attempt.get(int(attempt_id))
        except (TypeError, ValueError):
            return None

    def settle(self, call, outcome, detail="", repeats=0) -> defer.Deferred:
        """
        C{call} came to C{outcome}: written once (the first outcome wins);
        the Deferred fires when it is in the database.
        """
        if call.settled is not None:
            return call.settled
        if call.guard is not None and call.guard.active():
            call.guard.cancel()
        if call.leg is not None:
            self.calls.pop(call.leg.id, None)
            self.engine.forget(call.group)
        self.by_attempt.pop(call.attempt_id, None)
        call.settled = self._write(call, outcome, detail, repeats)
        return call.settled

    def _write(self, call, outcome, detail="", repeats=0) -> defer.Deferred:
        s = self.settings
        now = utc_now(self.clock)
        d = self.database.run(partial(
            store.finish, attempt_id=call.attempt_id, delivery_id=call.delivery_id,
            outcome=outcome, now=now, retries=s.retries, retry_after=s.retry_after,
            again_after=5.0 if outcome == YIELDED else 10.0, repeats=repeats, detail=detail))

        def written(state):
            # Masked: a text campaign's numbers are residents' mobiles.
            self.log.info("broadcast: campaign {campaign} {number}: {outcome} -> {state}",
                          campaign=call.campaign_id, number=mask(call.number), outcome=outcome,
                          state=state or "unchanged")
            if state is not None and state != "pending":
                return self.database.run(partial(store.finish_if_done,
                                                 campaign_id=call.campaign_id, now=now))
            return None

        def finished(done):
            if done:
                self.log.info("broadcast: campaign {campaign} done", campaign=call.campaign_id)
                self.campaigns.pop(call.campaign_id, None)
            else:
                self.refill_soon()

        d.addCallback(written)
        d.addCallback(finished)
        d.addErrback(lambda f: self.log.failure("broadcast: writing the outcome of {call}", f,
                                                call=call))
        return d

    def heard(self, call, repeats=0) -> defer.Deferred:
        return self.settle(call, HEARD_IT, "pressed 1", repeats)

    def unconfirmed(self, call, repeats=0) -> defer.Deferred:
        return self.settle(call, call.stop or UNCONFIRMED, "no 1 pressed", repeats)

    def heard_unknown(self, attempt_id, delivery_id, repeats=0) -> defer.Deferred:
        """A 1 pressed on a call this server did not place (before a restart)."""
        s = self.settings
        return self.database.run(partial(
            store.finish, attempt_id=int(attempt_id), delivery_id=int(delivery_id),
            outcome=HEARD_IT, now=utc_now(self.clock), retries=s.retries,
            retry_after=s.retry_after, repeats=repeats, detail="pressed 1 (after a restart)"))
