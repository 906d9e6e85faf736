"""
The alarm engine: ring every neighbour at once, wait for someone to press 1,
escalate when nobody does, and never lose an alarm on the way.

  - An alarm is on record (L{AlarmRecorder.open_alarm}) before any phone
    rings; if it cannot be recorded, L{AlarmCoordinator.raise_alarm} fails
    and the dialplan rings the neighbours natively.
  - A #9 while no calls can be placed (no AMI link) is handed at once to
    the dialplan's native ring-all, and recorded as handed over.
  - All neighbour legs are originated in one go, each with its own channel
    id, so none waits for another.
  - Escalation stages ring at their configured times unless someone has
    confirmed; a caller nobody knows, or a household without neighbours,
    goes to the first stage at once; after the last stage the first is rung
    again every C{repeat_every} seconds.
  - A neighbour who did not answer (busy, no answer, no key pressed) is rung
    again, C{retry_unanswered} times. A call that could not be placed
    (the AMI link is down, or Asterisk refused it, e.g. while restarting)
    is not an outcome: it is tried again shortly, for as long as the alarm
    is open, and the first stage is rung at once. That retry keeps the leg's channel id: when the
    link dropped after Asterisk took the first call, that call may still be
    ringing, and Asterisk refuses a second channel with the same id, so a
    neighbour is never rung twice at once for one leg. When the retry is
    refused, Asterisk is asked whether that first call is up; if it is, the
    leg follows it (its hangup, or a neighbour answering it) instead of
    counting as failed and ringing the phone a third time.
  - Every change goes to the timeline.
"""

from __future__ import annotations

import uuid

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from alarm.callerline import CallerLines
from alarm.models import CLOSED, CONFIRMED, NATIVE, OPEN
from alarm.recorder import room_name
from alarm.responses import Responses
from alarm.resumed import FirstCalls
from alarm.state import (
    ANSWERED,
    BUSY,
    FAILED,
    NEIGHBOURS,
    NO_ANSWER,
    RINGING,
    UNANSWERED,
    ActiveAlarm,
    CallRefused,
    Leg,
)
from switchboard.ami.errors import (
    AMIArgumentError,
    AMIConnectionLost,
    AMINotConnected,
    AMITimeout,
)

RESPONDER_CONTEXT = "switchboard-alarm-responder"
# The invariant: an open alarm nobody has confirmed has a phone ringing, or
# one due to ring within this many seconds (the longest wait by design is a
# neighbour's retry, C{retry_after}, 10 s by default, or a call not placed,
# retried within 10 s).
SILENCE_BOUND = 15.0
UNIDENTIFIED = ("unidentified",)


def _keys(household_id, number) -> tuple:
    """What makes two #9 calls the same alarm: the household, or the calling number."""
    keys = []
    if household_id is not None:
        keys.append(("household", household_id))
    if number:
        keys.append(("number", number))
    return tuple(keys)


def _opening(household, caller_raw) -> str:
    """The timeline's first line: where the #9 came from."""
    if household is not None:
        return f"#9 from {household.address}"
    return f"#9 from an unregistered caller {caller_raw or '(no caller ID)'}"


_LINK_TROUBLE = (AMINotConnected, AMIConnectionLost, AMITimeout)
# OriginateResponse reasons meaning no call was made: Asterisk refused the
# action (None: shutting down, no such endpoint...) or the channel never
# came up (0). Trouble to retry, not what a neighbour did.
_NOT_PLACED_REASONS = (None, 0)
_OUTCOMES = {"answered": ANSWERED, "busy": BUSY, "no-answer": NO_ANSWER,
             "congestion": FAILED, "failed": FAILED}
_UNSAFE = str.maketrans("", "", "\r\n\0\"<>")
NATIVE_OUTCOME = ("rung natively by the dialplan: no AMI link to place calls with "
                  "(confirmations are in Asterisk's log, not here)")


class HandedToDialplan(Exception):
    """
    The alarm is left to the dialplan's native ring-all: this server cannot
    place calls now (no AMI link), and the neighbours must ring at once.
    """


class AlarmCoordinator(Responses, FirstCalls):
    """
    Runs alarms. What responders do and how alarms end is in
    L{alarm.responses.Responses}; how a retry refused because its first
    call is still up follows that call, in L{alarm.resumed.FirstCalls}.

    @param dialer: L{switchboard.dialing.Dialer} (E.164 -> dial string).
    @param originate: a callable with the signature of
        C{AMIClient.originate}, returning a Deferred L{OriginateResult}.
    @param hangup: C{hangup(channel)} -> Deferred (C{AMIClient.hangup}).
    @param recorder: an L{AlarmRecorder}.
    @param config: an L{AlarmConfig}.
    @param hotline_number: the number shown as the caller of alarm calls.
    @param kick: optional C{kick(room)} -> Deferred removing everyone from a
        ConfBridge room (C{ConfbridgeKick}), so that confirmed neighbours in
        the room hear that a cancelled alarm was cancelled.
    @param channel_state: optional C{channel_state(uniqueid)} -> Deferred
        state name, or L{None} for no such channel (C{AMIClient.channel_state});
        without it a refused retry counts as failed.
    @param follow_every: seconds between looks at a first call that is
        still up after its retry was refused.
    @param connected: optional C{connected()} -> whether calls can be placed
        now (C{AMIClient.connected}); a new alarm raised while they cannot
        is handed to the dialplan (L{HandedToDialplan}).
    @param when_connected: optional C{when_connected()} -> Deferred fired
        once calls can be placed (C{AMIClient.when_connected}): an alarm
        recovered at start-up rings then, not into a link still down.
    @param unidentified_window: seconds during which #9 calls of callers
        nobody can identify (no caller ID, unregistered) join one alarm
        rather than each ring the duty stage.
    @param room_size: optional C{room_size(room)} -> Deferred number of
        channels in a ConfBridge room (C{AMIClient.room_size}). After a
        restart nobody knows who is still in an alarm's room (they are held
        there natively); a recovered alarm that someone has confirmed closes
        once its room is seen empty twice, C{room_every} seconds apart.
    """

    log = Logger()

    def __init__(self, dialer, originate, hangup, recorder, config, clock=None, *,
                 hotline_number="", kick=None, context=RESPONDER_CONTEXT, exten="s",
                 forget_after=3600.0, channel_state=None, follow_every=5.0, connected=None,
                 when_connected=None, room_size=None, room_every=10.0,
                 unidentified_window=120.0):
        if clock is None:
            from twisted.internet import reactor as clock
        self.dialer = dialer
        self.originate = originate
        self.hangup = hangup
        self.recorder = recorder
        self.config = config
        self.clock = clock
        self.hotline_number = str(hotline_number or "").translate(_UNSAFE)
        self.kick = kick
        self.channel_state = channel_state
        self.connected = connected
        self.when_connected = when_connected
        self.room_size = room_size
        self.room_every = room_every
        self.unidentified_window = unidentified_window
        self._room_looks: dict = {}   # str(alarm id) -> DelayedCall of its next look
        self.caller_lines = CallerLines()
        self.follow_every = follow_every
        self.context = context
        self.exten = exten
        self.forget_after = forget_after
        self._open: dict = {}      # de-duplication key -> ActiveAlarm (not ended)
        self._alarms: dict = {}    # str(id) -> ActiveAlarm (also recently ended)
        self._legs: dict = {}      # leg id (= channel unique id) -> Leg
        self._dials: dict = {}
        self._forgetting: list = []

    # Looking up ------------------------------------------------------------

    def alarm(self, alarm_id) -> ActiveAlarm | None:
        return self._alarms.get(str(alarm_id).strip())

    def leg(self, leg_id) -> Leg | None:
        return self._legs.get(str(leg_id).strip())

    def open_alarms(self) -> list:
        return [a for a in self._alarms.values() if a.active]

    # Raising ----------------------------------------------------------------

    def raise_alarm(self, caller_raw, household) -> defer.Deferred:
        """
        Raise an alarm for a call from C{caller_raw} (as presented) of
        C{household} (a L{HouseholdSnapshot}, or None if not registered).
        Fires with the L{ActiveAlarm} once it is on record and its phones
        are being rung; an open alarm of the same household (or, when
        unregistered, of the same number) is joined instead.

        Fails at once with L{HandedToDialplan} when no calls can be placed
        (no AMI link), unless a neighbour has already confirmed an open
        alarm of the household (then it is joined): the dialplan rings
        natively, and the alarm goes on record as handed over.
        """
        caller_raw = str(caller_raw or "")
        now = self.clock.seconds()
        number = self.dialer.numbers.try_normalise(caller_raw) if caller_raw else None
        keys = _keys(household.id if household is not None else None, number)
        existing = next((self._open[k] for k in keys if k in self._open), None)
        if existing is None and household is None:
            existing = self._unidentified_nearby(now)
        if existing is not None and existing.ended:
            existing = None
        if not self._can_place_calls() and (existing is None or not existing.confirmed):
            return self._hand_to_dialplan(caller_raw, number, household, now)
        if existing is not None:
            if existing.callers is not None:
                existing.callers += 1
            d = existing.when_ready()
            d.addCallback(self._joined, caller_raw)
            return d
        alarm = ActiveAlarm(keys=keys, household=household, caller_raw=caller_raw,
                            caller_number=number, opened=now,
                            address=household.address if household is not None else "")
        self._claim(alarm)
        if household is None:
            self._open[UNIDENTIFIED] = alarm
        d = self._record_opening(caller_raw, number, household, now)
        d.addCallbacks(self._opened, self._not_recorded, callbackArgs=(alarm,),
                       errbackArgs=(alarm,))
        return alarm.when_ready()

    def _unidentified_nearby(self, now):
        """
        The alarm of an unidentified caller (no caller ID, or not
        registered) opened less than C{unidentified_window} seconds ago: a
        #9 of another such caller joins it, so that a burst of them rings
        the duty stage once, every caller held in one room and heard by
        whoever answers.
        """
        alarm = self._open.get(UNIDENTIFIED)
        if alarm is not None and now - alarm.opened <= self.unidentified_window:
            return alarm
        return None

    def _can_place_calls(self) -> bool:
        try:
            return self.connected is None or bool(self.connected())
        except Exception:
            self.log.failure("ALARM: cannot tell whether calls can be placed")
            return False

    def _hand_to_dialplan(self, caller_raw, number, household, now):
        """Leave the ringing to the dialplan at once; put the alarm on record meanwhile."""
        self.log.critical("ALARM from {caller}: no AMI link to place calls with; the dialplan "
                          "rings the neighbours natively", caller=caller_raw)
        d = self._record_opening(caller_raw, number, household, now)

        def recorded(alarm_id):
            self.recorder.event(alarm_id, NATIVE, at=now, detail=NATIVE_OUTCOME)
            self.recorder.update(alarm_id, status=NATIVE, closed_at=now, outcome=NATIVE_OUTCOME)

        d.addCallbacks(recorded, lambda f: None)  # the recorder logged it
        return defer.fail(HandedToDialplan(NATIVE_OUTCOME))

    def _record_opening(self, caller_raw, number, household, now):
        """Put a new alarm on record: a Deferred firing with its id."""
        return self.recorder.open_alarm(
            at=now, caller_raw=caller_raw, caller_number=number,
            household_id=household.id if household is not None else None,
            address=household.address if household is not None else "",
            detail=_opening(household, caller_raw))

    def _claim(self, alarm):
        for key in alarm.keys:
            self._open.setdefault(key, alarm)

    def _release(self, alarm):
        for key in alarm.keys + (UNIDENTIFIED,):
            if self._open.get(key) is alarm:
                del self._open[key]

    def _joined(self, alarm, caller_raw):
        if alarm.household is None and caller_raw != alarm.caller_raw:
            detail = ("another caller nobody can identify: held in the same room, rung "
                      "for once")
        else:
            detail = "another #9 call while the alarm is open: joins it"
        self._event(alarm, "joined", number=caller_raw or None, detail=detail)
        return alarm

    def _not_recorded(self, failure, alarm):
        alarm.status = "failed"
        self._release(alarm)
        self.log.critical("ALARM from {caller} could not be recorded; the dialplan must "
                          "ring natively: {error}", caller=alarm.caller_raw, error=failure.value)
        alarm._fire_ready(False, failure)

    def _opened(self, alarm_id, alarm):
        alarm.id, alarm.room, alarm.status = alarm_id, room_name(alarm_id), OPEN
        self._alarms[str(alarm_id)] = alarm
        neighbours = alarm.household.neighbours if alarm.household is not None else ()
        self.log.warn("ALARM {id} from {caller} ({where}): ringing {n} neighbours",
                      id=alarm_id, caller=alarm.caller_raw, n=len(neighbours),
                      where=alarm.address or "unregistered")
        # Every neighbour at once: originate only queues, nothing is awaited here.
        rung = [self._ring(alarm, NEIGHBOURS, number, self.config.neighbour_trunk)
                for number in neighbours]
        if any(rung):
            self._schedule(alarm, at_once=False)
        else:
            why = ("caller not registered" if alarm.household is None
                   else "household has no neighbours" if not neighbours
                   else "no neighbour could be dialled")
            self._event(alarm, "no-neighbours", detail=why)
            self._schedule(alarm, at_once=True, reason=why)
        alarm._fire_ready(True, alarm)

    # Legs --------------------------------------------------------------------

    def _ring(self, alarm, stage, target, trunk, attempt=1, leg_id=None, quiet=False):
        alarm.legs_made += 1
        resumed = leg_id is not None
        if leg_id is None:
            leg_id = f"swb-{alarm.id}-{alarm.legs_made}-{uuid.uuid4().hex[:12]}"
        try:
            dial = self._dial(target, trunk)
        except Exception as e:
            self.log.critical("ALARM {id}: cannot dial {target}: {e}", id=alarm.id,
                              target=target, e=e)
            self._event(alarm, FAILED, number=target, detail=f"{stage}: no dial string: {e}")
            return None
        previous = alarm.legs.get(leg_id) if resumed else None
        leg = Leg(leg_id, alarm, stage, target, dial, attempt)
        leg.resumed = resumed
        if previous is not None:
            leg.channel = previous.channel  # the first call's, if Asterisk named it
        leg.changed = self.clock.seconds()
        leg.quiet = quiet
        alarm.legs[leg_id] = leg
        self._legs[leg_id] = leg
        if not quiet:
            self._event(alarm, RINGING, leg=leg,
                        detail=stage + (f", attempt {attempt}" if attempt > 1 else ""))
        name = self.config.caller_id_name.translate(_UNSAFE)
        caller_id = f'"{name}" <{self.hotline_number}>' if self.hotline_number else f'"{name}"'
        try:
            d = self.originate(dial, context=self.context, exten=self.exten, priority=1,
                               variables={"SWITCHBOARD_ALARM": str(alarm.id),
                                          "SWITCHBOARD_LEG": leg_id,
                                          "SWITCHBOARD_ROOM": alarm.room,
                                          # who was rung, for a server that
                                          # takes the leg up after a restart
                                          "SWITCHBOARD_TARGET": target,
                                          "SWITCHBOARD_STAGE": stage},
                               caller_id=caller_id, timeout=self.config.ring_timeout,
                               channel_id=leg_id)
        except Exception:
            d = defer.fail()
        d.addCallbacks(self._outcome, self._not_placed, callbackArgs=(leg,), errbackArgs=(leg,))
        d.addErrback(self._leg_error, leg)
        return leg

    def _leg_error(self, failure, leg):
        """What went wrong handling C{leg}'s calls: logged, never lost in a Deferred."""
        self.log.failure("ALARM {id}: leg {leg}", failure, id=leg.alarm.id, leg=leg.id)

    def _dial(self, target, trunk):
        key = (target, trunk)
        dial = self._dials.get(key)
        if dial is None:
            if len(self._dials) > 100000:
                self._dials.clear()
            dial = self._dials[key] = self.dialer.dial_string(target, trunk)
        return dial

    def _outcome(self, result, leg):
        if getattr(result, "channel", None) and leg.channel is None:
            leg.channel = result.channel
        state = _OUTCOMES.get(result.outcome, FAILED)
        if state == ANSWERED:
            if leg.state == RINGING:
                self._set(leg, ANSWERED)
            return
        if leg.state != RINGING:
            return  # already answered, or hung up by a cancel
        detail = result.message if state == FAILED else ""
        if state == FAILED and leg.resumed:
            self._look_for_first_call(leg, detail)
            return
        if state == FAILED and getattr(result, "reason", None) in _NOT_PLACED_REASONS:
            self._not_placed(Failure(CallRefused(detail or "Asterisk refused the call")), leg)
            return
        self._set(leg, state, detail=detail)
        self._after_leg(leg)

    def _not_placed(self, failure, leg):
        """
        C{leg}'s call was not placed. Only a call that can never be placed
        (an unsafe dial string) is an outcome; anything else (no link,
        Asterisk refusing while it restarts) is trouble to retry, so an
        alarm is never left with every stage "rung" and nothing ringing.
        """
        alarm = leg.alarm
        if failure.check(AMIArgumentError):
            self.log.failure("ALARM {id}: {dial} can never be called", failure,
                             id=alarm.id, dial=leg.dial)
            if leg.state == RINGING:
                self._set(leg, FAILED, detail=str(failure.value)[:200])
                self._after_leg(leg)
            return
        link_down = failure.check(*_LINK_TROUBLE) is not None
        if not link_down and not failure.check(CallRefused):
            self.log.failure("ALARM {id}: originate of {dial} failed", failure,
                             id=alarm.id, dial=leg.dial)
            if leg.state == RINGING and leg.resumed:
                self._look_for_first_call(leg, str(failure.value)[:200])
                return
        if (failure.check(AMINotConnected) and leg.state == RINGING and alarm.active
                and not alarm.confirmed):
            line = self.caller_lines.line_for(alarm.id)
            if line is not None:
                self._place_through_caller(leg, line)
                return
        if not leg.quiet:
            self.log.critical("ALARM {id}: could not call {dial} ({error}); trying again",
                              id=alarm.id, dial=leg.dial, error=failure.value)
        if leg.state == RINGING:
            if leg.quiet:
                leg.state = FAILED
            else:
                self._set(leg, FAILED, detail=f"call not placed: {failure.value}; tried "
                                              f"again until it is"[:200])
        if alarm.active and not alarm.confirmed:
            failures = sum(1 for other in alarm.legs.values() if other.target == leg.target
                           and other.stage == leg.stage and other.state == FAILED)
            delay = min(self.config.originate_retry * 2 ** max(0, failures - 1), 10.0)
            if (failure.check(AMIConnectionLost, AMITimeout)
                    and self.caller_lines.line_for(alarm.id) is not None):
                # Lost in flight, the call is most likely still ringing: the
                # caller's line places it again only once its ring time is
                # over, so that no phone is rung twice at once. (A link back
                # by then retries it under its own channel id.)
                ringing_until = leg.changed + self.config.ring_timeout
                delay = max(delay, ringing_until - self.clock.seconds())
            self._later(alarm, delay, self._again, leg, leg.attempt, "call not placed",
                        leg.id, retry=True)
            # No link: every call's fate is unknown. Refused: ring the first
            # stage once nothing at all is ringing.
            if 0 not in alarm.stages_rung and (link_down or not alarm.live_legs()):
                self._later(alarm, 0, self._stage, alarm, 0, "calls cannot be placed")

    # The caller's line (no AMI link) ----------------------------------------------

    def hold(self, alarm_id, session) -> None:
        """The #9 caller on C{session} waits between slices: calls may be placed from it."""
        self.caller_lines.hold(alarm_id, session)

    def release(self, alarm_id, session) -> None:
        self.caller_lines.release(alarm_id, session)

    def _place_through_caller(self, leg, line):
        """No AMI link: place C{leg} with the Originate application on the caller's channel."""
        alarm = leg.alarm
        leg.via_caller = True
        self.log.critical("ALARM {id}: no AMI link: {dial} placed through the caller's line",
                          id=alarm.id, dial=leg.dial)
        self._event(alarm, RINGING, leg=leg,
                    detail=f"{leg.stage}: placed through the caller's line (no AMI link)")
        args = CallerLines.originate_args(
            leg, context=self.context, exten=self.exten, ring_timeout=self.config.ring_timeout,
            caller_number=self.hotline_number,
            caller_name=self.config.caller_id_name.translate(_UNSAFE))
        try:
            d = line.exec_("Originate", *args)
        except Exception:
            d = defer.fail()

        def line_gone(failure):
            self.log.warn("ALARM {id}: the caller's line could not place {dial}: {error}",
                          id=alarm.id, dial=leg.dial, error=failure.getErrorMessage())
            self.caller_lines.release(alarm.id, line)
            if leg.state == RINGING and alarm.legs.get(leg.id) is leg:
                leg.via_caller = False
                self._not_placed(Failure(AMINotConnected("no AMI link, no caller's line")),
                                 leg)

        d.addErrback(line_gone)
        d.addErrback(self._leg_error, leg)
        self._later(alarm, self.config.ring_timeout + 10.0, self._caller_line_unanswered, leg)

    def _caller_line_unanswered(self, leg):
        if leg.state == RINGING and leg.alarm.legs.get(leg.id) is leg:
            self._set(leg, NO_ANSWER, detail="placed through the caller's line: not answered "
                                             "within the ring time")
            self._after_leg(leg)

    def _after_leg(self, leg):
        """A leg ended without a confirmation: ring it again, or escalate if nothing is left."""
        alarm = leg.alarm
        if not alarm.active or alarm.confirmed:
            return
        if (leg.stage == NEIGHBOURS and leg.state in UNANSWERED
                and leg.attempt <= self.config.retry_unanswered):
            self._later(alarm, self.config.retry_after, self._again, leg, leg.attempt + 1,
                        f"{leg.state} before", retry=True)
            return
        if not alarm.live_legs() and not alarm.retries:
            following = [i for i in range(len(self.config.stages)) if i not in alarm.stages_rung]
            if following:
                self._stage(alarm, following[0], "every phone rang out or declined")
            else:
                # Every stage has been rung and none took it: the first again,
                # never silence (whatever repeat_every says).
                self._later(alarm, min(max(self.config.retry_after, 2.0), 10.0),
                            self._ring_out_again, alarm, retry=True)

    def _ring_out_again(self, alarm):
        if alarm.active and not alarm.confirmed and not alarm.live_legs():
            self.ring_first_stage(alarm, "again: every stage rang out or declined")

    def _later(self, alarm, delay, f, *args, retry=False):
        """Call C{f(*args)} after C{delay} unless the alarm's timers are cancelled."""
        if retry:
            alarm.retries += 1

        def fire():
            if retry:
                alarm.retries -= 1
            f(*args)

        alarm.timers.append(self.clock.callLater(delay, fire))

    def _again(self, leg, attempt, why, leg_id=None):
        alarm = leg.alarm
        if not alarm.active or alarm.confirmed:
            return
        if leg_id is not None and (leg.state != FAILED or alarm.legs.get(leg_id) is not leg):
            return  # the first call turned up meanwhile (answered): nothing to place
        # Calls not placed are tried again every few seconds while the link
        # is down: the timeline has the first try and the outcome, not each.
        quiet = leg_id is not None and (leg.quiet or leg.resumed)
        if not quiet:
            self._event(alarm, "retry", number=leg.target, detail=f"{leg.stage}: {why}")
        stage = self._stage_named(leg.stage)
        trunk = stage.trunk if stage is not None else self.config.neighbour_trunk
        self._ring(alarm, leg.stage, leg.target, trunk, attempt, leg_id, quiet=quiet)

    def _stage_named(self, name):
        for stage in self.config.stages:
            if stage.name == name:
                return stage
        return None

    def _set(self, leg, state, detail=""):
        leg.state = state
        leg.changed = self.clock.seconds()
        self._event(leg.alarm, state, leg=leg, detail=detail)

    # Escalation ----------------------------------------------------------------

    def _schedule(self, alarm, *, at_once, reason=""):
        stages = self.config.stages
        if not stages:
            return
        now = self.clock.seconds()
        shift = stages[0].after if at_once else 0.0
        start = now if at_once else alarm.opened
        if at_once:
            self._stage(alarm, 0, reason)
        for i, stage in enumerate(stages):
            if i == 0 and at_once:
                continue
            delay = max(0.0, start + stage.after - shift - now)
            self._later(alarm, delay, self._stage, alarm, i, "")
        if self.config.repeat_every:
            last = max(0.0, start + stages[-1].after - shift - now)
            self._later(alarm, last + self.config.repeat_every, self._repeat, alarm)

    def _stage(self, alarm, index, reason):
        if not alarm.active or alarm.confirmed or index in alarm.stages_rung:
            return
        stage = self.config.stages[index]
        alarm.stages_rung.add(index)
        waited = self.clock.seconds() - alarm.opened
        why = reason or f"nobody confirmed within {waited:.0f} s"
        self.log.warn("ALARM {id}: ringing {stage} ({why})", id=alarm.id, stage=stage.name, why=why)
        self._event(alarm, "escalated", detail=f"{stage.name}: {why}")
        for phone in stage.phones:
            self._ring(alarm, stage.name, phone, stage.trunk)

    def _repeat(self, alarm):
        if not alarm.active or alarm.confirmed:
            return
        self.ring_first_stage(alarm, "again: still nobody confirmed")
        self._later(alarm, self.config.repeat_every, self._repeat, alarm)

    def ring_first_stage(self, alarm, why, kind="escalated") -> None:
        """Ring the first escalation stage's phones now (again)."""
        if not self.config.stages:
            return
        stage = self.config.stages[0]
        self._event(alarm, kind, detail=f"{stage.name} {why}")
        for phone in stage.phones:
            self._ring(alarm, stage.name, phone, stage.trunk)

    # The invariant ------------------------------------------------------------------

    def silent(self, alarm, within=SILENCE_BOUND) -> bool:
        """
        Whether C{alarm} breaks the invariant: it is open, nobody has
        confirmed, no phone of it rings (or is answered), and nothing is due
        to ring within C{within} seconds. L{alarm.guard.SilenceGuard} looks
        for such alarms and rings them.
        """
        if not alarm.active or alarm.confirmed or alarm.live_legs():
            return False
        now = self.clock.seconds()
        alarm.timers = [t for t in alarm.timers if t.active()]
        return not any(t.getTime() - now <= within for t in alarm.timers)

    def can_place_calls(self) -> bool:
        return self._can_place_calls()

    # Restarts -------------------------------------------------------------------

    def recover_open_alarms(self, index=None) -> defer.Deferred:
        """
        At start-up: every alarm still open in the database is taken up
        again and marked C{recovered} in its timeline. One nobody has
        confirmed rings its first escalation stage (the duty phones) as
        soon as calls can be placed; a confirmed one rings nobody. Both
        close once their room is empty and someone has confirmed. Fires
        with the alarms.
        """
        d = self.recorder.open_alarms()
        d.addCallback(self._recover, index)
        return d

    def _recover(self, rows, index):
        recovered = []
        for row in rows:
            if self.alarm(row.id) is not None:
                continue
            household = None
            if index is not None and row.household_id is not None:
                household = index.get(row.household_id)
            alarm = ActiveAlarm(keys=_keys(row.household_id, row.caller_number),
                                household=household, caller_raw=row.caller_raw,
                                caller_number=row.caller_number, address=row.address,
                                opened=self.clock.seconds())
            alarm.household_id = row.household_id
            alarm.id, alarm.room = row.id, row.room or room_name(row.id)
            alarm.recovered, alarm.callers = True, None
            alarm.confirmed_at = row.confirmed_at
            alarm.status = CONFIRMED if row.confirmed_at is not None else OPEN
            self._alarms[str(row.id)] = alarm
            self._claim(alarm)
            if alarm.confirmed:
                self.log.warn("ALARM {id} was confirmed when the server stopped: it closes "
                              "once its room is empty", id=row.id)
                self._event(alarm, "recovered",
                            detail="confirmed before the server restarted: nobody is rung")
            else:
                self.log.critical("ALARM {id} was open when the server stopped: ringing the "
                                  "duty phones", id=row.id)
                self._event(alarm, "recovered",
                            detail=f"open ({row.status}) when the server restarted")
                self._once_calls_can_be_placed(alarm, self._schedule, alarm, at_once=True,
                                               reason="recovered after a restart")
            self._look_at_room(alarm, empty_before=False)
            alarm._fire_ready(True, alarm)
            recovered.append(alarm)
        return recovered

    def _once_calls_can_be_placed(self, alarm, f, *args, **kwargs):
        """C{f(*args, **kwargs)} now, or once the AMI link is up if it is not."""
        if self._can_place_calls() or self.when_connected is None:
            f(*args, **kwargs)
            return
        self._event(alarm, "waiting", detail="no AMI link yet: the duty phones ring as soon "
                                             "as it is up")
        d = defer.maybeDeferred(self.when_connected)

        def connected(_):
            if alarm.active and not alarm.confirmed:
                f(*args, **kwargs)

        d.addCallback(connected)
        d.addErrback(lambda failure: self.log.failure("ALARM {id}: waiting for AMI", failure,
                                                      id=alarm.id))

    def _look_at_room(self, alarm, empty_before):
        """Close a recovered, confirmed alarm once its room has been seen empty twice."""
        key = str(alarm.id)
        self._room_looks.pop(key, None)
        if self.room_size is None or not alarm.active:
            return
        if not alarm.confirmed:
            self._look_again(alarm, False)
            return
        d = defer.maybeDeferred(self.room_size, alarm.room)

        def looked(size):
            if not alarm.active:
                return
            if size == 0 and empty_before and alarm.confirmed:
                self._end(alarm, CLOSED, "its room is empty: caller and responders have "
                                         "left (seen after a restart)")
                return
            self._look_again(alarm, size == 0)

        def cannot_look(failure):
            self.log.warn("ALARM {id}: cannot look into room {room}: {error}", id=alarm.id,
                          room=alarm.room, error=failure.getErrorMessage())
            self._look_again(alarm, False)

        d.addCallbacks(looked, cannot_look)
        d.addErrback(lambda failure: self.log.failure("ALARM {id}: room", failure, id=alarm.id))

    def _look_again(self, alarm, empty):
        self._room_looks[str(alarm.id)] = self.clock.callLater(
            self.room_every, self._look_at_room, alarm, empty)

    def reconfigure(self, config) -> None:
        """Use C{config} from now on (stages already scheduled keep their times)."""
        self.config = config

    def stop(self) -> None:
        """The service stops: cancel timers; open alarms stay open on record for recovery."""
        for alarm in self._alarms.values():
            alarm.cancel_timers()
        for call in self._forgetting + list(self._room_looks.values()):
            if call.active():
                call.cancel()
        self._forgetting = []
        self._room_looks = {}

    # The timeline -------------------------------------------------------------------

    def _event(self, alarm, kind, *, leg=None, number=None, detail=""):
        if alarm.id is None:
            return
        self.recorder.event(alarm.id, kind, at=self.clock.seconds(),
                            leg=leg.id if leg is not None else None,
                            number=leg.target if leg is not None else number, detail=detail)
