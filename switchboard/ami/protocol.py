"""
The manager wire protocol on one connection: banner, actions correlated by
C{ActionID}, event lists, events.
"""

from __future__ import annotations

import itertools
import os

from twisted.internet import defer
from twisted.internet.protocol import Protocol
from twisted.logger import Logger

from switchboard.ami import message as _message
from switchboard.ami.errors import (
    AMIActionError,
    AMIConnectionLost,
    AMILoginError,
    AMINotConnected,
    AMITimeout,
)
from switchboard.ami.framing import Banner, BlockReader, BlockTooLarge
from switchboard.ami.message import Message


def action_id_source(prefix=None):
    """
    A callable returning C{prefix-1}, C{prefix-2}, ... (a random prefix when
    none is given), unique among the clients of one Asterisk.
    """
    prefix = prefix or "sb" + os.urandom(4).hex()
    counter = itertools.count(1)
    return lambda: f"{prefix}-{next(counter)}"


class _Pending:
    """An action awaiting its response (and, for a list, its events)."""

    __slots__ = ("name", "deferred", "timeout", "timer", "response", "on_event", "error")

    def __init__(self, name, deferred, timeout, on_event=None):
        self.name = name
        self.deferred = deferred
        self.timeout = timeout
        self.timer = None
        self.response = None  # set when an event list has started
        self.on_event = on_event
        self.error = None  # raised by on_event


class AMIProtocol(Protocol):
    """
    One manager connection.

    Every action gets a fresh C{ActionID} and a Deferred fired by the
    response with that id: with the response L{Message}, or, for an action
    answering C{EventList: start}, with the response whose C{events} holds
    the list (the Deferred fires at the closing C{EventList: Complete}
    event). C{Response: Error} fails it with L{AMIActionError}; no answer
    within its timeout with L{AMITimeout} (a late answer is ignored); a
    closed connection with L{AMIConnectionLost}.

    The factory (if any) hears of the banner (C{bannerReceived(protocol,
    version)}), of events that belong to no list (C{eventReceived(protocol,
    message)}) and of the end (C{protocolLost(protocol, reason)}).

    A block that is not a response or an event is logged and skipped; a
    line or block over the size limits, a first line that is not a manager
    banner, or no banner within C{banner_timeout} seconds closes the link.

    @ivar banner: the protocol version from the banner, once received.
    """

    log = Logger()
    factory = None

    def __init__(self, clock=None, action_ids=None, action_timeout=10.0,
                 banner_timeout=None, max_line=65536, max_block=4 * 1024 * 1024):
        if clock is None:
            from twisted.internet import reactor as clock
        self.clock = clock
        self.nextActionID = action_ids or action_id_source()
        self.action_timeout = action_timeout
        self.banner_timeout = action_timeout if banner_timeout is None else banner_timeout
        self.banner = None
        self.closed = False
        self._aborted = False
        self._reader = BlockReader(max_line=max_line, max_block=max_block)
        self._pending = {}
        self._banner_call = None
        self._peer = "?"
        self.received_at = None  # clock time of the last bytes from Asterisk

    @property
    def event_filter(self):
        """
        C{event_filter(name)} -> whether an event named C{name} is wanted;
        an event it refuses (and that answers no action) is dropped before
        it is built. L{None}: every event.
        """
        return self._reader.event_filter

    @event_filter.setter
    def event_filter(self, wanted):
        self._reader.event_filter = wanted

    # Connection

    def connectionMade(self):
        peer = self.transport.getPeer()
        self._peer = f"{getattr(peer, 'host', '?')}:{getattr(peer, 'port', '?')}"
        self._banner_call = self.clock.callLater(self.banner_timeout, self._noBanner)

    def dataReceived(self, data):
        if self.closed or self._aborted:
            return
        self.received_at = self.clock.seconds()
        try:
            items = self._reader.feed(data)
        except BlockTooLarge as e:
            self.abort(f"refusing oversized data: {e}")
            return
        for item in items:
            if self.closed or self._aborted:
                return
            if type(item) is Message:  # nearly every item: tested first
                if item.is_event:
                    self._eventReceived(item)
                else:
                    self._responseReceived(item)
            elif isinstance(item, Banner):
                self._bannerReceived(item)
            else:
                self.log.warn(
                    "AMI {peer}: skipping malformed data ({problem}): {lines!r}",
                    peer=self._peer, problem=item.reason, lines=item.lines[:5],
                )

    def connectionLost(self, reason=None):
        self.closed = True
        self._cancelBannerCall()
        pending, self._pending = self._pending, {}
        for action_id, p in pending.items():
            _cancel(p.timer)
            p.deferred.errback(AMIConnectionLost(
                f"the AMI connection closed before the answer to {p.name} ({action_id})"
            ))
        if self.factory is not None:
            self.factory.protocolLost(self, reason)

    def abort(self, why):
        """Close the connection at once (no waiting for buffers), logging why."""
        if self.transport is None or self._aborted or self.closed:
            return
        self._aborted = True  # read nothing more from it
        self.log.warn("AMI {peer}: closing the connection: {detail}", peer=self._peer, detail=why)
        abort = getattr(self.transport, "abortConnection", None)
        (abort or self.transport.loseConnection)()

    # Banner

    def _bannerReceived(self, banner):
        self._cancelBannerCall()
        if banner.version is None:
            self.abort(f"not an Asterisk manager (first line {banner.text[:80]!r})")
            return
        self.banner = banner.version
        if self.factory is not None:
            self.factory.bannerReceived(self, banner.version)

    def _noBanner(self):
        self._banner_call = None
        self.abort(f"no manager banner within {self.banner_timeout:g} s")

    def _cancelBannerCall(self):
        _cancel(self._banner_call)
        self._banner_call = None

    # Actions

    def sendAction(self, name, headers=None, timeout=None, action_id=None, on_event=None):
        """
        Send action C{name} with C{headers} (a mapping or C{(name, value)}
        pairs; a list value gives repeated headers).

        @param timeout: seconds to wait for the answer (default
            C{action_timeout}); for an event list, the longest wait between
            two of its parts.
        @param action_id: the C{ActionID} to use (default: a fresh one).
        @param on_event: for an event list: called with each event as it
            comes, instead of gathering them in the response (a list of a
            million AstDB keys need not be held at once).
        @return: Deferred firing with the response L{Message}; failing with
            L{AMIArgumentError} (nothing written), L{AMINotConnected},
            L{AMIActionError}, L{AMITimeout} or L{AMIConnectionLost}.
        """
        if action_id is None:
            action_id = self.nextActionID()
        try:
            data = _message.action(name, headers, action_id).encode()
        except ValueError:
            return defer.fail()
        if self.closed or self.transport is None:
            return defer.fail(AMINotConnected(f"AMI connection closed: {name} not sent"))
        if action_id in self._pending:
            return defer.fail(ValueError(f"ActionID {action_id!r} is already awaited"))
        timeout = self.action_timeout if timeout is None else timeout
        pending = _Pending(name, defer.Deferred(), timeout, on_event)
        pending.timer = self.clock.callLater(timeout, self._expire, action_id)
        self._pending[action_id] = pending
        self.transport.write(data)
        return pending.deferred

    def login(self, username, secret, events="on"):
        """
        C{Action: Login}; fails with L{AMILoginError} when refused.
        """
        headers = [("Username", username), ("Secret", secret), ("Events", events)]

        def refused(failure):
            failure.trap(AMIActionError)
            raise AMILoginError(failure.value.message, failure.value.response)

        return self.sendAction("Login", headers).addErrback(refused)

    def ping(self, timeout=None):
        """C{Action: Ping}."""
        return self.sendAction("Ping", timeout=timeout)

    def logoff(self, timeout=None):
        """C{Action: Logoff}; Asterisk answers C{Goodbye} and closes."""
        return self.sendAction("Logoff", timeout=timeout)

    def _expire(self, action_id):
        pending = self._pending.pop(action_id, None)
        if pending is None:
            return
        pending.deferred.errback(AMITimeout(
            f"no answer to {pending.name} ({action_id}) within {pending.timeout:g} s"
        ))

    # Received blocks

    def _responseReceived(self, response):
        action_id = response.action_id
        pending = self._pending.get(action_id) if action_id is not None else None
        if pending is None or pending.response is not None:
            self.log.debug(
                "AMI {peer}: ignoring a response to no awaited action ({action_id})",
                peer=self._peer, action_id=action_id,
            )
            return
        if response.response.lower() == "error":
            self._finish(action_id, failure=AMIActionError(
                response.get("Message", "Response: Error"), response))
        elif (response.get("EventList") or "").lower() == "start":
            pending.response = response
            pending.timer.reset(pending.timeout)
        else:
            self._finish(action_id, result=response)

    def _eventReceived(self, event):
        # With no action awaited (most of the time) no event can belong to
        # a list: its ActionID is not even looked up.
        action_id = event.action_id if self._pending else None
        pending = self._pending.get(action_id) if action_id is not None else None
        if pending is not None and pending.response is not None:
            marker = (event.get("EventList") or "").lower()
            if marker in ("complete", "cancelled"):
                pending.response.complete = event
                if pending.error is not None:
                    self._finish(action_id, failure=pending.error)
                else:
                    self._finish(action_id, result=pending.response)
            else:
                pending.timer.reset(pending.timeout)
                if pending.on_event is None:
                    pending.response.events.append(event)
                else:
                    self._deliver(pending, event)
            return
        if self.factory is not None:
            try:
                self.factory.eventReceived(self, event)
            except Exception:
                self.log.failure("AMI {peer}: event handling failed", peer=self._peer)

    def _deliver(self, pending, event):
        try:
            pending.on_event(event)
        except Exception as e:
            # The rest of the list is still read off the wire, unheard;
            # the action fails with this error when the list ends.
            pending.on_event = _ignore
            pending.error = e

    def _finish(self, action_id, result=None, failure=None):
        pending = self._pending.pop(action_id)
        _cancel(pending.timer)
        if failure is not None:
            pending.deferred.errback(failure)
        else:
            pending.deferred.callback(result)


def _ignore(event):
    pass


def _cancel(call):
    if call is not None and call.active():
        call.cancel()
