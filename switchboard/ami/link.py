"""
Keeping one logged-in manager connection: connect, log in, watch it with
pings, and reconnect after every failure, forever.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.internet.protocol import ClientFactory
from twisted.logger import Logger

from switchboard.ami.errors import (
    AMIActionError,
    AMILoginError,
    AMITimeout,
)
from switchboard.ami.protocol import AMIProtocol

# Connection failures logged individually before the log only notes every
# _REPEAT_LOG-th one (a stopped Asterisk would otherwise fill the log).
_FIRST_LOGGED = 3
_REPEAT_LOG = 20


class ManagerLink(ClientFactory):
    """
    Connects to the manager at C{host:port}, logs in on every connection,
    and after any failure (refused connection, lost link, refused login, no
    banner or login answer, no answer to a keepalive C{Ping}) connects again
    after the next delay of C{backoff}. Only L{stop} ends the attempts.

    The C{listener} hears C{linkUp(protocol)} after each login,
    C{linkDown(protocol, reason)} when a logged-in connection ends, and
    C{linkEvent(event)} for every event received.

    @ivar current: the logged-in L{AMIProtocol}, or L{None}.
    """

    log = Logger()
    noisy = False  # one log line per reconnection attempt is enough

    def __init__(self, host, port, username, secret, *, reactor, backoff, listener,
                 action_ids, ping_interval=10.0, ping_timeout=5.0, action_timeout=10.0,
                 connect_timeout=5.0, events="on", only_events=()):
        self.host = host
        self.port = port
        self.username = username
        self._secret = secret
        self.reactor = reactor
        self.backoff = backoff
        self.listener = listener
        self.action_ids = action_ids
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.action_timeout = action_timeout
        self.connect_timeout = connect_timeout
        self.events = events
        self.only_events = tuple(only_events)
        self.running = False
        self.current = None
        self._protocol = None      # the connection being set up or in use
        self._connector = None     # set while a TCP connection is attempted
        self._retry_call = None
        self._ping_call = None
        self._probe = None         # the Ping of a probe under way
        self._closed_waiters = []
        self._connect_failures = 0
        self._login_failures = 0

    def __repr__(self):
        return f"<ManagerLink {self.username}@{self.host}:{self.port}>"

    # Control

    def start(self):
        """Connect now (no-op when already running)."""
        if self.running:
            return
        self.running = True
        self.backoff.reset()
        self._connect()

    def stop(self):
        """
        Stop reconnecting; log off and close the connection if there is one.

        @return: Deferred fired once no connection is left.
        """
        self.running = False
        _cancel(self._retry_call)
        self._retry_call = None
        self._stopPinging()
        protocol = self._protocol
        if protocol is not None and not protocol.closed:
            closed = defer.Deferred()
            self._closed_waiters.append((protocol, closed))
            if protocol is self.current:
                d = protocol.logoff(timeout=min(self.action_timeout, 2.0))
                d.addCallbacks(lambda _: protocol.transport.loseConnection(),
                               lambda _: protocol.abort("no answer to Logoff"))
            else:
                protocol.transport.loseConnection()
            return closed
        if self._connector is not None:
            connector, self._connector = self._connector, None
            try:
                connector.stopConnecting()
            except Exception:  # already connected or failed: nothing to stop
                pass
        return defer.succeed(None)

    def _connect(self):
        self._retry_call = None
        if not self.running:
            return
        self._connector = self.reactor.connectTCP(
            self.host, self.port, self, timeout=self.connect_timeout)

    def _retryLater(self):
        if self._retry_call is not None or self._connector is not None \
                or self._protocol is not None:
            return  # an attempt is already under way (after a stop and a start)
        delay = self.backoff.next()
        self.log.debug("AMI {link}: next connection attempt in {delay:.2f} s",
                       link=self, delay=delay)
        self._retry_call = self.reactor.callLater(delay, self._connect)

    # ClientFactory

    def buildProtocol(self, addr):
        self._connector = None
        if not self.running:
            return None
        protocol = AMIProtocol(self.reactor, action_ids=self.action_ids,
                               action_timeout=self.action_timeout)
        protocol.factory = self
        protocol.event_filter = getattr(self.listener, "wants_event", None)
        self._protocol = protocol
        return protocol

    def clientConnectionFailed(self, connector, reason):
        self._connector = None
        if not self.running:
            return
        self._connect_failures += 1
        n = self._connect_failures
        if n <= _FIRST_LOGGED or n % _REPEAT_LOG == 0:
            self.log.warn("AMI {link}: cannot connect ({detail}); attempt {n}, retrying",
                          link=self, detail=reason.getErrorMessage(), n=n)
        self._retryLater()

    # From the protocol

    def bannerReceived(self, protocol, version):
        if protocol is not self._protocol or not self.running:
            return
        d = protocol.login(self.username, self._secret, events=self.events)
        d.addCallbacks(self._loggedIn, self._loginFailed,
                       callbackArgs=(protocol,), errbackArgs=(protocol,))

    def _loggedIn(self, response, protocol):
        if protocol.closed or protocol is not self._protocol:
            return
        if not self.running:
            protocol.transport.loseConnection()
            return
        if self.backoff.attempts:
            self.log.info("AMI {link}: logged in after {n} failed attempts", link=self,
                          n=self.backoff.attempts)
        else:
            self.log.info("AMI {link}: logged in", link=self)
        self._connect_failures = self._login_failures = 0
        self.backoff.reset()
        self.current = protocol
        self._schedulePing(protocol)
        if self.only_events:
            self._filterEvents(protocol)
        self.listener.linkUp(protocol)

    def _filterEvents(self, protocol):
        """
        Ask Asterisk to send this session only the events in
        C{only_events} (answers to actions come regardless). A filter is a
        regular expression on the event's text, which every Asterisk since
        10 understands; the character after the name keeps C{Hangup} from
        letting C{HangupRequest} through. Asterisk allows it only to a user
        with the C{system} write permission; without, every event of the
        login's classes keeps coming, and the log says so.
        """
        names = "|".join(self.only_events)
        d = protocol.sendAction("Filter", [("Operation", "Add"),
                                           ("Filter", f"Event: ({names})[^A-Za-z0-9]")])

        def refused(failure):
            if protocol.closed:
                return
            self.log.warn(
                "AMI {link}: cannot narrow the events to {names} ({detail}): every event of "
                "class {events} comes through, at some CPU cost per call; give this user "
                "the system write permission in manager.conf", link=self,
                names=", ".join(self.only_events), detail=failure.getErrorMessage(),
                events=self.events)

        d.addErrback(refused)

    def _loginFailed(self, failure, protocol):
        if not self.running or protocol.closed:
            return
        if failure.check(AMILoginError):
            self._login_failures += 1
            self.log.error(
                "AMI {link}: LOGIN REFUSED: {refusal} (attempt {n}); check the user name, "
                "secret and permit/deny of this user in Asterisk's manager.conf",
                link=self, refusal=failure.value.message, n=self._login_failures)
        else:
            self.log.warn("AMI {link}: login failed: {detail}", link=self,
                          detail=failure.getErrorMessage())
        protocol.abort("login failed")

    def eventReceived(self, protocol, event):
        if protocol is self._protocol:
            self.listener.linkEvent(event)

    def protocolLost(self, protocol, reason):
        was_up = protocol is self.current
        if protocol is self._protocol:
            self._protocol = None
        if was_up:
            self.current = None
            self._stopPinging()
            if self.running:
                self.log.warn("AMI {link}: connection lost ({detail}); reconnecting", link=self,
                              detail=reason.getErrorMessage() if reason is not None else "?")
            self.listener.linkDown(protocol, reason)
        if self.running:
            self._retryLater()
        waiters = [d for p, d in self._closed_waiters if p is protocol]
        self._closed_waiters = [(p, d) for p, d in self._closed_waiters if p is not protocol]
        for d in waiters:
            d.callback(None)

    # Keepalive

    def _schedulePing(self, protocol):
        if protocol is self.current and self.running:
            self._ping_call = self.reactor.callLater(self.ping_interval, self._ping, protocol)

    def _ping(self, protocol):
        self._ping_call = None
        if protocol is not self.current:
            return
        d = protocol.ping(timeout=self.ping_timeout)
        d.addCallbacks(lambda _: self._schedulePing(protocol), self._pingFailed,
                       errbackArgs=(protocol,))

    def _pingFailed(self, failure, protocol):
        if failure.check(AMITimeout):
            received = protocol.received_at
            if received is not None and self.reactor.seconds() - received < self.ping_timeout:
                # Asterisk answers one action at a time: the Ping waits
                # behind a long event list (DBGetTree) still streaming in.
                self._schedulePing(protocol)
                return
            protocol.abort(f"no answer to Ping within {self.ping_timeout:g} s (dead link)")
        elif failure.check(AMIActionError):
            self._schedulePing(protocol)  # an answer all the same: the link is alive
        # AMIConnectionLost: protocolLost takes care of it.

    def probe(self, protocol, timeout):
        """
        An action of C{protocol} is late: Ping now and drop the link if
        Asterisk sends nothing at all within C{timeout} seconds. A busy
        link (any bytes meanwhile, e.g. an event list streaming ahead of
        the Ping) is left alone. One probe at a time.
        """
        if protocol is not self.current or self._probe is not None:
            return
        sent_at = self.reactor.seconds()
        self._probe = d = protocol.ping(timeout=timeout)

        def silent(failure):
            failure.trap(AMITimeout)
            received = protocol.received_at
            if received is None or received < sent_at:
                protocol.abort(f"an action went unanswered and so did a Ping within "
                               f"{timeout:g} s (frozen link)")

        def done(result):
            self._probe = None
            return result

        d.addBoth(done)
        d.addErrback(silent)
        d.addErrback(lambda failure: None)  # an error answer, or the link lost: nothing to do

    def _stopPinging(self):
        _cancel(self._ping_call)
        self._ping_call = None


def _cancel(call):
    if call is not None and call.active():
        call.cancel()
