"""
Helpers for the AMI tests (no tests here): an L{AMIClient} on a
C{MemoryReactorClock}, and an Asterisk played through a C{StringTransport}.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from switchboard.ami import AMIClient

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
USER = "switchboard"
SECRET = "s3cret"


def login_bytes(action_id):
    """What the client writes to log in."""
    return (
        f"Action: Login\r\nActionID: {action_id}\r\nUsername: {USER}\r\n"
        f"Secret: {SECRET}\r\nEvents: on\r\n\r\n"
    ).encode()


def block(*lines):
    """A block as Asterisk writes it: CRLF lines and a blank line."""
    return ("".join(line + "\r\n" for line in lines) + "\r\n").encode()


class FakeAsterisk:
    """
    One connection of the client, with the Asterisk end played by the test.
    """

    def __init__(self, protocol, transport, connection=None):
        self.protocol = protocol
        self.transport = transport
        # What the transport drives: the protocol inside the wrappers of
        # the endpoint and of ClientService, which must hear of the close.
        self.connection = connection or protocol

    def says(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.protocol.dataReceived(data)

    def respond(self, action_id, *lines, status="Success"):
        self.says(block(f"Response: {status}", f"ActionID: {action_id}", *lines))

    def event(self, name, *lines):
        self.says(block(f"Event: {name}", *lines))

    def written(self):
        """Everything the client wrote since the last call."""
        data = self.transport.value()
        self.transport.clear()
        return data

    def close(self, reason=None):
        """The connection ends (Asterisk went away, or the client closed it)."""
        self.transport.disconnecting = True
        self.connection.connectionLost(Failure(reason or ConnectionDone()))


def make_client(**kwargs):
    """An unstarted client on a MemoryReactorClock, ActionIDs C{t-1, t-2, ...}."""
    reactor = MemoryReactorClock()
    kwargs.setdefault("random", lambda: 0.5)
    client = AMIClient("127.0.0.1", 5038, USER, SECRET, reactor=reactor, client_id="t",
                       **kwargs)
    return client, reactor


def accept(reactor):
    """Let the client's latest connection attempt succeed; a L{FakeAsterisk}."""
    host, port, factory, timeout, bind = reactor.tcpClients[-1]
    connection = factory.buildProtocol(IPv4Address("TCP", host, port))
    transport = StringTransport(peerAddress=IPv4Address("TCP", host, port))
    connection.makeConnection(transport)
    return FakeAsterisk(_innermost(connection), transport, connection)


def _innermost(protocol):
    """The client's own protocol inside the endpoint's and ClientService's wrappers."""
    while True:
        inner = getattr(protocol, "_wrappedProtocol", None) or vars(protocol).get("_protocol")
        if inner is None:
            return protocol
        protocol = inner


def refuse(reactor):
    """Let the client's latest connection attempt fail."""
    host, port, factory, timeout, bind = reactor.tcpClients[-1]
    factory.clientConnectionFailed(reactor.connectors[-1], Failure(ConnectionRefusedError()))


def connect(client, reactor):
    """
    Accept the pending connection attempt and log in; returns the
    L{FakeAsterisk} with its written bytes cleared.
    """
    ast = accept(reactor)
    ast.says(BANNER)
    data = ast.written()
    action_id = data.split(b"ActionID: ", 1)[1].split(b"\r\n", 1)[0].decode()
    assert data == login_bytes(action_id)
    ast.respond(action_id, "Message: Authentication accepted")
    assert client.connected
    return ast


def started(**kwargs):
    """A started, logged-in client: C{(client, reactor, fake_asterisk)}."""
    client, reactor = make_client(**kwargs)
    client.start()
    return client, reactor, connect(client, reactor)
