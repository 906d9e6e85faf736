"""
The complete FastAGI API: every AGI command of Asterisk 22 (res_agi.c,
app_stack.c), byte for byte, with the reply forms Asterisk's own code
writes. The scenarios named "testsuite" follow Asterisk's testsuite
(tests/fastagi/*/run-test) command by command.
"""

import datetime

from switchboard.agi import AGIArgumentError, AGICommandError, AGIHangup
from switchboard.agi.reply import (
    DigitsRead,
    Playback,
    Recognition,
    Recording,
    SpeechResult,
)

from tests.test_agi_commands import CommandTestCase


class PlaybackDetailsTests(CommandTestCase):
    def test_stream_file_result(self):
        # testsuite stream-file: "beep" plays out, result 0, endpos > 100.
        s = self.session
        self.assertEqual(
            self.ok(lambda: s.stream_file_result("beep"), b'STREAM FILE "beep" ""\n',
                    b"200 result=0 endpos=5920\n"),
            Playback("", 5920, False),
        )
        self.assertEqual(
            self.ok(lambda: s.stream_file_result("menu", "12", offset=8000),
                    b'STREAM FILE "menu" "12" 8000\n', b"200 result=50 endpos=9600\n"),
            Playback("2", 9600, False),
        )

    def test_missing_file_is_not_a_hangup(self):
        s = self.session
        self.assertEqual(
            self.ok(lambda: s.stream_file_result("no-such-file"),
                    b'STREAM FILE "no-such-file" ""\n', b"200 result=-1 endpos=0\n"),
            Playback("", 0, True),
        )
        # With an offset, Asterisk reports the offset asked for.
        self.assertEqual(
            self.ok(lambda: s.stream_file_result("no-such-file", offset=400),
                    b'STREAM FILE "no-such-file" "" 400\n', b"200 result=-1 endpos=400\n"),
            Playback("", 400, True),
        )
        # The session goes on.
        self.assertEqual(self.ok(s.channel_status, b"CHANNEL STATUS\n", b"200 result=6\n"), 6)

    def test_hangup_while_playing(self):
        self.error(lambda: self.session.stream_file_result("beep"), b'STREAM FILE "beep" ""\n',
                   b"200 result=-1 endpos=1760\n", AGIHangup)

    def test_hangup_notice_before_the_reply(self):
        s = self.session
        d = s.stream_file_result("beep")
        self.conn.written()
        self.conn.receive(b"HANGUP\n200 result=-1 endpos=0\n")
        self.failureResultOf(d, AGIHangup)

    def test_stream_file_is_unchanged(self):
        # The old helper still stops the handler on a missing file.
        self.error(lambda: self.session.stream_file("no-such-file"),
                   b'STREAM FILE "no-such-file" ""\n', b"200 result=-1 endpos=0\n", AGIHangup)

    def test_stream_file_result_refuses(self):
        self.refused(lambda: self.session.stream_file_result("beep", offset=-1))
        self.refused(lambda: self.session.stream_file_result("beep", "x"))

    def test_get_option_result(self):
        s = self.session
        self.assertEqual(
            self.ok(lambda: s.get_option_result("press-1", "1", 2000),
                    b'GET OPTION "press-1" "1" 2000\n', b"200 result=49 endpos=3200\n"),
            Playback("1", 3200, False),
        )
        self.assertEqual(
            self.ok(lambda: s.get_option_result("no-such", "1"), b'GET OPTION "no-such" "1"\n',
                    b"200 result=-1 endpos=0\n"),
            Playback("", 0, True),
        )
        self.error(lambda: s.get_option_result("press-1", "1"), b'GET OPTION "press-1" "1"\n',
                   b"200 result=-1 endpos=4000\n", AGIHangup)

    def test_control_stream_file(self):
        s = self.session
        # testsuite control-stream-file: played to the end, endpos -1.
        self.assertEqual(
            self.ok(lambda: s.control_stream_file("beep"), b'CONTROL STREAM FILE "beep" ""\n',
                    b"200 result=0 endpos=-1\n"),
            Playback("", -1, False),
        )
        self.assertEqual(
            self.ok(lambda: s.control_stream_file("news", "0", 5000, "6", "4", "5", 1500),
                    b'CONTROL STREAM FILE "news" "0" 5000 "6" "4" "5" 1500\n',
                    b"200 result=48 endpos=2660\n"),
            Playback("0", 2660, False),
        )
        # Only the offset: the arguments before it get Asterisk's defaults.
        self.ok(lambda: s.control_stream_file("news", offset_ms=-2000),
                b'CONTROL STREAM FILE "news" "" 3000 "" "" "" -2000\n',
                b"200 result=0 endpos=-1\n")
        self.ok(lambda: s.control_stream_file("news", rewind="1"),
                b'CONTROL STREAM FILE "news" "" 3000 "" "1"\n', b"200 result=0 endpos=-1\n")
        # A missing file never starts: -1 for the position; a hangup is
        # somewhere in the file.
        self.assertEqual(
            self.ok(lambda: s.control_stream_file("no-such"),
                    b'CONTROL STREAM FILE "no-such" ""\n', b"200 result=-1 endpos=-1\n"),
            Playback("", -1, True),
        )
        self.error(lambda: s.control_stream_file("news"), b'CONTROL STREAM FILE "news" ""\n',
                   b"200 result=-1 endpos=880\n", AGIHangup)
        self.refused(lambda: s.control_stream_file("news", forward="x"))
        self.refused(lambda: s.control_stream_file("news", skip_ms=2**31))

    def test_get_data_result(self):
        s = self.session
        # testsuite get-data: DTMF 3212333# with timeout 10 and 10 digits.
        self.assertEqual(
            self.ok(lambda: s.get_data_result("beep", 10, 10), b'GET DATA "beep" 10 10\n',
                    b"200 result=3212333\n"),
            DigitsRead("3212333", False),
        )
        self.assertEqual(
            self.ok(lambda: s.get_data_result("beep", 300, 2), b'GET DATA "beep" 300 2\n',
                    b"200 result= (timeout)\n"),
            DigitsRead("", True),
        )
        self.assertEqual(
            self.ok(lambda: s.get_data_result("beep"), b'GET DATA "beep"\n',
                    b"200 result=12 (timeout)\n"),
            DigitsRead("12", True),
        )
        self.error(lambda: s.get_data_result("beep"), b'GET DATA "beep"\n', b"200 result=-1\n",
                   AGIHangup)

    def test_get_data_limits(self):
        s = self.session
        self.refused(lambda: s.get_data_result("beep", 1000, 0))
        self.refused(lambda: s.get_data_result("beep", 1000, 1024))
        self.refused(lambda: s.get_data("beep", 1000, 5000))
        self.ok(lambda: s.get_data("beep", 1000, 1023), b'GET DATA "beep" 1000 1023\n',
                b"200 result=1\n")


class RecordFileTests(CommandTestCase):
    def test_ended_by_dtmf(self):
        # testsuite record-file: "#" ends it; endpos is the file's size in
        # samples (one byte each in ulaw).
        self.assertEqual(
            self.ok(lambda: self.session.record_file("/tmp/talking", "ulaw", "#", 3000),
                    b'RECORD FILE "/tmp/talking" "ulaw" "#" 3000\n',
                    b"200 result=35 (dtmf) endpos=5760\n"),
            Recording("dtmf", "#", 5760),
        )

    def test_ended_by_hangup_keeps_endpos(self):
        recording = self.ok(lambda: self.session.record_file("msg", "wav"),
                            b'RECORD FILE "msg" "wav" "" -1\n',
                            b"200 result=-1 (hangup) endpos=12000\n")
        self.assertEqual(recording, Recording("hangup", "", 12000))
        self.assertTrue(recording.hangup)
        self.assertTrue(recording.recorded)

    def test_ended_by_hangup_after_the_notice(self):
        d = self.session.record_file("msg", "wav")
        self.conn.written()
        self.conn.receive(b"HANGUP\n200 result=-1 (hangup) endpos=800\n")
        self.assertEqual(self.successResultOf(d), Recording("hangup", "", 800))

    def test_timeout(self):
        # The number before "(timeout)" is whatever Asterisk's last wait
        # left: not a digit.
        recording = self.ok(
            lambda: self.session.record_file("msg", "gsm", "#", 5000, beep=True, silence_s=3),
            b'RECORD FILE "msg" "gsm" "#" 5000 BEEP s=3\n',
            b"200 result=17 (timeout) endpos=40000\n",
        )
        self.assertEqual(recording, Recording("timeout", "", 40000))
        self.assertFalse(recording.hangup)

    def test_offset_and_silence(self):
        s = self.session
        self.ok(lambda: s.record_file("msg", "wav", "", 1000, offset=800),
                b'RECORD FILE "msg" "wav" "" 1000 800\n', b"200 result=0 (timeout) endpos=8800\n")
        self.ok(lambda: s.record_file("msg", "wav", "", 1000, offset=0, beep=True, silence_s=2),
                b'RECORD FILE "msg" "wav" "" 1000 0 BEEP s=2\n',
                b"200 result=0 (timeout) endpos=8000\n")

    def test_failures(self):
        s = self.session
        recording = self.ok(lambda: s.record_file("/nonexistent/x", "wav"),
                            b'RECORD FILE "/nonexistent/x" "wav" "" -1\n',
                            b"200 result=-1 (writefile)\n")
        self.assertEqual(recording, Recording("writefile", "", None))
        self.assertFalse(recording.recorded)
        self.assertEqual(
            self.ok(lambda: s.record_file("x", "wav", "#", beep=True),
                    b'RECORD FILE "x" "wav" "#" -1 BEEP\n',
                    b"200 result=35 (randomerror) endpos=0\n"),
            Recording("randomerror", "#", 0),
        )
        self.assertEqual(
            self.ok(lambda: s.record_file("x", "wav", silence_s=1),
                    b'RECORD FILE "x" "wav" "" -1 s=1\n', b"200 result=-1\n"),
            Recording("error", "", None),
        )

    def test_refused(self):
        s = self.session
        self.refused(lambda: s.record_file("x", "wav 1"))
        self.refused(lambda: s.record_file("x", "wav", silence_s=0))
        self.refused(lambda: s.record_file("x", "wav", offset=-5))
        self.refused(lambda: s.record_file("x\n", "wav"))


class SayTests(CommandTestCase):
    def test_say_number(self):
        s = self.session
        self.ok(lambda: s.say_number(-5), b'SAY NUMBER -5 ""\n', b"200 result=0\n")
        self.ok(lambda: s.say_number(2**31 - 1), b'SAY NUMBER 2147483647 ""\n', b"200 result=0\n")
        self.ok(lambda: s.say_number(-(2**31)), b'SAY NUMBER -2147483648 ""\n', b"200 result=0\n")
        self.ok(lambda: s.say_number(1, "#", gender="f"), b'SAY NUMBER 1 "#" "f"\n',
                b"200 result=0\n")
        self.assertEqual(
            self.ok(lambda: s.say_number("2345", "5", "n"), b'SAY NUMBER 2345 "5" "n"\n',
                    b"200 result=53\n"),
            "5",
        )
        self.refused(lambda: s.say_number(2**31))
        self.refused(lambda: s.say_number(-(2**31) - 1))
        self.refused(lambda: s.say_number(2345.67))
        self.refused(lambda: s.say_number(1, gender="f m"))
        self.refused(lambda: s.say_number(1, gender=""))

    def test_say_alpha_and_phonetic(self):
        s = self.session
        self.ok(lambda: s.say_alpha("ab1"), b'SAY ALPHA "ab1" ""\n', b"200 result=0\n")
        self.ok(lambda: s.say_alpha("aB", "#", case="u"), b'SAY ALPHA "aB" "#" u\n',
                b"200 result=0\n")
        self.refused(lambda: s.say_alpha("a", case="x"))
        self.assertEqual(
            self.ok(lambda: s.say_phonetic("Asterisk", "12"), b'SAY PHONETIC "Asterisk" "12"\n',
                    b"200 result=49\n"),
            "1",
        )
        self.error(lambda: s.say_alpha("a"), b'SAY ALPHA "a" ""\n', b"200 result=-1\n", AGIHangup)

    def test_say_date_time(self):
        s = self.session
        # testsuite say-datetime: 1210498014.
        self.ok(lambda: s.say_datetime(1210498014), b'SAY DATETIME 1210498014 ""\n',
                b"200 result=0\n")
        when = datetime.datetime(2026, 10, 8, 10, 0, tzinfo=datetime.timezone.utc)
        self.ok(lambda: s.say_date(when), b'SAY DATE 1791453600 ""\n', b"200 result=0\n")
        self.ok(lambda: s.say_time(0, "#"), b'SAY TIME 0 "#"\n', b"200 result=0\n")
        self.ok(lambda: s.say_datetime(0, "", "IMp", "Asia/Shanghai"),
                b'SAY DATETIME 0 "" "IMp" "Asia/Shanghai"\n', b"200 result=0\n")
        self.refused(lambda: s.say_date(2**31))  # past 2038: a C int in SAY DATE
        self.refused(lambda: s.say_date(datetime.datetime(2026, 1, 1)))  # no zone
        self.refused(lambda: s.say_datetime(0, timezone="Asia/Shanghai"))
        self.refused(lambda: s.say_datetime(0, "", "IMp", "Asia Shanghai"))


class ChannelAndDialplanTests(CommandTestCase):
    def test_channel_status_of_a_named_channel(self):
        s = self.session
        # testsuite channel-status: the channel by its own name.
        self.assertEqual(
            self.ok(lambda: s.channel_status("PJSIP/87650001-00000001"),
                    b'CHANNEL STATUS "PJSIP/87650001-00000001"\n', b"200 result=6\n"),
            6,
        )
        self.assertIsNone(
            self.ok(lambda: s.channel_status("PJSIP/nobody"), b'CHANNEL STATUS "PJSIP/nobody"\n',
                    b"200 result=-1\n")
        )
        self.refused(lambda: s.channel_status("two words"))

    def test_hangup_channel(self):
        s = self.session
        self.assertIs(
            self.ok(lambda: s.hangup_channel("Local/x@y-0001;1"), b'HANGUP "Local/x@y-0001;1"\n',
                    b"200 result=1\n"),
            True,
        )
        self.assertIs(
            self.ok(lambda: s.hangup_channel("PJSIP/gone"), b'HANGUP "PJSIP/gone"\n',
                    b"200 result=-1\n"),
            False,
        )

    def test_hangup_then_dead_channel(self):
        # testsuite hangup: after HANGUP, CHANNEL STATUS is refused (511).
        s = self.session
        self.ok(s.hangup, b"HANGUP\n", b"200 result=1\n")
        self.error(lambda: s.channel_status(), b"CHANNEL STATUS\n",
                   b"511 Command Not Permitted on a dead channel or intercept routine\n",
                   AGIHangup)

    def test_get_full_variable_of_a_named_channel(self):
        s = self.session
        self.assertEqual(
            self.ok(lambda: s.get_full_variable("${CALLERID(num)}", "PJSIP/2-0002"),
                    b'GET FULL VARIABLE "${CALLERID(num)}" "PJSIP/2-0002"\n',
                    b"200 result=1 (87650002)\n"),
            "87650002",
        )
        self.assertIsNone(
            self.ok(lambda: s.get_full_variable("${X}", "PJSIP/gone"),
                    b'GET FULL VARIABLE "${X}" "PJSIP/gone"\n', b"200 result=0\n")
        )

    def test_set_context_extension_priority(self):
        s = self.session
        self.ok(lambda: s.set_context("switchboard-hotline"), b'SET CONTEXT "switchboard-hotline"\n',
                b"200 result=0\n")
        self.ok(lambda: s.set_extension("#9"), b'SET EXTENSION "#9"\n', b"200 result=0\n")
        self.ok(lambda: s.set_priority(3), b"SET PRIORITY 3\n", b"200 result=0\n")
        self.ok(lambda: s.set_priority("fallback"), b'SET PRIORITY "fallback"\n',
                b"200 result=0\n")
        self.error(lambda: s.set_priority("nolabel"), b'SET PRIORITY "nolabel"\n',
                   b"520-Invalid command syntax.  Proper usage follows:\n"
                   b" Usage: SET PRIORITY <priority>\n520 End of proper usage.\n",
                   AGICommandError)
        for call in [lambda: s.set_context(""), lambda: s.set_context("c" * 80),
                     lambda: s.set_context("a b"), lambda: s.set_extension("1,2"),
                     lambda: s.set_priority(0), lambda: s.set_priority("two words")]:
            self.refused(call)
        self.ok(lambda: s.set_context("c" * 79), b'SET CONTEXT "' + b"c" * 79 + b'"\n',
                b"200 result=0\n")

    def test_set_autohangup(self):
        s = self.session
        self.ok(lambda: s.set_autohangup(30), b"SET AUTOHANGUP 30\n", b"200 result=0\n")
        self.ok(lambda: s.set_autohangup(0.5), b"SET AUTOHANGUP 0.500000\n", b"200 result=0\n")
        self.ok(lambda: s.set_autohangup(0), b"SET AUTOHANGUP 0\n", b"200 result=0\n")
        for bad in (-1, "30", True, float("nan"), float("inf")):
            self.refused(lambda: s.set_autohangup(bad))

    def test_set_callerid(self):
        s = self.session
        self.ok(lambda: s.set_callerid("87650001", "Building 3"),
                b'SET CALLERID "\\"Building 3\\" <87650001>"\n', b"200 result=1\n")
        self.ok(lambda: s.set_callerid("87650001"), b'SET CALLERID "<87650001>"\n',
                b"200 result=1\n")
        self.refused(lambda: s.set_callerid("1<2"))
        self.refused(lambda: s.set_callerid("1", 'say "x"'))

    def test_set_music_tdd_text_image(self):
        s = self.session
        self.ok(lambda: s.set_music(True), b"SET MUSIC on\n", b"200 result=0\n")
        self.ok(lambda: s.set_music(True, "default"), b'SET MUSIC on "default"\n',
                b"200 result=0\n")
        self.ok(lambda: s.set_music(False), b"SET MUSIC off\n", b"200 result=0\n")
        self.refused(lambda: s.set_music("on"))
        self.refused(lambda: s.set_music(False, "default"))
        self.assertIs(self.ok(lambda: s.tdd_mode("on"), b"TDD MODE on\n", b"200 result=0\n"),
                      False)
        self.assertIs(self.ok(lambda: s.tdd_mode("mate"), b"TDD MODE mate\n",
                              b"200 result=1\n"), True)
        self.refused(lambda: s.tdd_mode("yes"))
        self.ok(lambda: s.send_text("hello 你好"), 'SEND TEXT "hello 你好"\n'.encode(),
                b"200 result=0\n")
        self.error(lambda: s.send_text("x"), b'SEND TEXT "x"\n', b"200 result=-1\n", AGIHangup)
        self.ok(lambda: s.send_image("logo"), b'SEND IMAGE "logo"\n', b"200 result=0\n")

    def test_receive_char_and_text(self):
        s = self.session
        self.assertEqual(self.ok(lambda: s.receive_char(1000), b"RECEIVE CHAR 1000\n",
                                 b"200 result=65\n"), "A")
        self.assertEqual(self.ok(lambda: s.receive_char(1000), b"RECEIVE CHAR 1000\n",
                                 b"200 result=0 (timeout)\n"), "")
        self.error(lambda: s.receive_char(0), b"RECEIVE CHAR 0\n", b"200 result=-1 (hangup)\n",
                   AGIHangup)
        self.assertEqual(self.ok(lambda: s.receive_text(2000), b"RECEIVE TEXT 2000\n",
                                 b"200 result=1 (hello there)\n"), "hello there")
        self.assertIsNone(self.ok(lambda: s.receive_text(2000), b"RECEIVE TEXT 2000\n",
                                  b"200 result=-1\n"))
        self.refused(lambda: s.receive_text(-1))

    def test_noop_and_asyncagi_break(self):
        s = self.session
        self.assertIsNone(self.ok(s.noop, b"NOOP\n", b"200 result=0\n"))
        self.assertIsNone(self.ok(s.asyncagi_break, b"ASYNCAGI BREAK\n", b"200 result=0\n"))

    def test_database_deltree(self):
        s = self.session
        # Asterisk 22 writes 0 when it deleted keys, 1 when there were none.
        self.assertIs(
            self.ok(lambda: s.database_deltree("swb_probe"), b'DATABASE DELTREE "swb_probe"\n',
                    b"200 result=0\n"),
            True,
        )
        self.assertIs(
            self.ok(lambda: s.database_deltree("swb_probe", "a/b"),
                    b'DATABASE DELTREE "swb_probe" "a/b"\n', b"200 result=1\n"),
            False,
        )

    def test_database_scenario(self):
        # testsuite database: put, get, put again, get, del, get (gone).
        s = self.session
        self.ok(lambda: s.database_put("secret", "key", "juststarted"),
                b'DATABASE PUT "secret" "key" "juststarted"\n', b"200 result=1\n")
        self.assertEqual(self.ok(lambda: s.database_get("secret", "key"),
                                 b'DATABASE GET "secret" "key"\n',
                                 b"200 result=1 (juststarted)\n"), "juststarted")
        self.ok(lambda: s.database_put("secret", "key", "halfwaydone"),
                b'DATABASE PUT "secret" "key" "halfwaydone"\n', b"200 result=1\n")
        self.assertIs(self.ok(lambda: s.database_del("secret", "key"),
                              b'DATABASE DEL "secret" "key"\n', b"200 result=1\n"), True)
        self.assertIsNone(self.ok(lambda: s.database_get("secret", "key"),
                                  b'DATABASE GET "secret" "key"\n', b"200 result=0\n"))


class GosubTests(CommandTestCase):
    def test_returns_after_the_provisional_line(self):
        s = self.session
        d = s.gosub("switchboard-lab-test", "sub", 1, "a b", 2)
        self.assertEqual(self.conn.written(),
                         b'GOSUB "switchboard-lab-test" "sub" 1 "a b,2"\n')
        self.conn.receive(b"100 result=0 Trying...\n")
        self.assertNoResult(d)
        self.conn.receive(b"200 result=0 Gosub complete\n")
        self.assertIs(self.successResultOf(d), True)
        # The session goes on: the next reply is the next command's.
        self.ok(s.noop, b"NOOP\n", b"200 result=0\n")

    def test_abnormal_exit(self):
        d = self.session.gosub("ctx", "s", "start")
        self.assertEqual(self.conn.written(), b'GOSUB "ctx" "s" "start"\n')
        self.conn.receive(b"100 result=0 Trying...\n200 result=0 Gosub complete (abnormal exit)\n")
        self.assertIs(self.successResultOf(d), False)

    def test_label_not_found_is_not_a_hangup(self):
        error = self.error(lambda: self.session.gosub("ctx", "nosuch", 1),
                           b'GOSUB "ctx" "nosuch" 1\n', b"200 result=-1 Gosub label not found\n",
                           AGICommandError)
        self.assertIn("Gosub label not found", str(error))
        self.error(lambda: self.session.gosub("ctx", "s", 1), b'GOSUB "ctx" "s" 1\n',
                   b"503 result=-2 Memory allocation failure\n", AGICommandError)
        self.refused(lambda: self.session.gosub("ctx", "s", 0))
        self.refused(lambda: self.session.gosub("a,b", "s", 1))

    def test_no_idle_limit_while_the_subroutine_runs(self):
        d = self.session.gosub("ctx", "s", 1)
        self.conn.written()
        self.conn.clock.advance(3600)
        self.assertNoResult(d)
        self.conn.receive(b"100 result=0 Trying...\n200 result=0 Gosub complete\n")
        self.assertIs(self.successResultOf(d), True)


class SpeechTests(CommandTestCase):
    def test_management(self):
        s = self.session
        self.ok(lambda: s.speech_create("unimrcp"), b'SPEECH CREATE "unimrcp"\n',
                b"200 result=1\n")
        error = self.error(lambda: s.speech_create("none"), b'SPEECH CREATE "none"\n',
                           b"200 result=0\n", AGICommandError)
        self.assertIn("SPEECH CREATE", str(error))
        self.ok(lambda: s.speech_set("timeout", "5"), b'SPEECH SET "timeout" "5"\n',
                b"200 result=1\n")
        self.ok(lambda: s.speech_load_grammar("digits", "/g/digits.gram"),
                b'SPEECH LOAD GRAMMAR "digits" "/g/digits.gram"\n', b"200 result=1\n")
        self.ok(lambda: s.speech_activate_grammar("digits"),
                b'SPEECH ACTIVATE GRAMMAR "digits"\n', b"200 result=1\n")
        self.ok(lambda: s.speech_deactivate_grammar("digits"),
                b'SPEECH DEACTIVATE GRAMMAR "digits"\n', b"200 result=1\n")
        self.error(lambda: s.speech_unload_grammar("digits"),
                   b'SPEECH UNLOAD GRAMMAR "digits"\n', b"200 result=0\n", AGICommandError)
        self.ok(s.speech_destroy, b"SPEECH DESTROY\n", b"200 result=1\n")

    def test_recognize(self):
        s = self.session
        self.assertEqual(
            self.ok(lambda: s.speech_recognize("prompt", 5), b'SPEECH RECOGNIZE "prompt" 5\n',
                    b'200 result=1 (speech) endpos=1600 results=2 score0=900 '
                    b'text0="three two" grammar0=digits score1=400 text1="tree" grammar1=words\n'),
            Recognition("speech", "", 1600, (SpeechResult(900, "three two", "digits"),
                                             SpeechResult(400, "tree", "words"))),
        )
        self.assertEqual(
            self.ok(lambda: s.speech_recognize("prompt", 5, 800),
                    b'SPEECH RECOGNIZE "prompt" 5 800\n',
                    b"200 result=1 (digit) digit=7 endpos=2400\n"),
            Recognition("digit", "7", 2400),
        )
        self.assertEqual(
            self.ok(lambda: s.speech_recognize("prompt", 5), b'SPEECH RECOGNIZE "prompt" 5\n',
                    b"200 result=1 (timeout) endpos=0\n"),
            Recognition("timeout", "", 0),
        )
        self.assertEqual(
            self.ok(lambda: s.speech_recognize("prompt", 5), b'SPEECH RECOGNIZE "prompt" 5\n',
                    b"200 result=0\n"),
            Recognition("failed", "", None),
        )
        self.error(lambda: s.speech_recognize("prompt", 5), b'SPEECH RECOGNIZE "prompt" 5\n',
                   b"200 result=1 (hangup) endpos=400\n", AGIHangup)


class CommandListTests(CommandTestCase):
    """Every command res_agi.c and app_stack.c register has its helper."""

    ASTERISK_22 = {
        "ANSWER": "answer", "ASYNCAGI BREAK": "asyncagi_break",
        "CHANNEL STATUS": "channel_status", "DATABASE DEL": "database_del",
        "DATABASE DELTREE": "database_deltree", "DATABASE GET": "database_get",
        "DATABASE PUT": "database_put", "EXEC": "exec_", "GET DATA": "get_data",
        "GET FULL VARIABLE": "get_full_variable", "GET OPTION": "get_option",
        "GET VARIABLE": "get_variable", "HANGUP": "hangup", "NOOP": "noop",
        "RECEIVE CHAR": "receive_char", "RECEIVE TEXT": "receive_text",
        "RECORD FILE": "record_file", "SAY ALPHA": "say_alpha", "SAY DIGITS": "say_digits",
        "SAY NUMBER": "say_number", "SAY PHONETIC": "say_phonetic", "SAY DATE": "say_date",
        "SAY TIME": "say_time", "SAY DATETIME": "say_datetime", "SEND IMAGE": "send_image",
        "SEND TEXT": "send_text", "SET AUTOHANGUP": "set_autohangup",
        "SET CALLERID": "set_callerid", "SET CONTEXT": "set_context",
        "SET EXTENSION": "set_extension", "SET MUSIC": "set_music",
        "SET PRIORITY": "set_priority", "SET VARIABLE": "set_variable",
        "STREAM FILE": "stream_file", "CONTROL STREAM FILE": "control_stream_file",
        "TDD MODE": "tdd_mode", "VERBOSE": "verbose", "WAIT FOR DIGIT": "wait_for_digit",
        "SPEECH CREATE": "speech_create", "SPEECH SET": "speech_set",
        "SPEECH DESTROY": "speech_destroy", "SPEECH LOAD GRAMMAR": "speech_load_grammar",
        "SPEECH UNLOAD GRAMMAR": "speech_unload_grammar",
        "SPEECH ACTIVATE GRAMMAR": "speech_activate_grammar",
        "SPEECH DEACTIVATE GRAMMAR": "speech_deactivate_grammar",
        "SPEECH RECOGNIZE": "speech_recognize", "GOSUB": "gosub",
    }

    def test_every_command_has_a_helper(self):
        self.assertEqual(len(self.ASTERISK_22), 47)
        for command, method in self.ASTERISK_22.items():
            helper = getattr(self.session, method, None)
            self.assertTrue(callable(helper), command)
            self.assertIn(command, helper.__doc__, method)

    def test_bad_arguments_write_nothing(self):
        s = self.session
        for call in [
            lambda: s.record_file("a\nb", "wav"), lambda: s.say_alpha("a\r"),
            lambda: s.say_phonetic("\x00"), lambda: s.set_context("a\nb"),
            lambda: s.send_text("x\ny"), lambda: s.speech_set("a", "b\n"),
            lambda: s.gosub("c", "e", 1, "x\ny"), lambda: s.hangup_channel("a\nb"),
            lambda: s.control_stream_file("a\r\n"), lambda: s.database_deltree("f\n"),
        ]:
            self.failureResultOf(call(), AGIArgumentError)
        self.assertEqual(self.conn.written(), b"")
