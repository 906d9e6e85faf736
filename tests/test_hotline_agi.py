"""
The hotline handler behind the real FastAGI server, with the test playing
Asterisk's side of the connection byte for byte.
"""

from __future__ import annotations

from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase

from switchboard.hotline import HotlineHandler
from tests.test_agi_support import Connection, environment
from tests.test_hotline_support import DIALER, SHANGHAI, Recorder, Store, routing, seconds


# The routing gives the hotline no language: Mandarin.
LANGUAGE = (b'SET VARIABLE "CHANNEL(language)" "zh"\n', "200 result=1")


class AsteriskSideTests(SynchronousTestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.clock.advance(seconds("2026-10-08 10:00"))
        self.log = Recorder()
        handler = HotlineHandler(Store(routing()), DIALER, self.log, SHANGHAI, clock=self.clock)
        self.asterisk = Connection({"hotline": handler}, clock=self.clock)
        self.asterisk.receive(environment("hotline"))

    def converse(self, exchange):
        """Check each command the server sends; answer it with the given lines."""
        for expected, *replies in exchange:
            self.assertEqual(self.asterisk.written(), expected)
            for reply in replies:
                self.asterisk.receive(reply + "\n")

    def test_digit_dial_answered(self):
        self.converse([
            (b"ANSWER\n", "200 result=0"),
            LANGUAGE,
            (b'STREAM FILE "hello" "0123456789*#"\n', "200 result=0 endpos=8000"),
            (b'GET DATA "main-menu" 5000 1\n', "200 result=1"),
            (b'EXEC Dial "PJSIP/87650011,20,g"\n', "200 result=0"),
            (b'GET VARIABLE "DIALSTATUS"\n', "200 result=1 (ANSWER)"),
            (b'GET VARIABLE "ANSWEREDTIME"\n', "200 result=1 (62)"),
            (b'SET VARIABLE "SWITCHBOARD_RESULT" "OK"\n', "200 result=1"),
            (b"HANGUP\n", "200 result=1"),
        ])
        self.assertTrue(self.asterisk.closed)
        (call,) = self.log.calls
        self.assertEqual((call.outcome, call.caller, call.hotline, call.uniqueid),
                         ("answered", "+8659187650001", "12345", "1732345678.12"))

    def test_caller_hangs_up_after_talking(self):
        # Dial's -1 comes first, Asterisk's HANGUP notice after it: the
        # handler's question about DIALSTATUS is already on its way.
        self.converse([
            (b"ANSWER\n", "200 result=0"),
            LANGUAGE,
            (b'STREAM FILE "hello" "0123456789*#"\n', "200 result=0 endpos=8000"),
            (b'GET DATA "main-menu" 5000 1\n', "200 result=1"),
            (b'EXEC Dial "PJSIP/87650011,20,g"\n', "200 result=-1"),
            (b'GET VARIABLE "DIALSTATUS"\n', "HANGUP", "200 result=1 (ANSWER)"),
        ])
        self.assertEqual(self.asterisk.written(), b"")
        (call,) = self.log.calls
        self.assertEqual(call.outcome, "answered")

    def test_caller_hangs_up_in_the_menu(self):
        self.converse([
            (b"ANSWER\n", "200 result=0"),
            LANGUAGE,
            (b'STREAM FILE "hello" "0123456789*#"\n', "200 result=0 endpos=8000"),
            (b'GET DATA "main-menu" 5000 1\n', "HANGUP", "200 result=-1"),
        ])
        self.assertEqual(self.asterisk.written(), b"")
        self.assertEqual(self.log.calls[0].outcome, "abandoned")

    def test_busy_then_voicemail(self):
        self.converse([
            (b"ANSWER\n", "200 result=0"),
            LANGUAGE,
            (b'STREAM FILE "hello" "0123456789*#"\n', "200 result=49 endpos=100"),  # "1"
            (b'EXEC Dial "PJSIP/87650011,20,g"\n', "200 result=0"),
            (b'GET VARIABLE "DIALSTATUS"\n', "200 result=1 (BUSY)"),
            (b'EXEC Dial "PJSIP/87650190,20,g"\n', "200 result=0"),
            (b'GET VARIABLE "DIALSTATUS"\n', "200 result=1 (NOANSWER)"),
            (b'EXEC VoiceMail "100@switchboard,u"\n', "200 result=0"),
            (b'GET VARIABLE "VMSTATUS"\n', "200 result=1 (SUCCESS)"),
            (b'SET VARIABLE "SWITCHBOARD_RESULT" "OK"\n', "200 result=1"),
            (b"HANGUP\n", "200 result=1"),
        ])
        self.assertEqual(self.log.calls[0].outcome, "voicemail")
