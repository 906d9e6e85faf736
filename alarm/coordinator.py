"""
The alarm engine: ring every neighbour at once, wait for someone to press 1,
escalate when nobody does, and never lose an alarm on the way.

  - An alarm is on record (L{AlarmRecorder.open_alarm}) before any phone
    rings; if it cannot be recorded, L{AlarmCoordinator.raise_alarm} fails
    and the dialplan rings the neighbours natively.
  - A #9 while no calls can be placed (no AMI link) is handed at once to
    the dialplan's native ring-all, and recorded as handed over.
  - All neighbour legs are rung in one go by the alarm's ring group
    (L{switchboard.ringgroup}), each with its own channel id, so none waits
    for another.
  - Escalation stages ring at their configured times unless someone has
    confirmed; a caller nobody knows, or a household without neighbours,
    goes to the first stage at once; after the last stage the first is rung
    again every C{repeat_every} seconds.
  - A neighbour who did not answer (busy, no answer, no key pressed) is rung
    again, C{retry_unanswered} times. A call that could not be placed
    (the AMI link is down, or Asterisk refused it, e.g. while restarting)
    is not an outcome: the ring group tries it again shortly under the same
    channel id, for as long as the alarm is open and nobody has confirmed
    (and follows a first call still up), and the first stage is rung at once.
  - Every change goes to L{AlarmChanges}, whose first listener is the
    timeline on record.
"""

from __future__ import annotations

from datetime import timezone

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from alarm.adoption import standing
from alarm.changes import OPENED, AlarmChange, AlarmChanges, Timeline
from alarm.models import CANCELLED, CLOSED, CONFIRMED, NATIVE, OPEN
from alarm.recorder import room_name
from alarm.state import (
    ANSWERED,
    BUSY,
    DECLINED,
    FAILED,
    LEG_CONFIRMED,
    NEIGHBOURS,
    NO_ANSWER,
    RINGING,
    UNANSWERED,
    UNCONFIRMED,
    ActiveAlarm,
    Leg,
)
from switchboard.ringgroup import RETRY, IRingListener, Retry, RingEngine

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


def _opening(household, caller_raw, not_found=None) -> str:
    """The timeline's first line: where the #9 came from."""
    if household is not None:
        return f"#9 from {household.address}"
    if not_found is not None:
        return f"#9 from {caller_raw or '(no caller ID)'}, household not known ({not_found})"
    return f"#9 from an unregistered caller {caller_raw or '(no caller ID)'}"


_UNSAFE = str.maketrans("", "", "\r\n\0\"<>")
NO_LINK = "no AMI link to place calls with"


def native_outcome(why: str = NO_LINK) -> str:
    """The outcome on record of an alarm left to the dialplan's native ring-all, and why."""
    return f"rung natively by the dialplan: {why} (confirmations are in Asterisk's log, not here)"


def _seconds(when, default) -> float:
    """A naive UTC datetime (as on record) as POSIX seconds; C{default} if there is none."""
    if when is None:
        return default
    return when.replace(tzinfo=timezone.utc).timestamp()


class HandedToDialplan(Exception):
    """
    The alarm is left to the dialplan's native ring-all: this server cannot
    place calls now (no AMI link), and the neighbours must ring at once.
    """


class AlarmCoordinator:
    """
    Runs alarms: raising and joining them, escalation, confirmations and
    endings, the invariant, recovery after a restart. The calls themselves
    are the alarm's ring group's (L{switchboard.ringgroup}): one per alarm,
    in a L{RingEngine} of the coordinator's own, whose fate of each leg
    L{AlarmLegs} turns into escalation.

    @param dialer: L{switchboard.dialing.Dialer} (E.164 -> dial string).
    @param placer: the L{switchboard.ringgroup.ICallPlacer} calls are placed
        through (L{switchboard.ringgroup.AMICallPlacer} over the AMI
        client). While it cannot place calls, a new alarm is handed to the
        dialplan (L{HandedToDialplan}), and an alarm recovered at start-up
        rings once it can, not into a link still down.
    @param recorder: an L{AlarmRecorder}.
    @param config: an L{AlarmConfig}.
    @param hotline_number: the number shown as the caller of alarm calls.
    @param kick: optional C{kick(room)} -> Deferred removing everyone from a
        ConfBridge room (C{ConfbridgeKick}), so that confirmed neighbours in
        the room hear that a cancelled alarm was cancelled.
    @param follow_every: seconds between looks at a first call that is
        still up after its retry was refused.
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

    def __init__(self, dialer, placer, recorder, config, clock=None, *,
                 hotline_number="", kick=None, context=RESPONDER_CONTEXT, exten="s",
                 forget_after=3600.0, follow_every=5.0, room_size=None, room_every=10.0,
                 unidentified_window=120.0, fastagi="", placers=None, dialers=None):
        if clock is None:
            from twisted.internet import reactor as clock
        self.dialer = dialer
        self.recorder = recorder
        self.config = config
        self.clock = clock
        #: This instance's FastAGI address (settings' agi.advertise): its legs
        #: are answered here, where their alarm is held ("" leaves the dialplan's).
        self.fastagi = fastagi
        self.engine = RingEngine(placer, clock, follow_every=follow_every)
        #: Several Asterisk servers: each one's L{ICallPlacer} and dialer by its
        #: name. An alarm's legs are placed on its caller's server (where the
        #: caller waits in the room); an unnamed or unknown one uses C{placer}.
        self.placers = dict(placers or {})
        self.dialers = dict(dialers or {})
        self.leg_policy = AlarmLegs(self)
        #: Every change of the alarms goes through here; the timeline listens first.
        self.changes = AlarmChanges()
        self.changes.subscribe(Timeline(recorder))
        self.hotline_number = str(hotline_number or "").translate(_UNSAFE)
        self.kick = kick
        self.room_size = room_size
        self.room_every = room_every
        self.unidentified_window = unidentified_window
        self._room_looks: dict = {}   # str(alarm id) -> DelayedCall of its next look
        self.context = context
        self.exten = exten
        self.forget_after = forget_after
        # Neighbours not answering are rung again; changed in place on reload.
        self._neighbour_retry = Retry(UNANSWERED, config.retry_unanswered, config.retry_after)
        self._open: dict = {}      # de-duplication key -> ActiveAlarm (not ended)
        self._alarms: dict = {}    # str(id) -> ActiveAlarm (also recently ended)
        self._dials: dict = {}
        self._forgetting: list = []

    def _new_alarm(self, asterisk="", **kwargs) -> ActiveAlarm:
        """
        An L{ActiveAlarm} with its ring group (named once its id is known),
        placing its calls on the Asterisk server C{asterisk} (its caller's).
        """
        alarm = ActiveAlarm(**kwargs)
        alarm.asterisk = asterisk if asterisk in self.placers else ""
        alarm.group = self.engine.group(self.leg_policy, alarm, context=self.context,
                                        exten=self.exten, leg_type=Leg,
                                        placer=self.placers.get(alarm.asterisk))
        self._configure(alarm.group)
        return alarm

    def _configure(self, group) -> None:
        config = self.config
        group.caller_name = config.caller_id_name.translate(_UNSAFE)
        group.caller_number = self.hotline_number
        group.ring_timeout = config.ring_timeout
        group.originate_retry = config.originate_retry

    def _identify(self, alarm, alarm_id) -> None:
        alarm.id = alarm_id
        group = alarm.group
        group.key, group.name = str(alarm_id), f"ALARM {alarm_id}"
        group.prefix = f"swb-{alarm_id}"

    # Looking up ------------------------------------------------------------

    def alarm(self, alarm_id) -> ActiveAlarm | None:
        return self._alarms.get(str(alarm_id).strip())

    def leg(self, leg_id) -> Leg | None:
        return self.engine.leg(leg_id)

    def open_alarms(self) -> list:
        return [a for a in self._alarms.values() if a.active]

    # Raising ----------------------------------------------------------------

    def raise_alarm(self, caller_raw, household, asterisk="", not_found=None) -> defer.Deferred:
        """
        Raise an alarm for a call from C{caller_raw} (as presented) of
        C{household} (a L{HouseholdSnapshot}, or None if not registered).
        Fires with the L{ActiveAlarm} once it is on record and its phones
        are being rung; an open alarm of the same household (or, when
        unregistered, of the same number) is joined instead.

        C{asterisk} names the server the caller is on (L{placers}): its legs
        are placed there. Fails at once with L{HandedToDialplan} when no
        calls can be placed there (no AMI link to it), unless a neighbour
        has already confirmed an open alarm of the household (then it is
        joined): the dialplan rings natively, and the alarm goes on record
        as handed over.

        C{not_found}: why the caller's household could not be looked up (the
        registry did not answer in time). Unless an open alarm of the same
        number is joined, the alarm is handed to the dialplan too: its AstDB
        copy of the registry knows the neighbours, where this server would
        ring only the duty phones of a caller it cannot place.
        """
        caller_raw = str(caller_raw or "")
        now = self.clock.seconds()
        number = self.dialer.numbers.try_normalise(caller_raw) if caller_raw else None
        keys = _keys(household.id if household is not None else None, number)
        existing = next((self._open[k] for k in keys if k in self._open), None)
        if existing is None and household is None and not_found is None:
            existing = self._unidentified_nearby(now)
        if existing is not None and existing.ended:
            existing = None
        if existing is None and not_found is not None:
            return self._hand_to_dialplan(caller_raw, number, household, now, asterisk,
                                          not_found=not_found)
        if existing is None and not self._can_place_calls(asterisk):
            return self._hand_to_dialplan(caller_raw, number, household, now, asterisk)
        if existing is not None and not existing.confirmed \
                and not existing.group.can_place_calls():
            return self._hand_to_dialplan(caller_raw, number, household, now, asterisk)
        if existing is not None:
            if existing.callers is not None:
                existing.callers += 1
            d = existing.when_ready()
            d.addCallback(self._joined, caller_raw)
            return d
        alarm = self._new_alarm(asterisk, keys=keys, household=household, caller_raw=caller_raw,
                                caller_number=number, opened=now,
                                address=household.address if household is not None else "")
        self._claim(alarm)
        if household is None:
            self._open[UNIDENTIFIED] = alarm
        d = self._record_opening(caller_raw, number, household, now, asterisk)
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

    def _can_place_calls(self, asterisk="") -> bool:
        placer = self.placers.get(asterisk)
        if placer is None:
            return self.engine.can_place_calls()
        try:
            return bool(placer.can_place_calls())
        except Exception:
            self.log.failure("cannot tell whether calls can be placed on {name}", name=asterisk)
            return False

    def _hand_to_dialplan(self, caller_raw, number, household, now, asterisk="",
                          not_found=None):
        """
        Leave the ringing to the dialplan at once; put the alarm on record
        meanwhile. Why: C{not_found} (the household could not be looked up),
        else no AMI link.
        """
        why = not_found or NO_LINK
        self.log.critical("ALARM from {caller}: {why}; the dialplan rings the neighbours "
                          "natively", caller=caller_raw, why=why)
        outcome = native_outcome(why)
        opening = _opening(household, caller_raw, not_found)
        d = self._record_opening(caller_raw, number, household, now, asterisk, opening)

        def recorded(alarm_id):
            self.changes.tell(AlarmChange(alarm_id, None, OPENED, now, detail=opening))
            self.changes.tell(AlarmChange(alarm_id, None, NATIVE, now, detail=outcome))
            self.recorder.update(alarm_id, status=NATIVE, closed_at=now, outcome=outcome)

        d.addCallbacks(recorded, lambda f: None)  # the recorder logged it
        return defer.fail(HandedToDialplan(outcome))

    def _record_opening(self, caller_raw, number, household, now, asterisk="", opening=None):
        """Put a new alarm on record: a Deferred firing with its id."""
        return self.recorder.open_alarm(
            at=now, caller_raw=caller_raw, caller_number=number,
            household_id=household.id if household is not None else None,
            address=household.address if household is not None else "",
            detail=opening or _opening(household, caller_raw), asterisk=asterisk)

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
        self._identify(alarm, alarm_id)
        alarm.room, alarm.status = room_name(alarm_id), OPEN
        self._alarms[str(alarm_id)] = alarm
        self.changes.tell(AlarmChange(alarm_id, alarm, OPENED, alarm.opened,
                                      detail=_opening(alarm.household, alarm.caller_raw)))
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

    def _ring(self, alarm, stage, target, trunk):
        """Ring C{target} for C{stage} of C{alarm} (a new leg of its group), or None."""
        try:
            dial = self._dial(target, trunk, getattr(alarm, "asterisk", ""))
        except Exception as e:
            self.log.critical("ALARM {id}: cannot dial {target}: {e}", id=alarm.id,
                              target=target, e=e)
            self._event(alarm, FAILED, number=target, detail=f"{stage}: no dial string: {e}")
            return None
        retry = self._neighbour_retry if stage == NEIGHBOURS else None
        return alarm.group.ring(target, dial, stage, retry=retry)

    def ring_one_more(self, alarm_id, target, tag) -> Leg | None:
        """
        Ring C{target} (E.164) for the open alarm C{alarm_id} now, as staff
        asked (the duty board): a leg of its group like a neighbour's, into
        the responder's context (hears who needs help, presses 1 to join).
        None if the alarm is not open or the number cannot be dialled.
        """
        alarm = self.alarm(alarm_id)
        if alarm is None or not alarm.active:
            return None
        return self._ring(alarm, tag, target, self.config.neighbour_trunk)

    def _dial(self, target, trunk, asterisk=""):
        """C{target}'s dial string as the server C{asterisk} dials it (its trunks)."""
        key = (target, trunk, asterisk)
        dial = self._dials.get(key)
        if dial is None:
            if len(self._dials) > 100000:
                self._dials.clear()
            dialer = self.dialers.get(asterisk, self.dialer)
            dial = self._dials[key] = dialer.dial_string(target, trunk)
        return dial

    # The caller's line (no AMI link) ----------------------------------------------

    def hold(self, alarm_id, session) -> None:
        """The #9 caller on C{session} waits between slices: calls may be placed from it."""
        self.engine.lines.hold(alarm_id, session)

    def release(self, alarm_id, session) -> None:
        self.engine.lines.release(alarm_id, session)

    def _later(self, alarm, delay, f, *args, retry=False):
        """Call C{f(*args)} after C{delay} unless the alarm's timers are cancelled."""
        alarm.group.later(delay, f, *args, retry=retry)

    def _leg_ended(self, alarm):
        """A leg ended without a confirmation and is not rung again: escalate if nothing is left."""
        if not alarm.active or alarm.confirmed:
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

    def _not_placed(self, alarm, link_down):
        """
        A leg's call could not be placed (the ring group tries it again). No
        link: every call's fate is unknown. Refused: ring the first stage
        once nothing at all is ringing.
        """
        if 0 not in alarm.stages_rung and (link_down or not alarm.live_legs()):
            self._later(alarm, 0, self._stage, alarm, 0, "calls cannot be placed")

    def _ring_out_again(self, alarm):
        if alarm.active and not alarm.confirmed and not alarm.live_legs():
            self.ring_first_stage(alarm, "again: every stage rang out or declined")

    # What the responders do ------------------------------------------------------

    def answered(self, alarm_id, leg_id, channel=None, target=None, stage=None) -> defer.Deferred:
        """
        A leg's phone was answered and its handler runs. Fires with the
        L{Leg} (a leg this server did not place, e.g. before a restart, is
        adopted under the C{target} and C{stage} it was placed for), or None
        if the alarm is unknown.
        """
        alarm = self.alarm(alarm_id)
        if alarm is None:
            return defer.succeed(None)
        leg = alarm.legs.get(str(leg_id))
        if leg is None:
            who = target or channel or "?"
            leg = alarm.group.adopt(str(leg_id), stage or "unknown", who, channel or who)
        if channel:
            leg.channel = channel
        if leg.state in (RINGING, NO_ANSWER, FAILED, BUSY):
            alarm.group.mark(leg, ANSWERED)
        return defer.succeed(leg)

    def confirm(self, alarm_id, leg_id) -> defer.Deferred:
        """
        The neighbour on C{leg_id} pressed 1. Fires with True if they should
        join the caller, False if the alarm has ended.
        """
        alarm, leg = self._find(alarm_id, leg_id)
        if leg is None or alarm.ended:
            return defer.succeed(False)
        first = not alarm.confirmed
        if first:
            # Confirmed before the leg's fate is told: nothing escalates.
            alarm.status = CONFIRMED
            alarm.cancel_timers()
        alarm.group.settle(leg, LEG_CONFIRMED)
        leg.in_room = True
        if first:
            if alarm.confirmed_at is None:
                alarm.confirmed_at = self.clock.seconds()
                self.recorder.update(alarm.id, status=CONFIRMED, confirmed_at=alarm.confirmed_at)
            else:  # recovered after a restart: the first confirmation stays on record
                self.recorder.update(alarm.id, status=CONFIRMED)
            self.log.warn("ALARM {id}: {who} is coming", id=alarm.id, who=leg.target)
        return defer.succeed(True)

    def decline(self, alarm_id, leg_id) -> defer.Deferred:
        """The neighbour on C{leg_id} pressed 2: cannot come."""
        return self._ended_unconfirmed(alarm_id, leg_id, DECLINED, "")

    def unconfirmed(self, alarm_id, leg_id, detail="no key pressed") -> defer.Deferred:
        """The phone on C{leg_id} answered but nobody pressed 1 (or hung up first)."""
        return self._ended_unconfirmed(alarm_id, leg_id, UNCONFIRMED, detail)

    def _ended_unconfirmed(self, alarm_id, leg_id, state, detail):
        alarm, leg = self._find(alarm_id, leg_id)
        if leg is None or leg.state not in (ANSWERED, RINGING):
            return defer.succeed(False)
        alarm.group.settle(leg, state, detail)
        return defer.succeed(True)

    def responder_left(self, alarm_id, leg_id) -> defer.Deferred:
        """A confirmed neighbour left the room (hung up)."""
        alarm, leg = self._find(alarm_id, leg_id)
        if leg is not None and leg.in_room:
            leg.in_room = False
            self._event(alarm, "left", leg=leg)
            self._close_if_done(alarm)
        return defer.succeed(None)

    def caller_left(self, alarm_id) -> defer.Deferred:
        """
        The caller's call ended (hung up, or the line dropped). This does not
        cancel anything: the caller may be unable to speak. The alarm closes
        only once someone has confirmed and everyone has left the room.
        """
        alarm = self.alarm(alarm_id)
        if alarm is not None:
            if alarm.callers:
                alarm.callers -= 1
            self._event(alarm, "caller-left",
                        detail="" if alarm.confirmed or alarm.ended
                        else "nobody has confirmed yet: the alarm goes on")
            self._close_if_done(alarm)
        return defer.succeed(None)

    def _close_if_done(self, alarm):
        # Phones still ringing are stopped: there is nobody left to join.
        if alarm.active and alarm.confirmed and alarm.callers == 0 and not alarm.in_room():
            self._end(alarm, CLOSED, "caller and responders have left")

    def _find(self, alarm_id, leg_id):
        alarm = self.alarm(alarm_id)
        leg = alarm.legs.get(str(leg_id)) if alarm is not None else None
        return alarm, leg

    # Ending -----------------------------------------------------------------------

    def cancel(self, alarm_id, by="caller") -> defer.Deferred:
        """
        A false alarm: stop escalating, hang up phones still ringing, and
        have confirmed neighbours told. Fires with whether it was open.
        """
        alarm = self.alarm(alarm_id)
        if alarm is None or alarm.ended:
            return defer.succeed(False)
        in_room = alarm.in_room()
        self._end(alarm, CANCELLED, f"cancelled by {by}")
        if in_room and self.kick is not None:
            d = defer.maybeDeferred(self.kick, alarm.room)
            d.addErrback(lambda f: self.log.failure("ALARM {id}: clearing room {room}", f,
                                                    id=alarm.id, room=alarm.room))
        return defer.succeed(True)

    def close(self, alarm_id, how="closed by staff") -> defer.Deferred:
        """End an alarm (staff, or everyone has left); fires with whether it was open."""
        alarm = self.alarm(alarm_id)
        if alarm is None or alarm.ended:
            return defer.succeed(False)
        self._end(alarm, CLOSED, how)
        return defer.succeed(True)

    def _end(self, alarm, status, how, record=True):
        now = self.clock.seconds()
        alarm.status, alarm.outcome = status, how
        alarm.cancel_timers()
        self._release(alarm)
        alarm.group.cancel_ringing("alarm ended while ringing")
        self._event(alarm, status, detail=how)
        if record:
            self.recorder.update(alarm.id, status=status, closed_at=now, outcome=how)
        self.log.warn("ALARM {id} {status}: {how}", id=alarm.id, status=status, how=how)
        # Kept a while, so late answers still learn the alarm has ended.
        self._forgetting.append(self.clock.callLater(self.forget_after, self._forget, alarm))

    def _forget(self, alarm):
        self._alarms.pop(str(alarm.id), None)
        self.engine.forget(alarm.group)

    def note_channel(self, uniqueid, channel) -> None:
        """
        Asterisk created a channel (AMI C{Newchannel}); a leg of an alarm
        that has ended meanwhile is hung up at once (L{RingEngine.note_channel}).
        """
        self.engine.note_channel(uniqueid, channel)

    def note_hangup(self, uniqueid) -> None:
        """Asterisk hung up a channel (AMI C{Hangup}): L{RingEngine.note_hangup}."""
        self.engine.note_hangup(uniqueid)

    def ended_elsewhere(self, closed) -> None:
        """Alarms closed in the database by staff (C{(id, outcome)} pairs): end them here too."""
        for alarm_id, outcome in closed:
            alarm = self.alarm(alarm_id)
            if alarm is not None and alarm.active:
                self._end(alarm, CLOSED, outcome or "closed by staff", record=False)

    # Escalation ----------------------------------------------------------------

    def _schedule(self, alarm, *, at_once, reason=""):
        stages = self.config.stages
        if not stages:
            return
        if at_once:
            self._stage(alarm, 0, reason)
        self._schedule_from(alarm, self.clock.seconds() if at_once else alarm.opened, at_once)

    def _schedule_from(self, alarm, start, at_once):
        """
        Time the stages not rung yet from C{start} (the opening; or when the
        first stage was rung at once, the others keeping their spacing), and
        the repeats after the last.
        """
        stages = self.config.stages
        if not stages:
            return
        now = self.clock.seconds()
        shift = stages[0].after if at_once else 0.0
        for i, stage in enumerate(stages):
            if i in alarm.stages_rung:
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
        return not alarm.group.due_within(within)

    def can_place_calls(self, alarm=None) -> bool:
        """Whether calls can be placed (for C{alarm}: on its caller's server)."""
        return self._can_place_calls(getattr(alarm, "asterisk", "") if alarm is not None
                                     else "")

    # Restarts -------------------------------------------------------------------

    def recover_open_alarms(self, index=None, rows=None) -> defer.Deferred:
        """
        At start-up: every alarm still open in the database is taken up
        again and marked C{recovered} in its timeline. One nobody has
        confirmed rings its first escalation stage (the duty phones) as
        soon as calls can be placed; a confirmed one rings nobody. Both
        close once their room is empty and someone has confirmed. Fires
        with the alarms. C{rows}: those to take up (L{OpenAlarm}s; by
        default every one the recorder finds open).
        """
        d = self.recorder.open_alarms() if rows is None else defer.succeed(list(rows))
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
            alarm = self._take_up(row, household)
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

    # Another instance's alarm -------------------------------------------------------

    def adopt(self, row, entries, household, previous) -> ActiveAlarm | None:
        """
        Carry on with the open alarm C{row} (an L{OpenAlarm}) that instance
        C{previous} held until its lease ran out (L{switchboard.leases}),
        from where its timeline C{entries} (L{alarm.adoption.TimelineEntry})
        says it stood: legs still ringing or answered are followed through
        their channel ids (nobody is rung twice), the stages not rung yet
        ring at their times from the opening, and if nothing at all is
        ringing the next stage rings now. A confirmed alarm rings nobody
        and closes once its room is empty.
        """
        if self.alarm(row.id) is not None and self.alarm(row.id).active:
            return None
        alarm = self._take_up(row, household)
        alarm.opened = _seconds(row.opened_at, self.clock.seconds())
        found = standing(entries, [stage.name for stage in self.config.stages])
        alarm.stages_rung = set(found.stages_rung)
        followed = len(found.ringing) + len(found.answered)
        self.log.critical("ALARM {id}: taken over from {previous}, whose lease ran out; "
                          "following {n} call(s) still up", id=row.id, previous=previous,
                          n=followed)
        self._event(alarm, "adopted", detail=(
            f"taken over from {previous} (its lease ran out): "
            + ("confirmed, nobody is rung" if alarm.confirmed else
               f"{len(found.ringing)} ringing and {len(found.answered)} answered call(s) "
               f"followed, stages rung: {len(found.stages_rung)}")))
        if not alarm.confirmed:
            for leg_id, (tag, number) in found.ringing.items():
                self._follow(alarm, leg_id, tag, number, RINGING)
            for leg_id, (tag, number) in found.answered.items():
                self._follow(alarm, leg_id, tag, number, ANSWERED)
            self._once_calls_can_be_placed(alarm, self._carry_on, alarm, found.at_once)
        self._look_at_room(alarm, empty_before=False)
        alarm._fire_ready(True, alarm)
        return alarm

    def _take_up(self, row, household) -> ActiveAlarm:
        """An L{ActiveAlarm} for the open alarm C{row}, held here from now on."""
        alarm = self._new_alarm(getattr(row, "asterisk", "") or "",
                                keys=_keys(row.household_id, row.caller_number),
                                household=household, caller_raw=row.caller_raw,
                                caller_number=row.caller_number, address=row.address,
                                opened=self.clock.seconds())
        alarm.household_id = row.household_id
        self._identify(alarm, row.id)
        alarm.room = row.room or room_name(row.id)
        alarm.recovered, alarm.callers = True, None
        alarm.confirmed_at = row.confirmed_at
        alarm.status = CONFIRMED if row.confirmed_at is not None else OPEN
        self._alarms[str(row.id)] = alarm
        self._claim(alarm)
        return alarm

    def _follow(self, alarm, leg_id, tag, number, state):
        try:
            dial = (self._dial(number, self.config.neighbour_trunk, alarm.asterisk)
                    if number else "")
        except Exception:
            dial = ""
        leg = alarm.group.adopt(leg_id, tag or "unknown", number or "?", dial or number or "?")
        leg.state = state
        if state == RINGING:
            alarm.group.follow(leg, NO_ANSWER, "its call, placed by the instance before, "
                                               "ended unanswered")
        else:
            alarm.group.follow(leg, UNCONFIRMED, "answered before the hand-over, put through "
                                                 "by the dialplan; the call has ended")

    def _carry_on(self, alarm, at_once):
        """The adopted alarm's stages at their times; the next one now if nothing rings."""
        self._schedule_from(alarm, alarm.opened, at_once)
        if not alarm.live_legs():
            self._leg_ended(alarm)

    def let_go(self, alarm_ids) -> None:
        """
        Another instance holds these alarms now (this one could not renew
        its lease in time, e.g. it was stopped): stop working on them here.
        Their calls are not hung up: the other instance follows them.
        """
        for alarm_id in alarm_ids:
            alarm = self.alarm(alarm_id)
            if alarm is None or not alarm.active:
                continue
            self.log.critical("ALARM {id}: another instance holds it now (this one did not "
                              "renew its lease in time); it carries on there", id=alarm.id)
            alarm.cancel_timers()
            self._release(alarm)
            look = self._room_looks.pop(str(alarm.id), None)
            if look is not None and look.active():
                look.cancel()
            alarm.status = "handed-over"
            self._alarms.pop(str(alarm.id), None)
            self.engine.forget(alarm.group)

    def _once_calls_can_be_placed(self, alarm, f, *args, **kwargs):
        """C{f(*args, **kwargs)} now, or once the AMI link is up if it is not."""
        if self._can_place_calls():
            f(*args, **kwargs)
            return
        self._event(alarm, "waiting", detail="no AMI link yet: the duty phones ring as soon "
                                             "as it is up")
        d = self.engine.when_connected()

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
        self._neighbour_retry.times = config.retry_unanswered
        self._neighbour_retry.after = config.retry_after
        for alarm in self._alarms.values():
            self._configure(alarm.group)

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
        """Tell the listeners of L{changes} (the timeline first) what happened to C{alarm}."""
        if alarm.id is None:
            return
        self.changes.tell(AlarmChange(alarm.id, alarm, kind, self.clock.seconds(), leg, number,
                                      detail))


@implementer(IRingListener)
class AlarmLegs:
    """
    The alarm's side of its ring groups: which legs still ring (an open
    alarm nobody has confirmed), their channel variables (what the responder
    script and a server taking a leg up after a restart read), and what the
    coordinator is told: the timeline, each leg's fate (escalation once
    nothing is left ringing), calls not placed.
    """

    def __init__(self, coordinator):
        self.coordinator = coordinator

    def wanted(self, group) -> bool:
        alarm = group.subject
        return alarm.active and not alarm.confirmed

    def variables(self, leg) -> dict:
        alarm = leg.group.subject
        return {"SWITCHBOARD_ALARM": str(alarm.id),
                "SWITCHBOARD_LEG": leg.id,
                "SWITCHBOARD_ROOM": alarm.room,
                # who was rung, for a server that takes the leg up after a restart
                "SWITCHBOARD_TARGET": leg.target,
                "SWITCHBOARD_STAGE": leg.tag,
                # Answered by this instance, which holds the alarm, first (a
                # channel variable shadows the dialplan's global list).
                **({"SWITCHBOARD_AGI": self.coordinator.fastagi}
                   if self.coordinator.fastagi else {})}

    def noted(self, leg, kind, detail) -> None:
        alarm = leg.group.subject
        if kind == RETRY:
            self.coordinator._event(alarm, RETRY, number=leg.target, detail=detail)
        else:
            self.coordinator._event(alarm, kind, leg=leg, detail=detail)

    def ended(self, leg, retried) -> None:
        if not retried:
            self.coordinator._leg_ended(leg.group.subject)

    def not_placed(self, leg, link_down) -> None:
        self.coordinator._not_placed(leg.group.subject, link_down)
