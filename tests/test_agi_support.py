"""
Helpers for the FastAGI tests (no tests here): a factory connected to a
StringTransport the way Asterisk connects, and a handler that hands the
session to the test.
"""

from __future__ import annotations

from twisted.internet import defer, task
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from switchboard.agi import FastAGIFactory

CHANNEL = "PJSIP/87650001-00000001"

# What Asterisk 22 sends for AGI(agi://127.0.0.1:4573/hotline?office=health&lang=zh,a b,c)
ENV_LINES = [
    "agi_network: yes",
    "agi_network_script: hotline?office=health&lang=zh",
    "agi_request: agi://127.0.0.1:4573/hotline?office=health&lang=zh",
    f"agi_channel: {CHANNEL}",
    "agi_language: en",
    "agi_type: PJSIP",
    "agi_uniqueid: 1732345678.12",
    "agi_version: 22.1.0",
    "agi_callerid: 87650001",
    "agi_calleridname: Resident 1",
    "agi_callingpres: 0",
    "agi_callingani2: 0",
    "agi_callington: 0",
    "agi_callingtns: 0",
    "agi_dnid: 12345",
    "agi_rdnis: unknown",
    "agi_context: switchboard-hotline",
    "agi_extension: 12345",
    "agi_priority: 3",
    "agi_enhanced: 0.0",
    "agi_accountcode: ",
    "agi_threadid: 140233420629696",
    "agi_arg_1: a b",
    "agi_arg_2: c",
]


def environment(script="hotline?office=health&lang=zh", extra=()):
    """The environment block Asterisk sends, ending with the blank line."""
    lines = [
        f"agi_network_script: {script}" if line.startswith("agi_network_script:") else line
        for line in ENV_LINES
    ]
    lines.extend(extra)
    return ("\n".join(lines) + "\n\n").encode("utf-8")


class Handler:
    """
    A handler that records the session and returns a Deferred the test
    fires (C{finish}) or fails (C{fail}).
    """

    def __init__(self):
        self.sessions = []
        self.deferred = None

    def __call__(self, session):
        self.sessions.append(session)
        self.deferred = defer.Deferred()
        return self.deferred

    @property
    def session(self):
        return self.sessions[-1]

    def finish(self, value=None):
        self.deferred.callback(value)

    def fail(self, error):
        self.deferred.errback(Failure(error))


class Connection:
    """A FastAGI connection from Asterisk, in memory."""

    def __init__(self, handlers=None, *, peer=None, clock=None, **options):
        self.clock = clock or task.Clock()
        self.handlers = {} if handlers is None else handlers
        self.factory = FastAGIFactory(self.handlers, clock=self.clock, **options)
        if peer is None:
            peer = IPv4Address("TCP", "127.0.0.1", 12345)
        self.peer = peer
        self.protocol = self.factory.buildProtocol(peer)
        self.transport = StringTransport(peerAddress=peer)
        self.protocol.makeConnection(self.transport)

    def receive(self, data):
        """Bytes from Asterisk."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.protocol.dataReceived(data)

    def written(self):
        """Bytes sent to Asterisk since the last call."""
        data = self.transport.value()
        self.transport.clear()
        return data

    @property
    def closed(self):
        return self.transport.disconnecting

    @property
    def aborted(self):
        return self.transport.disconnected


def ipv6(host):
    return IPv6Address("TCP", host, 12345)


def ipv4(host):
    return IPv4Address("TCP", host, 12345)
