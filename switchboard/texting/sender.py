"""
Sending text messages with retries, each one's fate told once.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.logger import Logger

from switchboard.community.mobiles import mask
from switchboard.texting.channel import TextResult


class TextSender:
    """
    Sends through C{channel} (an L{ITextChannel}); a message not sent is
    tried again C{retries} times, C{retry_after} seconds apart (doubling),
    then given up. At most C{limit} messages wait at once: a link that is
    down for hours must not make a backlog that floods phones when it is
    back; messages beyond it are given up at once, and said so.

    @param clock: C{IReactorTime}.
    """

    log = Logger()

    def __init__(self, channel, clock, *, retries=3, retry_after=5.0, limit=1000):
        self.channel = channel
        self.clock = clock
        self.retries = retries
        self.retry_after = retry_after
        self.limit = limit
        self.waiting = 0
        self._timers = set()

    def send(self, to, body) -> defer.Deferred:
        """
        Send C{body} to C{to}. Fires with the final L{TextResult} (sent, or
        not after every try; never fails).
        """
        if self.waiting >= self.limit:
            return defer.succeed(TextResult(to, False, f"more than {self.limit} messages "
                                                       "waiting: not sent"))
        self.waiting += 1
        done = defer.Deferred()
        self._try(to, body, 0, done)
        return done

    def _try(self, to, body, attempt, done):
        d = defer.maybeDeferred(self.channel.send, to, body)
        d.addErrback(lambda failure: TextResult(to, False, str(failure.value)[:200]))
        d.addCallback(self._tried, to, body, attempt, done)

    def _tried(self, result, to, body, attempt, done):
        if result.sent or attempt >= self.retries:
            self.waiting -= 1
            if not result.sent:
                # Masked: a resident's mobile is never logged in full.
                self.log.error("text to {to} not sent after {n} tries: {why}", to=mask(to),
                               n=attempt + 1, why=result.detail)
            done.callback(result)
            return
        delay = self.retry_after * 2 ** attempt
        timer = None

        def again():
            self._timers.discard(timer)
            self._try(to, body, attempt + 1, done)

        timer = self.clock.callLater(delay, again)
        self._timers.add(timer)

    def stop(self) -> None:
        """No more tries (at shutdown); those waiting are left unsent."""
        for timer in list(self._timers):
            if timer.active():
                timer.cancel()
        self._timers.clear()
