"""
The hotline's FastAGI handler: one call, from the greeting to the person,
mailbox or announcement that takes it.

The handler reads the routing in force once, when the call starts, and
keeps it: a reload in the middle of a call changes nothing for that call.
Menus and plans come from L{switchboard.routing.router}, so a call does
exactly what C{switchboard route} shows. Audio is sound file names only;
the UTF-8 labels go to the log and the call record.

A prompt written as text plays its rendering when there is one (see
L{switchboard.speech.Speech.play_list}: a lookup, never a rendering, so
no caller waits for the speech engine), else its stock fallback sound.
The call's language (C{CHANNEL(language)}, for Asterisk's own sounds and
digits) is the one the routing gives the dialled hotline number.

Outcomes: a caller who hangs up is normal (the record says C{abandoned},
or what they had reached). An internal error is not allowed to drop a
live caller: the handler tries the operator's plan before giving up, and
only then lets the error through, so that the dialplan's native fallback
takes the call (it does whenever C{SWITCHBOARD_RESULT} is not C{OK}).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from switchboard.agi.errors import AGIHangup
from switchboard.agi.session import drive
from switchboard.calllog import (
    ABANDONED,
    ANNOUNCEMENT,
    ANSWERED,
    BUSY,
    FAILED,
    NO_ANSWER,
    VOICEMAIL,
    Call,
)
from switchboard.routing.model import HUNT
from switchboard.routing.router import RING, MenuWalk, local_time, plan

KEYS = "0123456789*#"
RESULT_VARIABLE = "SWITCHBOARD_RESULT"
# DIALSTATUS -> outcome when nobody further down the chain takes the call.
_OUTCOME = {"BUSY": BUSY, "NOANSWER": NO_ANSWER, "CANCEL": ABANDONED}
_NOT_A_CALLER = ("", "unknown", "anonymous", "restricted")


class HotlineHandler:
    """
    Serves hotline calls: C{handler(session)} returns a Deferred that fires
    when the call is over.

    @param store: a L{switchboard.routing.RoutingStore} (its C{current}).
    @param dialer: a L{switchboard.dialing.Dialer}.
    @param call_log: a L{switchboard.calllog.CallLog} (its C{begin} and C{record}).
    @param tz: the service's time zone, for a routing file that names none.
    @param clock: provides C{seconds()}; the reactor by default.
    @param dial_options: options of C{Dial()}; C{g} hands the caller back
        when the called party hangs up, so the call ends as handled.
    @param speech: a L{switchboard.speech.Speech} (its C{play_list}) for
        text prompts; L{None}: they play their fallback sounds.
    """

    log = Logger()

    def __init__(self, store, dialer, call_log, tz, clock=None, *, dial_options: str = "g",
                 speech=None):
        if clock is None:
            from twisted.internet import reactor as clock
        self.store = store
        self.dialer = dialer
        self.numbers = dialer.numbers
        self.call_log = call_log
        self.tz = tz
        self.clock = clock
        self.dial_options = dial_options
        self.speech = speech

    def __call__(self, session) -> defer.Deferred:
        return drive(self.handle(session))

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.seconds(), timezone.utc)

    def _local(self, routing) -> datetime:
        return local_time(routing, self._now(), self.tz)

    async def handle(self, session):
        """Serve the call on C{session}."""
        routing = self.store.current
        call = Call(started=self._now(), caller=self._caller(session),
                    hotline=_known(session.env.get("extension")) or _known(session.env.get("dnid")),
                    uniqueid=session.env.get("uniqueid"))
        self._begin(call)
        try:
            if routing is None:
                raise RuntimeError("no routing is loaded")
            await session.answer()
            language = routing.hotline.language_of(
                call.hotline, self.numbers.try_normalise(call.hotline or ""))
            await session.set_variable("CHANNEL(language)", language)
            await self._serve(session, routing, call)
            await self._done(session, call)
        except AGIHangup:
            call.outcome = call.outcome or ABANDONED
            call.path.append("caller hung up")
        except Exception:
            failure = Failure()
            self.log.failure("hotline call {uniqueid} on {channel}: internal error", failure,
                             uniqueid=call.uniqueid, channel=session.env.get("channel"))
            call.path.append(f"internal error: {failure.getErrorMessage()}")
            rescued = False
            if not call.handled:
                rescued = await self._rescue(session, routing, call)
            if not rescued and not call.handled:
                call.outcome = call.outcome or FAILED
                self._record(call)
                failure.raiseException()
        self._record(call)

    def _caller(self, session):
        raw = (session.env.get("callerid") or "").strip()
        if raw.lower() in _NOT_A_CALLER:
            return None
        return self.numbers.try_normalise(raw) or raw

    async def _serve(self, session, routing, call):
        walk = MenuWalk(routing, call.path)
        pending = ""
        if routing.hotline.greeting:
            pending = await self._play(session, routing.hotline.greeting, KEYS)
        destination = await self._ask(session, walk, pending)
        while True:
            steps = plan(routing, destination, self._local(routing), call.path)
            menu_step = await self._run(session, routing, steps, call)
            if menu_step is None:
                return
            if walk.worn_out:
                call.path.append("too many menus: put through to the operator")
                operator = routing.destinations[routing.hotline.operator]
                steps = plan(routing, operator, self._local(routing), call.path)
                await self._run(session, routing, steps, call, menus=False)
                return
            walk.enter(menu_step.destination.menu)
            destination = await self._ask(session, walk, "")

    async def _ask(self, session, walk, pending):
        """Offer the current menu until an entry selects a destination."""
        while True:
            menu = walk.menu
            entry = pending or (await self._ask_once(session, menu))
            entry, pending = entry or "", ""
            while entry and walk.entry_state(entry) == "more":
                key = await session.wait_for_digit(int(menu.digit_timeout * 1000))
                if not key:
                    break
                entry += key
            choice = walk.choose(entry)
            if not choice.retry:
                return choice.destination
            if choice.prompt:
                pending = await self._play(session, choice.prompt, KEYS)

    def sounds(self, prompt) -> list:
        """
        The sound names to play for C{prompt} now: its recording, else its
        text's rendering, else its stock fallback ([] for nothing).
        """
        if prompt is None:
            return []
        if self.speech is not None:
            try:
                names = self.speech.play_list(prompt)
            except Exception:
                self.log.failure("hotline: prompt {prompt} not looked up", prompt=prompt.where)
                names = []
            if names:
                return list(names)
        if prompt.sound:
            return [prompt.sound]
        return [prompt.fallback] if prompt.fallback else []

    async def _play(self, session, prompt, escape="") -> str:
        """Play C{prompt}; fire with the key that interrupted it, or C{""}."""
        for name in self.sounds(prompt):
            key = await session.stream_file(name, escape)
            if key:
                return key
        return ""

    async def _ask_once(self, session, menu) -> str:
        """Play the menu's prompt and read the first key of an entry."""
        names = self.sounds(menu.prompt) or ["beep"]
        for name in names[:-1]:
            key = await session.stream_file(name, KEYS)
            if key:
                return key
        return (await session.get_data(names[-1], int(menu.timeout * 1000), 1)) or ""

    async def _run(self, session, routing, steps, call, menus=True):
        """
        Try C{steps} in order. Fire with the menu step the call reached (the
        caller goes into that menu), or L{None} once the call is taken or
        nobody could take it.
        """
        status = None
        for step in steps:
            dest = step.destination
            call.destination = dest.label
            if step.action == RING:
                status = await self._ring(session, dest, call)
                if status == "ANSWER":
                    return None
                continue
            if step.action == VOICEMAIL:
                call.outcome = VOICEMAIL
                call.path.append(f"voicemail {dest.mailbox}")
                if dest.greeting is not None:
                    await self._play(session, dest.greeting)
                await session.exec_("VoiceMail", dest.mailbox, dest.voicemail_options)
                if (await session.get_variable("VMSTATUS")) != "FAILED":
                    return None
                call.path.append(f"{dest}: VoiceMail failed")
                call.outcome, status = FAILED, "FAILED"
                break
            if step.action == ANNOUNCEMENT:
                call.outcome = ANNOUNCEMENT
                call.path.append(f"announcement {dest.sound}")
                await self._play(session, dest.sound)
                return None
            if menus:
                return step
            call.path.append(f"{dest}: no more menus for this call")
            break
        call.path.append(f"nobody could take the call: {routing.hotline.sorry}")
        call.outcome = _OUTCOME.get(status, FAILED)
        await self._play(session, routing.hotline.sorry)
        return None

    async def _ring(self, session, dest, call):
        """Ring C{dest}'s phones; fire with the last C{DIALSTATUS}."""
        try:
            if dest.strategy == HUNT and len(dest.targets) > 1:
                legs = [self.dialer.dial_string(t, dest.trunk) for t in dest.targets]
            else:
                legs = [self.dialer.ring_all(dest.targets, dest.trunk)]
        except Exception as e:
            self.log.failure("hotline: cannot dial {destination}", destination=dest.name)
            call.path.append(f"{dest}: cannot dial ({e!r})")
            return "CHANUNAVAIL"
        status = "NOANSWER"
        for leg in legs:
            call.path.append(f"dial {leg} ({dest.ring_timeout} s)")
            try:
                await session.exec_("Dial", leg, dest.ring_timeout, self.dial_options)
            except AGIHangup:
                # Either the caller left while it rang (CANCEL), or after
                # talking (ANSWER); ask while the channel may still answer.
                if (await _variable(session, "DIALSTATUS")) == "ANSWER":
                    self._answered(call, dest, None)
                raise
            status = (await session.get_variable("DIALSTATUS")) or "UNKNOWN"
            if status == "ANSWER":
                self._answered(call, dest, (await _variable(session, "ANSWEREDTIME")))
                return status
            call.path.append(f"{leg}: {status}")
        return status

    def _answered(self, call, dest, talked):
        call.outcome, call.destination = ANSWERED, dest.label
        try:
            call.answered = self._now() - timedelta(seconds=float(talked))
        except (TypeError, ValueError):
            call.answered = self._now()
        call.path.append(f"answered at {dest}")

    async def _rescue(self, session, routing, call):
        """After an internal error: put a live caller through to the operator."""
        if routing is None or session.hungup:
            return False
        try:
            call.path.append("trying the operator")
            operator = routing.destinations[routing.hotline.operator]
            steps = plan(routing, operator, self._local(routing), call.path)
            await self._run(session, routing, steps, call, menus=False)
            await self._done(session, call)
        except AGIHangup:
            call.outcome = call.outcome or ABANDONED
        except Exception:
            self.log.failure("hotline call {uniqueid}: the operator could not be tried either",
                             uniqueid=call.uniqueid)
            return False
        return True

    async def _done(self, session, call):
        await session.set_variable(RESULT_VARIABLE, "OK")
        call.handled = True
        try:
            await session.hangup()
        except AGIHangup:
            pass

    def _begin(self, call):
        """On record from its start: in progress until L{_record}."""
        begin = getattr(self.call_log, "begin", None)
        if begin is not None:
            try:
                begin(call)
            except Exception:
                self.log.failure("hotline call {uniqueid}: start not recorded",
                                 uniqueid=call.uniqueid)

    def _record(self, call):
        call.ended = self._now()
        self.log.info("hotline call {uniqueid} from {caller}: {outcome} ({destination})",
                      uniqueid=call.uniqueid, caller=call.caller, outcome=call.outcome,
                      destination=call.destination)
        try:
            self.call_log.record(call)
        except Exception:
            self.log.failure("hotline call {uniqueid}: not recorded", uniqueid=call.uniqueid)


async def _variable(session, name):
    """A channel variable if it can still be read, else L{None}."""
    if session.hungup:
        return None
    try:
        return (await session.get_variable(name))
    except Exception:
        return None


def _known(value):
    if value in (None, "", "unknown", "s"):
        return None
    return value
