"""
What happens to an alarm after its phones are rung: answers, confirmations,
refusals, people leaving, and the ways an alarm ends (cancelled by the
caller, closed when everyone has left, closed by staff).

A part of L{alarm.coordinator.AlarmCoordinator}, kept in its own module.
"""

from __future__ import annotations

from twisted.internet import defer

from alarm.models import CANCELLED, CLOSED, CONFIRMED
from alarm.state import (
    ANSWERED,
    BUSY,
    DECLINED,
    FAILED,
    LEG_CANCELLED,
    LEG_CONFIRMED,
    NO_ANSWER,
    RINGING,
    UNCONFIRMED,
    Leg,
)


class Responses:
    """
    The coordinator's handling of responders and endings. Expects of its
    host: C{alarm()}, C{clock}, C{recorder}, C{hangup}, C{kick}, C{log},
    C{forget_after}, C{_legs}, C{_alarms}, C{_forgetting}, C{_set()},
    C{_event()}, C{_after_leg()} and C{_release()}.
    """

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
            leg = Leg(str(leg_id), alarm, stage or "unknown", who, channel or who)
            alarm.legs[leg.id] = leg
            self._legs[leg.id] = leg
        if channel:
            leg.channel = channel
        if leg.state in (RINGING, NO_ANSWER, FAILED, BUSY):
            self._set(leg, ANSWERED)
        return defer.succeed(leg)

    def confirm(self, alarm_id, leg_id) -> defer.Deferred:
        """
        The neighbour on C{leg_id} pressed 1. Fires with True if they should
        join the caller, False if the alarm has ended.
        """
        alarm, leg = self._find(alarm_id, leg_id)
        if leg is None or alarm.ended:
            return defer.succeed(False)
        self._set(leg, LEG_CONFIRMED)
        leg.in_room = True
        if not alarm.confirmed:
            alarm.status = CONFIRMED
            alarm.cancel_timers()
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
        self._set(leg, state, detail)
        self._after_leg(leg)
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
        for leg in alarm.legs.values():
            if leg.state == RINGING:
                self._set(leg, LEG_CANCELLED, detail="alarm ended while ringing")
                self._hang_up(leg)
        self._event(alarm, status, detail=how)
        if record:
            self.recorder.update(alarm.id, status=status, closed_at=now, outcome=how)
        self.log.warn("ALARM {id} {status}: {how}", id=alarm.id, status=status, how=how)
        # Kept a while, so late answers still learn the alarm has ended.
        self._forgetting.append(self.clock.callLater(self.forget_after, self._forget, alarm))

    def _hang_up(self, leg):
        # A leg's id is its channel's unique id, which Asterisk's Hangup
        # accepts too: a channel not named yet (or whose Newchannel was
        # lost with the link) is still found. Not created yet: no such
        # channel, and note_channel hangs it up once it is.
        channel = leg.channel or leg.id
        d = defer.maybeDeferred(self.hangup, channel)
        d.addErrback(lambda f: self.log.failure("hanging up {channel}", f, channel=channel))

    def _forget(self, alarm):
        self._alarms.pop(str(alarm.id), None)
        for leg_id in alarm.legs:
            self._legs.pop(leg_id, None)

    def note_channel(self, uniqueid, channel) -> None:
        """
        Asterisk created a channel (AMI C{Newchannel}: C{Uniqueid},
        C{Channel}); if it is one of our legs, remember its name, and hang
        it up at once if its alarm has ended meanwhile.
        """
        leg = self._legs.get(uniqueid)
        if leg is None:
            return
        leg.channel = channel
        if leg.state == LEG_CANCELLED:
            self._hang_up(leg)

    def ended_elsewhere(self, closed) -> None:
        """Alarms closed in the database by staff (C{(id, outcome)} pairs): end them here too."""
        for alarm_id, outcome in closed:
            alarm = self.alarm(alarm_id)
            if alarm is not None and alarm.active:
                self._end(alarm, CLOSED, outcome or "closed by staff", record=False)
