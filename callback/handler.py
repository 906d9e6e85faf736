"""
The FastAGI handler of script C{callback}: a resident who dialled C{*0}.

The request is recorded first, and only then confirmed: a resident who
hears "we will call you back" has a row in the table. The confirmation is
the prompt rendered ahead of time when there is one (a lookup on the call
path, never a rendering), else Asterisk's stock C{auth-thankyou}. A caller
without a caller ID cannot be called back: nothing is recorded and they
hear C{privacy-unident}. A database that refuses fails the call, and the
dialplan's fallback says to try later.
"""

from __future__ import annotations

from datetime import datetime, timezone

from twisted.internet import defer
from twisted.logger import Logger

from switchboard.agi.session import drive
from switchboard.text import printable

RESULT_VARIABLE = "SWITCHBOARD_RESULT"
STOCK_CONFIRMATION = "auth-thankyou"
NO_CALLER_ID = "privacy-unident"
_ANONYMOUS = {"", "anonymous", "unknown", "restricted", "private"}


class CallbackHandler:
    """
    @param requests: where requests go (L{callback.requests.Requests}).
    @param numbers: the L{switchboard.numbers.NumberPlan} (caller IDs made E.164).
    @param confirmation: the sound name to play, as a function called on each
        call (the rendering, once there is one), or None for the stock sound.
    @param clock: for the request's time (C{seconds()}).
    """

    log = Logger()

    def __init__(self, requests, numbers, *, confirmation=None, clock=None):
        if clock is None:
            from twisted.internet import reactor as clock
        self.requests = requests
        self.numbers = numbers
        self.confirmation = confirmation or (lambda: None)
        self.clock = clock

    def __call__(self, session) -> defer.Deferred:
        return drive(self.handle(session))

    async def handle(self, session):
        raw = str(session.env.get("callerid") or "").strip()
        await session.answer()
        if raw.lower() in _ANONYMOUS:
            self.log.info("callback request without a caller ID: not recorded")
            await session.stream_file_result(NO_CALLER_ID)
            await session.set_variable(RESULT_VARIABLE, "OK")
            return None
        caller = self.numbers.try_normalise(raw) or printable(raw)
        when = datetime.fromtimestamp(self.clock.seconds(), timezone.utc)
        request = await self.requests.add(caller, session.env.get("uniqueid"), when)
        self.log.info("callback request {id} recorded", id=request)
        played = await session.stream_file_result(self.confirmation() or STOCK_CONFIRMATION)
        if played.failed:
            await session.stream_file_result(STOCK_CONFIRMATION)
        await session.set_variable(RESULT_VARIABLE, "OK")
        return request
