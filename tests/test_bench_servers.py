"""
The benchmark's FastAGI servers (L{bench.agi_servers}) compare like with
like: each performs the exchange the hotline performs, and the recording
raw responder keeps the record the hotline keeps.
"""

from __future__ import annotations

import pytest
import asyncio
import json
import shutil
import tempfile

from twisted.internet import task
from twisted.internet.address import IPv4Address
from twisted.internet.protocol import ServerFactory
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from bench import agi_servers
from bench.agi_load import AsteriskCall, environment
from switchboard.agi import FastAGIFactory
from switchboard.calllog import CallLog, CallRecord
from tests import databases
from tests.test_hotline_support import SyncDatabase

pytestmark = pytest.mark.database

PEER = IPv4Address("TCP", "127.0.0.1", 40000)

#: The hotline's exchange for call 7 of the load (bench/agi_load.py).
EXCHANGE = [
    b"ANSWER",
    b'SET VARIABLE "CHANNEL(language)" "zh"',
    b'STREAM FILE "hello-world" "0123456789*#"',
    b'GET DATA "vm-enter-num-to-call" 5000 1',
    b'EXEC Dial "PJSIP/87650001&PJSIP/87650002,20,g"',
    b'GET VARIABLE "DIALSTATUS"',
    b'GET VARIABLE "ANSWEREDTIME"',
    b'SET VARIABLE "SWITCHBOARD_RESULT" "OK"',
    b"HANGUP",
]


def play(factory, number=7):
    """
    Play Asterisk's side of one call against C{factory}'s protocol; return
    the command lines it sent and how the call ended for the generator.
    """
    protocol = factory.buildProtocol(PEER)
    transport = StringTransport(peerAddress=PEER)
    protocol.makeConnection(transport)
    asterisk = AsteriskCall(None, 0)
    sent = []
    protocol.dataReceived(environment(number, 4573))
    while not transport.disconnecting:
        written = transport.value()
        transport.clear()
        if not written:
            break
        sent += written.split(b"\n")[:-1]
        protocol.dataReceived(asterisk.received(written))
    protocol.connectionLost(None)
    return sent, asterisk.closed()


class _AsteriskWriter:
    """
    An asyncio stream writer whose other end is Asterisk: what is written
    is answered at once into C{reader}.
    """

    def __init__(self, asterisk, reader):
        self.asterisk, self.reader = asterisk, reader
        self.sent = b""
        self.closed = False

    def write(self, data):
        self.sent += data
        self.reader.feed_data(self.asterisk.received(data))

    async def drain(self):
        pass

    def close(self):
        self.closed = True

    def get_extra_info(self, name, default=None):
        return ("127.0.0.1", 40000) if name == "peername" else default


def play_panoramisk(number=7):
    """L{play} for server (p): panoramisk's handler on asyncio streams."""
    loop = asyncio.new_event_loop()
    try:
        application = agi_servers.panoramisk_application(loop)
        reader = asyncio.StreamReader(loop=loop)
        asterisk = AsteriskCall(None, 0)
        writer = _AsteriskWriter(asterisk, reader)
        reader.feed_data(environment(number, 4573))
        loop.run_until_complete(asyncio.wait_for(application.handler(reader, writer), 5))
    finally:
        loop.close()
    assert writer.closed, "the server did not close the connection"
    return writer.sent.split(b"\n")[:-1], asterisk.closed()


class ServersTests(SynchronousTestCase):
    def setUp(self):
        self.folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.folder, ignore_errors=True)
        self.clock = task.Clock()

    def call_log(self, name):
        database = SyncDatabase(databases.url(self.folder, name))
        database.migrate()
        self.addCleanup(database.close)
        return CallLog(database, clock=self.clock)

    def rows(self, call_log):
        with call_log.database.session() as session:
            return [{column: getattr(row, column) for column in
                     ("caller", "hotline", "uniqueid", "path", "destination", "outcome")}
                    for row in session.query(CallRecord).all()]

    def hotline(self):
        handler, _reload, _description = agi_servers.wire_hotline(
            database_url=databases.url(self.folder, "wired"))
        self.addCleanup(handler.call_log.database.close)
        handler.call_log = self.call_log("hotline")
        return handler

    def test_same_exchange(self):
        """Every server sends the hotline's command lines, in its order."""
        factories = {
            "raw": ServerFactory.forProtocol(agi_servers.raw_protocol()),
            "raw-record": ServerFactory.forProtocol(
                agi_servers.raw_recording_protocol(self.call_log("raw"))),
            "standin": FastAGIFactory({"hotline": agi_servers.standin_handler},
                                      clock=self.clock),
            "switchboard": FastAGIFactory({"hotline": self.hotline()}, clock=self.clock),
        }
        for kind, factory in factories.items():
            with self.subTest(kind):
                self.assertEqual(play(factory), (EXCHANGE, "ok"))
        with self.subTest("panoramisk"):
            self.assertEqual(play_panoramisk(), (EXCHANGE, "ok"))

    def test_same_record(self):
        """
        The recording raw responder stores the row the hotline stores for
        that call (the caller aside: the hotline writes it in E.164).
        """
        handler = self.hotline()
        play(FastAGIFactory({"hotline": handler}, clock=self.clock))
        raw_log = self.call_log("raw")
        play(ServerFactory.forProtocol(agi_servers.raw_recording_protocol(raw_log)))
        [hotline_row] = self.rows(handler.call_log)
        [raw_row] = self.rows(raw_log)
        self.assertEqual(hotline_row.pop("caller"), "+8659187660007")
        self.assertEqual(raw_row.pop("caller"), "87660007")
        self.assertEqual(raw_row, hotline_row)
        self.assertEqual(len(json.loads(raw_row["path"])), len(agi_servers.RECORDED_PATH))
