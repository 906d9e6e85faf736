"""
The FastAGI handler of script C{broadcast}: a household answered a notice.

The notice is played, then the question (收到请按一，重听请按二); either may
be cut short by a key. 1: heard, written to the database before the
resident hears the thanks, so a 1 is never lost to a restart that follows.
2, or no key within C{wait} seconds: the notice again, C{plays} times at
most; then the call ends unconfirmed. A call hung up meanwhile is
unconfirmed too (the dispatcher learns it from the C{Hangup}).

A call the server placed before a restart is still served: the channel
carries its attempt, delivery and sound (C{SWITCHBOARD_*}), and a 1 is
written for it.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.logger import Logger

from switchboard.agi.errors import AGIHangup
from switchboard.agi.session import drive

RESULT_VARIABLE = "SWITCHBOARD_RESULT"
KEYS = "12"
THANKS = "auth-thankyou"      # Asterisk's stock "thank you"
STOCK_QUESTION = "vm-press"   # stock "press" when the question has no rendering


class BroadcastHandler:
    """
    @param dispatcher: the L{broadcast.dispatcher.Dispatcher} whose calls these are.
    @param plays: the notice is played this many times at most.
    @param wait: seconds to wait for a key after the question.
    """

    log = Logger()

    def __init__(self, dispatcher, *, plays=3, wait=5.0):
        self.dispatcher = dispatcher
        self.plays = plays
        self.wait = wait

    def __call__(self, session) -> defer.Deferred:
        return drive(self.handle(session))

    async def handle(self, session):
        attempt = await session.get_variable("SWITCHBOARD_ATTEMPT")
        call = self.dispatcher.call_for(attempt)
        if call is not None:
            call.answered = True
            notice, question = call.sounds
        else:
            notice = await session.get_variable("SWITCHBOARD_SOUND")
            question = None
            if not notice:
                self.log.warn("broadcast: a call without a notice (attempt {a})", a=attempt)
                return None  # the dialplan ends the call
        repeats = 0
        try:
            for play in range(self.plays):
                if play:
                    repeats += 1
                key = await self._ask(session, notice, question)
                if key == "1":
                    await self._heard(session, call, attempt, repeats)
                    return "heard"
            # Never a 1: the call ends here, unconfirmed.
            if call is not None:
                self.dispatcher.unconfirmed(call, repeats)
            await session.set_variable(RESULT_VARIABLE, "OK")
            return "unconfirmed"
        except AGIHangup:
            if call is not None:
                self.dispatcher.unconfirmed(call, repeats)
            return "hung up"

    async def _ask(self, session, notice, question) -> str:
        played = await session.stream_file_result(notice, KEYS)
        if played.digit:
            return played.digit
        played = await session.stream_file_result(question or STOCK_QUESTION, KEYS)
        if played.digit:
            return played.digit
        return await session.wait_for_digit(int(self.wait * 1000))

    async def _heard(self, session, call, attempt, repeats):
        if call is not None:
            await self.dispatcher.heard(call, repeats)
        else:
            delivery = await session.get_variable("SWITCHBOARD_DELIVERY")
            await self.dispatcher.heard_unknown(attempt, delivery, repeats)
        self.log.info("broadcast: attempt {a} heard", a=attempt)
        await session.set_variable(RESULT_VARIABLE, "OK")
        await session.stream_file_result(THANKS)
