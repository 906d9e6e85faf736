"""
The residents' requests as the duty board shows and handles them:
L{RequestDesk} provides L{switchboard.duty.IRequestDesk} over L{Requests}
and the call back through AMI (L{callback.ringback}).
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from callback.models import CallbackRequest
from callback.requests import NoSuchRequest
from callback.ringback import call_back
from switchboard.duty import IRequestDesk
from switchboard.routing.glance import mailbox_labels
from switchboard.routing.store import RoutingStore


@implementer(IRequestDesk)
class RequestDesk:
    """
    @param requests: the L{callback.requests.Requests}.
    @param ami: the AMI client (C{originate}); @param dialer: numbers to channels.
    @param services: the running features: the routing in force names the offices.
    """

    log = Logger()

    def __init__(self, requests, ami, dialer, services=()):
        self.requests = requests
        self.ami = ami
        self.dialer = dialer
        self.services = services
        self._labels = (None, {})   # (the routing they were read from, mailbox -> label)

    def labels(self) -> dict:
        """The offices' names for their mailboxes, from the routing in force (if any)."""
        for service in self.services:
            for part in getattr(service, "__dict__", {}).values():
                if isinstance(part, RoutingStore) and part.current is not None:
                    if self._labels[0] is not part.current:
                        self._labels = (part.current, mailbox_labels(part.current))
                    return self._labels[1]
        return {}

    def snapshot(self):
        return self.requests.snapshot(labels=self.labels())

    def watch(self, listener):
        self.requests.listeners.add(listener)
        return lambda: self.requests.listeners.remove(listener)

    def done(self, request_id, who, note):
        return self.requests.mark_done(int(request_id), note, by=who)

    def _row(self, request_id):
        def read(session):
            row = session.get(CallbackRequest, int(request_id))
            if row is None:
                raise NoSuchRequest(f"no request {request_id}")
            return row.caller, row.recording
        return self.requests.database.run(read)

    def call_back(self, request_id, who, from_phone):
        def place(found):
            caller, _ = found
            d = call_back(self.ami, self.dialer, caller, from_phone)

            def answered(result):
                if getattr(result, "outcome", None) == "answered":
                    return self.requests.mark_called_back(int(request_id), from_phone)
                self.log.info("request {id}: call back from {phone}: {outcome}",
                              id=request_id, phone=from_phone,
                              outcome=getattr(result, "outcome", result))

            # The staff phone rings for a while: the board does not wait for it.
            d.addCallback(answered).addErrback(
                lambda f: self.log.failure("request {id}: call back", f, id=request_id))
            return True

        return self._row(request_id).addCallback(place)

    def recording(self, request_id):
        return self._row(request_id).addCallback(lambda found: found[1])
