"""
The fan-out bench's floor (L{bench.alarm_floor}) does what its figures claim:
ten Originates on the AMI session the moment a session's environment ends,
before its first command, then ANSWER, a wait for a key, the result, HANGUP.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from bench.alarm_floor import Floor, FloorAMI

PHONES = [f"8765{n:04d}" for n in range(2, 12)]


class FloorTests(SynchronousTestCase):
    def setUp(self):
        self.floor = Floor(PHONES, 1500)
        self.ami = StringTransport()
        logged = []
        ami = FloorAMI("switchboard", "secret", logged.append)
        ami.makeConnection(self.ami)
        self.assertEqual(self.ami.value(), b"Action: Login\r\nUsername: switchboard\r\n"
                                           b"Secret: secret\r\nEvents: off\r\n\r\n")
        self.ami.clear()
        ami.dataReceived(b"Asterisk Call Manager/11.0.0\r\nResponse: Success\r\n"
                         b"Message: Authentication accepted\r\n\r\n")
        self.assertEqual(logged, [ami])
        self.floor.ami = ami

    def session(self):
        agi = self.floor.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        transport = StringTransport()
        agi.makeConnection(transport)
        return agi, transport

    def test_ten_originates_once_the_environment_ends(self):
        agi, transport = self.session()
        agi.dataReceived(b"agi_network: yes\nagi_callerid: 87660001\n")
        self.assertEqual(self.ami.value(), b"")
        agi.dataReceived(b"\n")
        actions = self.ami.value().split(b"\r\n\r\n")[:-1]
        self.assertEqual(len(actions), 10)
        self.assertEqual(actions[0], b"Action: Originate\r\nActionID: f1-0\r\n"
                                     b"Channel: PJSIP/87650002\r\nApplication: Wait\r\n"
                                     b"Data: 5\r\nTimeout: 1500\r\n"
                                     b"CallerID: ALARM <1>\r\nAsync: true")
        self.assertEqual([a.split(b"\r\n")[2] for a in actions],
                         [f"Channel: PJSIP/{p}".encode() for p in PHONES])
        self.assertEqual(transport.value(), b"ANSWER\n")

    def test_steps_then_close(self):
        agi, transport = self.session()
        agi.dataReceived(b"agi_network: yes\n\n")
        for reply, command in ((b"200 result=0\n", b"WAIT FOR DIGIT 10000\n"),
                               (b"200 result=42\n", b"SET VARIABLE SWITCHBOARD_RESULT OK\n"),
                               (b"200 result=1\n", b"HANGUP\n")):
            transport.clear()
            agi.dataReceived(reply)
            self.assertEqual(transport.value(), command)
            self.assertFalse(transport.disconnecting)
        agi.dataReceived(b"200 result=1\n")
        self.assertTrue(transport.disconnecting)

    def test_caller_gone(self):
        agi, transport = self.session()
        agi.dataReceived(b"agi_network: yes\n\nHANGUP\n")
        self.assertTrue(transport.disconnecting)

    def test_each_session_numbered(self):
        for _ in range(2):
            self.session()[0].dataReceived(b"\n")
        ids = [line for line in self.ami.value().split(b"\r\n") if line.startswith(b"ActionID")]
        self.assertEqual(ids[0], b"ActionID: f1-0")
        self.assertEqual(ids[10], b"ActionID: f2-0")
        self.assertEqual(len(ids), 20)
