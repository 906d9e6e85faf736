"""
FastAGI handlers of the alarm: C{alarm} runs the call of the resident who
dialled #9, C{alarm-responder} each call the coordinator placed to a
neighbour or a duty phone.

Both set C{SWITCHBOARD_RESULT=OK} when they have handled their call; when
they do not (a failure, an alarm this server does not know), the dialplan
goes on natively: the caller waits in the alarm's room (C{SWITCHBOARD_ROOM},
set as soon as the alarm is on record), a responder is put through to it.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.logger import Logger

from alarm.coordinator import HandedToDialplan
from switchboard.agi import AGIHangup, drive

BRIDGE = "alarm_bridge"
CALLER_PROFILE = "alarm_caller"
CALLER_MENU = "alarm_caller_menu"
#: Milliseconds the caller waits for the cancel key at a time while nobody
#: has confirmed, outside the room: between two waits a confirmation is
#: noticed (the caller then joins the room) and the server may place calls
#: from the caller's line when the AMI link is down (switchboard.ringgroup.lines).
#: A key pressed between two waits is heard by the next (Asterisk keeps it).
#: Held in the room in ConfBridge stays instead, callers' keys went unheard
#: while Asterisk was slow to join and leave rooms (a burst of 200 alarms).
WAITING_SLICE_MS = 1000
#: Seconds a #9 caller's household may take to be read from the database
#: (only while the caller index loads, after a start): milliseconds when the
#: database answers. One that hangs instead of failing (a lock held by a long
#: transaction, a server gone from the network) would keep the caller in
#: silence for as long: after this the dialplan rings natively from AstDB.
LOOKUP_DEADLINE = 1.0
RESPONDER_PROFILE = "alarm_responder"
RESULT = "SWITCHBOARD_RESULT"
COMING, CANNOT_COME = "1", "2"
_KEYS = COMING + CANNOT_COME            # escape digits of every prompt
_ANSWERS = frozenset((COMING, CANNOT_COME))
_ANONYMOUS = {"", "unknown", "anonymous", "restricted", "private", "<unknown>"}


def _digits(text) -> str:
    return "".join(c for c in str(text or "") if c in "0123456789")


class AlarmCallerHandler:
    """
    Script C{alarm}: the resident who dialled #9.

    The household is found in the in-memory L{CallerIndex} (never the
    database on this path, but in the seconds after start-up while the
    index loads: L{CallerIndex.find}, within L{LOOKUP_DEADLINE}, else the
    alarm is handed to the dialplan, whose AstDB copy knows the neighbours);
    an unknown or missing caller ID still raises an alarm, which goes to the
    duty phones with what was presented. The caller
    is answered, reassured, and held until a neighbour presses 1, then put in
    the alarm's ConfBridge room, where the neighbours who press 1 join. The
    cancel key (C{caller.cancel_key} while waiting, C{*} in the room: the
    room menu's C{leave_conference}) cancels the alarm; hanging up does
    not: the caller may not be able to speak.
    """

    log = Logger()

    def __init__(self, index, coordinator, config, numbers, announcer=None, servers=None):
        #: Several Asterisk servers (L{switchboard.ami.servers.AsteriskServers}):
        #: the alarm's legs are placed on the one the session came from.
        self.servers = servers
        self.index = index
        self.coordinator = coordinator
        self.config = config
        self.numbers = numbers
        self.speech = announcer.speech if announcer is not None else None

    def __call__(self, session) -> defer.Deferred:
        return drive(self.handle(session))

    def _where(self, session) -> dict:
        """C{raise_alarm}'s C{asterisk}: the server of C{session}, when there are several."""
        if self.servers is None or len(self.servers) < 2:
            return {}
        return {"asterisk": self.servers.for_session(session).name}

    async def handle(self, session):
        raw = str(session.env.get("callerid") or "").strip()
        caller = "" if raw.lower() in _ANONYMOUS else raw
        # A load of the index on its thread waits until the alarm is raised.
        resume = self.index.pause_load()
        try:
            household, not_found = await self._household(caller)
            raising = self.coordinator.raise_alarm(raw, household, not_found=not_found,
                                                   **self._where(session))
            # Answer while the alarm is being recorded; neither waits for the
            # other. Not when it has already failed or been handed over: an
            # ANSWER waits up to 500 ms for the caller's media in Asterisk
            # (__ast_answer), which held the native ring-all back by as much.
            answering = None if raising.called else session.answer()
            try:
                alarm = await raising
            except HandedToDialplan:
                # No calls can be placed from here: the dialplan rings the
                # neighbours itself, now (SWITCHBOARD_ROOM stays unset).
                if answering is not None:
                    answering.addErrback(lambda _: None)
                return
            except Exception:
                # Not on record: failing leaves SWITCHBOARD_ROOM unset, and the
                # dialplan rings the neighbours natively from AstDB.
                if answering is not None:
                    answering.addErrback(lambda _: None)
                raise
        finally:
            resume()
        if answering is None:
            answering = session.answer()
        left = False
        # From now until it is in the room for good, the caller's line may
        # place calls when AMI cannot (queued after the command in flight).
        self.coordinator.hold(alarm.id, session)
        try:
            await answering
            await session.set_variable("SWITCHBOARD_ALARM", str(alarm.id))
            await session.set_variable("SWITCHBOARD_ROOM", alarm.room)
            for sound in self.config.prompts.caller_hold.play_list(self.speech):
                await session.stream_file(sound)
            how = await self._wait_in_room(session, alarm)
            if how == "DTMF":
                # The caller pressed the cancel key: a false alarm.
                await self.coordinator.cancel(alarm.id, by="caller")
            else:
                left = True
                await self.coordinator.caller_left(alarm.id)
            if alarm.cancelled:
                # By this caller, or by another #9 call of the same household.
                for sound in self.config.prompts.caller_cancelled.play_list(self.speech):
                    await session.stream_file(sound)
            await session.set_variable(RESULT, "OK")
        except AGIHangup:
            if not left:
                await self.coordinator.caller_left(alarm.id)
        finally:
            self.coordinator.release(alarm.id, session)

    async def _household(self, caller):
        """
        C{(household, None)}: the caller's household (None: not registered,
        or no caller ID); C{(None, why)} when it could not be looked up.
        From the index in memory; from the database, within
        L{LOOKUP_DEADLINE}, while the index loads.
        """
        if not caller:
            return None, None
        try:
            if self.index.loaded:
                return self.index.lookup(caller), None
            # Start-up, the index still loading: from the database.
            found = self.index.find(caller)
            found.addTimeout(LOOKUP_DEADLINE, self.coordinator.clock)
            return await found, None
        except defer.TimeoutError:
            self.log.critical("caller index lookup of {caller}: the database did not answer "
                              "within {s} s", caller=caller, s=LOOKUP_DEADLINE)
            return None, f"the registry did not answer within {LOOKUP_DEADLINE:g} s"
        except Exception:
            self.log.failure("caller index lookup of {caller}", caller=caller)
            return None, "the registry could not be read"

    async def _wait_in_room(self, session, alarm):
        """
        Hold the caller until a neighbour confirms, in short waits for the
        cancel key (the line lends itself to the coordinator in between),
        then in the alarm's room for good. Returns how the caller left
        (C{CONFBRIDGE_RESULT}; C{"DTMF"} for the cancel key while waiting).
        """
        while alarm.active and not alarm.confirmed:
            key = await session.wait_for_digit(WAITING_SLICE_MS)
            if key == self.config.cancel_key:
                return "DTMF"
        if not alarm.active:
            return "KICKED"
        self.coordinator.release(alarm.id, session)
        await session.exec_("ConfBridge", alarm.room, BRIDGE, CALLER_PROFILE, CALLER_MENU)
        how = await session.get_variable("CONFBRIDGE_RESULT")
        return how


class ResponderHandler:
    """
    Script C{alarm-responder}: a phone the coordinator rang has answered.

    The channel carries C{SWITCHBOARD_ALARM} and C{SWITCHBOARD_LEG}. The
    person hears who needs help and where, then is asked to press 1
    (coming: joins the caller's room) or 2 (cannot come), a few times. No
    key means not confirmed, so an answering machine or a fax cannot take
    the alarm.

    Who and where is the household's announcement, one sentence that ends
    with the question, rendered when the household was registered
    (L{alarm.speaking.Announcer}). Without one (not rendered yet, no speech
    engine, an unregistered caller) the prompts and the digits of the
    address or the caller's number are played: rendered Mandarin digits when
    the alarm speaks Mandarin and they are rendered, else Asterisk's. Nothing
    is rendered here: a neighbour on the line never waits for speech.
    """

    log = Logger()

    def __init__(self, coordinator, config, clock=None, announcer=None):
        if clock is None:
            from twisted.internet import reactor as clock
        self.coordinator = coordinator
        self.config = config
        self.clock = clock
        self.announcer = announcer
        self.speech = announcer.speech if announcer is not None else None

    def __call__(self, session) -> defer.Deferred:
        return drive(self.handle(session))

    async def handle(self, session):
        alarm_id = await session.get_variable("SWITCHBOARD_ALARM")
        leg_id = await session.get_variable("SWITCHBOARD_LEG")
        target = stage = None
        if self.coordinator.leg(leg_id or "") is None:
            # Placed before a restart: who it rang travels with the call.
            target = await session.get_variable("SWITCHBOARD_TARGET")
            stage = await session.get_variable("SWITCHBOARD_STAGE")
        leg = await self.coordinator.answered(alarm_id or "", leg_id or "",
                                              channel=session.env.get("channel"),
                                              target=target, stage=stage)
        if leg is None:
            # Not an alarm this server knows: the dialplan puts the call through natively.
            self.log.warn("responder call for unknown alarm {alarm} leg {leg}",
                          alarm=alarm_id, leg=leg_id)
            return
        alarm = leg.alarm
        try:
            key = await self._question(session, alarm)
            if alarm.ended:
                await self._play(session, self.config.prompts.responder_cancelled)
            elif key == COMING:
                await self._coming(session, alarm, leg)
            elif key == CANNOT_COME:
                await self.coordinator.decline(alarm.id, leg.id)
                await self._play(session, self.config.prompts.responder_declined)
            else:
                await self.coordinator.unconfirmed(alarm.id, leg.id, "no key pressed")
                await self._play(session, self.config.prompts.responder_unconfirmed)
            await session.set_variable(RESULT, "OK")
        except AGIHangup:
            if leg.in_room:
                await self.coordinator.responder_left(alarm.id, leg.id)
            else:
                await self.coordinator.unconfirmed(alarm.id, leg.id, "hung up before pressing 1")

    async def _question(self, session, alarm):
        """Announce and ask until 1 or 2, the attempts or the time run out, or the alarm ends."""
        started = self.clock.seconds()
        for _ in range(self.config.answer_attempts):
            if alarm.ended:
                return ""
            spoken = self._announcement(alarm)
            played = None
            if spoken:
                # One sentence: who, where, and the question.
                played = await session.stream_file_result(spoken, _KEYS)
                if played.failed:
                    # Gone, or not readable by Asterisk (its group): the
                    # neighbour must still hear who and where.
                    self.log.error("ALARM {id}: Asterisk could not play the announcement "
                                   "{sound} (missing, or not readable by Asterisk's user): "
                                   "the stock prompts instead", id=alarm.id, sound=spoken)
            if played is not None and not played.failed:
                key = played.digit if played.digit in _ANSWERS else ""
                if not key:
                    key = await self._wait_for_key(session)
            else:
                key = await self._announce(session, alarm)
                if not key:
                    key = await self._ask(session)
            if key in _ANSWERS:
                return key
            if self.clock.seconds() - started >= self.config.confirm_within:
                break
        return ""

    def _announcement(self, alarm) -> str | None:
        """The household's rendered announcement, if any (never renders)."""
        if self.announcer is None or alarm.household is None:
            return None
        try:
            return self.announcer.sound_for(alarm.household)
        except Exception:
            self.log.failure("announcement of alarm {id}", id=alarm.id)
            return None

    async def _say_digits(self, session, number, escape):
        """C{number} digit by digit: rendered Mandarin digits when the alarm speaks it."""
        names = None
        if self.announcer is not None and self.config.prompts.spoken:
            names = self.announcer.digits(number)
        if names:
            key = await self._play_sounds(session, names, escape)
        else:
            key = await session.say_digits(number, escape)
        return key

    async def _announce(self, session, alarm):
        p = self.config.prompts
        key = await self._play(session, p.responder_intro, _KEYS)
        if key:
            return key
        household = alarm.household
        if household is not None:
            key = await self._play(session, p.responder_location, _KEYS)
            parts = [_digits(x) for x in (household.building, household.unit, household.room)]
            parts = [x for x in parts if x]
            for i, part in enumerate(parts):
                if key:
                    break
                if i:
                    key = await self._play(session, p.responder_separator, _KEYS)
                if not key:
                    key = await self._say_digits(session, part, _KEYS)
        else:
            # Unregistered (or recovered without a household): the caller's number.
            key = await self._play(session, p.responder_unregistered, _KEYS)
            number = _digits(alarm.caller_raw)
            if number and not key:
                key = await self._say_digits(session, number, _KEYS)
        return key if key in _ANSWERS else ""

    async def _ask(self, session):
        key = await self._play(session, self.config.prompts.responder_ask, _KEYS)
        if not key:
            key = await self._wait_for_key(session)
        return key or ""

    def _wait_for_key(self, session):
        return session.wait_for_digit(int(self.config.digit_timeout * 1000))

    def _play(self, session, prompt, escape=""):
        """Play an L{AlarmPrompt}: its recording, its rendered text, or its stock sounds."""
        return self._play_sounds(session, prompt.play_list(self.speech), escape)

    async def _play_sounds(self, session, sounds, escape=""):
        for sound in sounds:
            key = await session.stream_file(sound, escape)
            if key and key in escape:
                return key
        return ""

    async def _coming(self, session, alarm, leg):
        joined = await self.coordinator.confirm(alarm.id, leg.id)
        if not joined:
            await self._play(session, self.config.prompts.responder_cancelled)
            return
        await self._play(session, self.config.prompts.responder_coming)
        await session.exec_("ConfBridge", alarm.room, BRIDGE, RESPONDER_PROFILE)
        await self.coordinator.responder_left(alarm.id, leg.id)
        if alarm.cancelled:
            # Taken out of the room because the caller cancelled: say so.
            await self._play(session, self.config.prompts.responder_cancelled)
