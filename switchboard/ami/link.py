"""
Keeping one logged-in manager connection: connect, log in, watch it with
pings, and reconnect after every failure, forever.

The connection and its retries are Twisted's C{ClientService} (over a TCP
endpoint): it connects, waits the retry policy's delay after a refused
attempt or a closed connection, and stops. What it does not do, this link
does on top of it:

  - Logging in is not C{ClientService}'s C{prepareConnection}. In Twisted
    26.10 a connection that C{prepareConnection} rejects is left open
    (nothing closes it), and when it then closes, or when a connection
    closes while C{prepareConnection} is still running, its state machine
    raises C{automat.NoTransition} ("no transition for _clientDisconnected
    in Connecting/Waiting") out of C{connectionLost}: there is no
    transition for a disconnect before the connection is accepted. Every
    failed AMI login goes that way (a wrong banner, no banner, a refused
    login, no answer to it, the connection closed meanwhile). So
    C{ClientService} holds every TCP connection as made, and this link logs
    in once the banner comes and closes the connection when the login
    fails; C{ClientService} then sees an ordinary closed connection.
  - For the same reason C{whenConnected} (it fires at the TCP connection)
    is not the client's C{when_connected} (logged in).
  - The delays: C{ClientService} counts failures from the last TCP
    connection, but an Asterisk that accepts and then refuses the login
    (or drops the link) must back off too. The retry policy ignores that
    count and takes the next delay of this link's L{Backoff}, which only a
    successful login resets.
  - C{ClientService} logs every scheduled retry (one line every 3 s, day
    and night, while Asterisk is down); this link silences that and logs
    the first failures and then every 20th.
  - A stopped C{ClientService} restarted before its last connection has
    closed waits for that close before connecting; each L{ManagerLink.start}
    runs a fresh one instead, so a restart connects at once.
"""

from __future__ import annotations

from twisted.application.internet import ClientService
from twisted.internet import defer
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.error import ConnectingCancelledError
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from zope.interface import implementer

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


class ManagerLink(Factory):
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
        self._service = None       # the ClientService of this run (start to stop)
        self._protocol = None      # the connection being set up or in use
        self._ping_call = None
        self._probe = None         # the Ping of a probe under way
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
        endpoint = _ReportingEndpoint(
            TCP4ClientEndpoint(self.reactor, self.host, self.port,
                               timeout=self.connect_timeout),
            self._connectFailed)
        self._service = _QuietClientService(endpoint, self, retryPolicy=self._retryDelay,
                                            clock=self.reactor)
        self._service.startService()

    def stop(self):
        """
        Stop reconnecting; log off and close the connection if there is one.

        @return: Deferred fired once no connection is left.
        """
        self.running = False
        self._stopPinging()
        service, self._service = self._service, None
        if service is None:
            return defer.succeed(None)
        protocol = self.current
        if protocol is None or protocol.closed:
            return service.stopService()  # closes a connection still logging in
        d = protocol.logoff(timeout=min(self.action_timeout, 2.0))
        d.addErrback(lambda _: protocol.abort("no answer to Logoff"))
        d.addBoth(lambda _: service.stopService())
        return d

    def _retryDelay(self, failed_in_a_row):
        """
        C{ClientService}'s retry policy. Its count restarts at every TCP
        connection; the backoff's only at a login.
        """
        delay = self.backoff.next()
        self.log.debug("AMI {link}: next connection attempt in {delay:.2f} s",
                       link=self, delay=delay)
        return delay

    def _connectFailed(self, failure):
        if not self.running or failure.check(ConnectingCancelledError):
            return
        self._connect_failures += 1
        n = self._connect_failures
        if n <= _FIRST_LOGGED or n % _REPEAT_LOG == 0:
            self.log.warn("AMI {link}: cannot connect ({detail}); attempt {n}, retrying",
                          link=self, detail=failure.getErrorMessage(), n=n)

    # Factory

    def buildProtocol(self, addr):
        protocol = AMIProtocol(self.reactor, action_ids=self.action_ids,
                               action_timeout=self.action_timeout)
        protocol.factory = self
        protocol.event_filter = getattr(self.listener, "wants_event", None)
        self._protocol = protocol
        return protocol

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
        if protocol is self._protocol:
            self._protocol = None
        if protocol is self.current:
            self.current = None
            self._stopPinging()
            if self.running:
                self.log.warn("AMI {link}: connection lost ({detail}); reconnecting", link=self,
                              detail=reason.getErrorMessage() if reason is not None else "?")
            self.listener.linkDown(protocol, reason)
        # ClientService hears of the close too, and connects again.

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


@implementer(IStreamClientEndpoint)
class _ReportingEndpoint:
    """
    An endpoint that tells C{failed(failure)} of each failed connection
    attempt before C{ClientService} schedules the next (it does not say
    why an attempt failed).
    """

    def __init__(self, endpoint, failed):
        self._endpoint = endpoint
        self._failed = failed

    def connect(self, factory):
        d = self._endpoint.connect(factory)

        def failed(failure):
            self._failed(failure)
            return failure

        return d.addErrback(failed)


class _QuietClientService(ClientService):
    """
    A C{ClientService} that does not log each retry it schedules (the link
    logs failures sparsely itself).
    """

    _log = Logger(observer=lambda event: None)
