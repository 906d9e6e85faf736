"""The typed AGI commands: exact bytes on the wire, and what their replies mean."""

import pytest
from twisted.trial.unittest import SynchronousTestCase

from switchboard.agi import (
    MAX_COMMAND_BYTES,
    AGIArgumentError,
    AGICommandError,
    AGIHangup,
    AGIReply,
    quote,
)
from switchboard.agi.commands import encode_command

from tests.test_agi_support import Connection, Handler, environment


@pytest.mark.parametrize(
    "value, quoted",
    [
        ("hello", '"hello"'),
        ("", '""'),
        ("two words", '"two words"'),
        ('say "hi"', r'"say \"hi\""'),
        ("back\\slash", r'"back\\slash"'),
        ('\\"', r'"\\\""'),
        ("tab\there", '"tab\there"'),
        ("中文", '"中文"'),
        (42, '"42"'),
    ],
)
def test_quote(value, quoted):
    assert quote(value) == quoted


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "a\r\nANSWER", "nul\x00", "\n"])
def test_quote_refuses_line_breaks(value):
    with pytest.raises(AGIArgumentError):
        quote(value)


@pytest.mark.parametrize("value", [None, b"bytes", True, ["x"]])
def test_quote_refuses_other_types(value):
    with pytest.raises(AGIArgumentError):
        quote(value)


def test_encode_command_limits():
    assert encode_command('VERBOSE "中" 1') == 'VERBOSE "中" 1'.encode("utf-8")
    fits = "X" * (MAX_COMMAND_BYTES - 1)
    assert encode_command(fits) == fits.encode()
    with pytest.raises(AGIArgumentError):
        encode_command("X" * MAX_COMMAND_BYTES)
    with pytest.raises(AGIArgumentError):
        encode_command("ANSWER\nHANGUP")


class CommandTestCase(SynchronousTestCase):
    """A session connected to an in-memory Asterisk."""

    def setUp(self):
        self.handler = Handler()
        self.conn = Connection({"hotline": self.handler})
        self.conn.receive(environment())
        self.session = self.handler.session
        self.assertEqual(self.conn.written(), b"")

    def run_command(self, call, wire, reply):
        """Issue C{call()}, check it wrote C{wire}, answer C{reply}."""
        d = call()
        self.assertEqual(self.conn.written(), wire)
        self.assertNoResult(d)
        self.conn.receive(reply)
        return d

    def ok(self, call, wire, reply):
        return self.successResultOf(self.run_command(call, wire, reply))

    def error(self, call, wire, reply, *errors):
        return self.failureResultOf(self.run_command(call, wire, reply), *errors).value

    def refused(self, call, *errors):
        """C{call()} fails at once and writes nothing."""
        failure = self.failureResultOf(call(), *(errors or (AGIArgumentError,)))
        self.assertEqual(self.conn.written(), b"")
        return failure.value


class TypedCommandTests(CommandTestCase):
    def test_answer(self):
        s = self.session
        self.assertIsNone(self.ok(s.answer, b"ANSWER\n", b"200 result=0\n"))
        self.error(s.answer, b"ANSWER\n", b"200 result=-1\n", AGIHangup)

    def test_hangup(self):
        self.assertIsNone(self.ok(self.session.hangup, b"HANGUP\n", b"200 result=1\n"))

    def test_stream_file(self):
        s = self.session
        self.assertEqual(
            self.ok(lambda: s.stream_file("hotline/welcome", "12#"),
                    b'STREAM FILE "hotline/welcome" "12#"\n', b"200 result=50 endpos=8000\n"),
            "2",
        )
        self.assertEqual(
            self.ok(lambda: s.stream_file("beep"), b'STREAM FILE "beep" ""\n',
                    b"200 result=0 endpos=1600\n"),
            "",
        )
        self.assertEqual(
            self.ok(lambda: s.stream_file("beep", "#"), b'STREAM FILE "beep" "#"\n',
                    b"200 result=35 endpos=100\n"),
            "#",
        )
        # A missing file and a hangup both read "result=-1": the caller is
        # out of reach either way.
        self.error(lambda: s.stream_file("missing"), b'STREAM FILE "missing" ""\n',
                   b"200 result=-1 endpos=0\n", AGIHangup)

    def test_stream_file_refuses_bad_digits(self):
        self.refused(lambda: self.session.stream_file("beep", '1" "2'))
        self.refused(lambda: self.session.stream_file("a\nANSWER"))

    def test_get_data(self):
        s = self.session
        self.assertEqual(
            self.ok(lambda: s.get_data("enter-number", 3000, 4),
                    b'GET DATA "enter-number" 3000 4\n', b"200 result=1234\n"),
            "1234",
        )
        self.assertEqual(
            self.ok(lambda: s.get_data("enter-number"), b'GET DATA "enter-number"\n',
                    b"200 result= (timeout)\n"),
            "",
        )
        self.assertEqual(
            self.ok(lambda: s.get_data("enter-number", max_digits=2),
                    b'GET DATA "enter-number" 0 2\n', b"200 result=12\n"),
            "12",
        )
        self.assertEqual(
            self.ok(lambda: s.get_data("enter-number", 2000),
                    b'GET DATA "enter-number" 2000\n', b"200 result=12 (timeout)\n"),
            "12",
        )
        self.error(lambda: s.get_data("enter-number", 2000), b'GET DATA "enter-number" 2000\n',
                   b"200 result=-1\n", AGIHangup)

    def test_get_option(self):
        s = self.session
        self.assertEqual(
            self.ok(lambda: s.get_option("press-1", "1", 5000),
                    b'GET OPTION "press-1" "1" 5000\n', b"200 result=49 endpos=3200\n"),
            "1",
        )
        self.assertEqual(
            self.ok(lambda: s.get_option("press-1", "12"), b'GET OPTION "press-1" "12"\n',
                    b"200 result=0 endpos=3200\n"),
            "",
        )
        self.error(lambda: s.get_option("press-1", "1"), b'GET OPTION "press-1" "1"\n',
                   b"200 result=-1 endpos=0\n", AGIHangup)

    def test_wait_for_digit(self):
        s = self.session
        self.assertEqual(
            self.ok(lambda: s.wait_for_digit(5000), b"WAIT FOR DIGIT 5000\n", b"200 result=57\n"),
            "9",
        )
        self.assertEqual(
            self.ok(lambda: s.wait_for_digit(-1), b"WAIT FOR DIGIT -1\n", b"200 result=0\n"), ""
        )
        self.error(lambda: s.wait_for_digit(10), b"WAIT FOR DIGIT 10\n", b"200 result=-1\n",
                   AGIHangup)
        self.refused(lambda: s.wait_for_digit("5 ANSWER"))

    def test_say_digits_and_number(self):
        s = self.session
        self.assertEqual(
            self.ok(lambda: s.say_digits("87650001"), b'SAY DIGITS "87650001" ""\n',
                    b"200 result=0\n"),
            "",
        )
        self.assertEqual(
            self.ok(lambda: s.say_digits("123", "*"), b'SAY DIGITS "123" "*"\n',
                    b"200 result=42\n"),
            "*",
        )
        self.assertEqual(
            self.ok(lambda: s.say_number(42, "1"), b'SAY NUMBER 42 "1"\n', b"200 result=0\n"), ""
        )
        self.assertEqual(
            self.ok(lambda: s.say_number("-7"), b'SAY NUMBER -7 ""\n', b"200 result=0\n"), ""
        )
        self.error(lambda: s.say_number(1), b'SAY NUMBER 1 ""\n', b"200 result=-1\n", AGIHangup)
        self.refused(lambda: s.say_number("1 2"))

    def test_set_and_get_variable(self):
        s = self.session
        self.assertIsNone(
            self.ok(lambda: s.set_variable("SWITCHBOARD_RESULT", "OK"),
                    b'SET VARIABLE "SWITCHBOARD_RESULT" "OK"\n', b"200 result=1\n")
        )
        self.assertEqual(
            self.ok(lambda: s.get_variable("CALLERID(name)"), b'GET VARIABLE "CALLERID(name)"\n',
                    b"200 result=1 (Li (home) Lei)\n"),
            "Li (home) Lei",
        )
        self.assertIsNone(
            self.ok(lambda: s.get_variable("UNSET"), b'GET VARIABLE "UNSET"\n', b"200 result=0\n")
        )
        self.assertEqual(
            self.ok(lambda: s.get_variable("EMPTY"), b'GET VARIABLE "EMPTY"\n',
                    b"200 result=1 ()\n"),
            "",
        )

    def test_set_variable_quotes_value(self):
        value = 'say "hi" \\ bye 中文'
        self.ok(lambda: self.session.set_variable("NOTE", value),
                'SET VARIABLE "NOTE" "say \\"hi\\" \\\\ bye 中文"\n'.encode("utf-8"),
                b"200 result=1\n")

    def test_get_full_variable(self):
        s = self.session
        self.assertEqual(
            self.ok(lambda: s.get_full_variable("${CALLERID(num)}@${CHANNEL}"),
                    b'GET FULL VARIABLE "${CALLERID(num)}@${CHANNEL}"\n',
                    b"200 result=1 (87650001@PJSIP/87650001-00000001)\n"),
            "87650001@PJSIP/87650001-00000001",
        )
        self.assertIsNone(
            self.ok(lambda: s.get_full_variable("${X}"), b'GET FULL VARIABLE "${X}"\n',
                    b"200 result=0\n")
        )

    def test_channel_status(self):
        self.assertEqual(
            self.ok(self.session.channel_status, b"CHANNEL STATUS\n", b"200 result=6\n"), 6
        )

    def test_database(self):
        s = self.session
        self.assertIsNone(
            self.ok(lambda: s.database_put("swb_alarm", "87650001", "PJSIP/1&PJSIP/2"),
                    b'DATABASE PUT "swb_alarm" "87650001" "PJSIP/1&PJSIP/2"\n',
                    b"200 result=1\n")
        )
        error = self.error(lambda: s.database_put("f", "k", "v"), b'DATABASE PUT "f" "k" "v"\n',
                           b"200 result=0\n", AGICommandError)
        self.assertEqual(error.code, 200)
        self.assertEqual(
            self.ok(lambda: s.database_get("swb_alarm", "duty"),
                    b'DATABASE GET "swb_alarm" "duty"\n', b"200 result=1 (PJSIP/87650190)\n"),
            "PJSIP/87650190",
        )
        self.assertIsNone(
            self.ok(lambda: s.database_get("swb_alarm", "nobody"),
                    b'DATABASE GET "swb_alarm" "nobody"\n', b"200 result=0\n")
        )
        self.assertIs(
            self.ok(lambda: s.database_del("swb_alarm", "duty"),
                    b'DATABASE DEL "swb_alarm" "duty"\n', b"200 result=1\n"),
            True,
        )
        self.assertIs(
            self.ok(lambda: s.database_del("swb_alarm", "duty"),
                    b'DATABASE DEL "swb_alarm" "duty"\n', b"200 result=0\n"),
            False,
        )

    def test_exec(self):
        s = self.session
        self.assertEqual(
            self.ok(lambda: s.exec_("Dial", "PJSIP/1&PJSIP/2", 30, "tT"),
                    b'EXEC Dial "PJSIP/1&PJSIP/2,30,tT"\n', b"200 result=0\n"),
            0,
        )
        self.assertEqual(
            self.ok(lambda: s.exec_("Answer"), b'EXEC Answer ""\n', b"200 result=0\n"), 0
        )
        self.assertEqual(
            self.ok(lambda: s.exec_("ConfBridge", "alarm-1"), b'EXEC ConfBridge "alarm-1"\n',
                    b"200 result=1\n"),
            1,
        )
        error = self.error(lambda: s.exec_("NoSuchApp", "x"), b'EXEC NoSuchApp "x"\n',
                           b"200 result=-2\n", AGICommandError)
        self.assertIn("NoSuchApp", str(error))
        self.error(lambda: s.exec_("Dial", "PJSIP/1"), b'EXEC Dial "PJSIP/1"\n',
                   b"200 result=-1\n", AGIHangup)

    def test_exec_quotes_and_refuses(self):
        s = self.session
        self.ok(lambda: s.exec_("Set", 'NOTE=a "b" \\c'),
                b'EXEC Set "NOTE=a \\"b\\" \\\\c"\n', b"200 result=0\n")
        self.refused(lambda: s.exec_("Dial", "PJSIP/1\nHANGUP"))
        self.refused(lambda: s.exec_("Dial PJSIP/1", "x"))
        self.refused(lambda: s.exec_('Dial"', "x"))

    def test_verbose(self):
        self.ok(lambda: self.session.verbose("alarm from 87650001", 2),
                b'VERBOSE "alarm from 87650001" 2\n', b"200 result=1\n")
        self.ok(lambda: self.session.verbose("hi"), b'VERBOSE "hi" 1\n', b"200 result=1\n")

    def test_send_command(self):
        reply = self.ok(lambda: self.session.send_command('SAY ALPHA "abc" ""'),
                        b'SAY ALPHA "abc" ""\n', b"200 result=0\n")
        self.assertEqual(reply, AGIReply(200, "0", None, None, "200 result=0"))
        # A raw command's result=-1 is handed back as it is (no HANGUP seen).
        reply = self.ok(lambda: self.session.send_command("CHANNEL STATUS nosuch"),
                        b"CHANNEL STATUS nosuch\n", b"200 result=-1\n")
        self.assertEqual(reply.result, "-1")

    def test_cr_lf_in_any_argument_writes_nothing(self):
        s = self.session
        for call in [
            lambda: s.send_command("ANSWER\nHANGUP"),
            lambda: s.send_command("ANSWER\r"),
            lambda: s.stream_file("welcome\r\nEXEC System rm"),
            lambda: s.get_data("x\n"),
            lambda: s.get_option("x\r", "1"),
            lambda: s.say_digits("1\n2"),
            lambda: s.set_variable("A\nB", "v"),
            lambda: s.set_variable("A", "v\nEXEC System reboot"),
            lambda: s.get_variable("A\r"),
            lambda: s.get_full_variable("${A}\n"),
            lambda: s.database_put("f", "k", "v\n"),
            lambda: s.database_get("f\n", "k"),
            lambda: s.database_del("f", "k\r"),
            lambda: s.exec_("Dial", "a", "b\nc"),
            lambda: s.verbose("line\nbreak"),
            lambda: s.verbose("nul\x00"),
        ]:
            self.refused(call)
        # The session still works afterwards.
        self.ok(s.answer, b"ANSWER\n", b"200 result=0\n")

    def test_too_long_command_writes_nothing(self):
        self.refused(lambda: self.session.set_variable("X", "y" * 3000))
        self.refused(lambda: self.session.verbose("中" * 700))  # 2100 bytes in UTF-8

    def test_utf8_on_the_wire(self):
        self.assertEqual(
            self.ok(lambda: self.session.get_variable("CALLERID(name)"),
                    b'GET VARIABLE "CALLERID(name)"\n',
                    "200 result=1 (王小明)\n".encode("utf-8")),
            "王小明",
        )
        # Undecodable bytes from the peer are replaced, not fatal.
        self.assertEqual(
            self.ok(lambda: self.session.get_variable("X"), b'GET VARIABLE "X"\n',
                    b"200 result=1 (\xff\xfe)\n"),
            "\ufffd\ufffd",
        )


class ErrorReplyTests(CommandTestCase):
    def test_510(self):
        error = self.error(lambda: self.session.send_command("FOO BAR"), b"FOO BAR\n",
                           b"510 Invalid or unknown command\n", AGICommandError)
        self.assertEqual((error.code, error.message), (510, "Invalid or unknown command"))

    def test_511_is_hangup(self):
        self.error(lambda: self.session.stream_file("x"), b'STREAM FILE "x" ""\n',
                   b"511 Command Not Permitted on a dead channel or intercept routine\n",
                   AGIHangup)

    def test_520_usage(self):
        error = self.error(
            lambda: self.session.send_command("WAIT FOR DIGIT"),
            b"WAIT FOR DIGIT\n",
            b"520-Invalid command syntax.  Proper usage follows:\n"
            b" Usage: WAIT FOR DIGIT <timeout>\n"
            b"\tWaits up to 'timeout' milliseconds.\n"
            b"520 End of proper usage.\n",
            AGICommandError,
        )
        self.assertEqual(error.code, 520)
        self.assertEqual(
            error.message,
            " Usage: WAIT FOR DIGIT <timeout>\n\tWaits up to 'timeout' milliseconds.",
        )

    def test_520_arriving_in_pieces(self):
        d = self.session.send_command("GET DATA")
        self.conn.written()
        for piece in [b"520-Invalid command syntax.  Proper", b" usage follows:\n Usage: GET",
                      b" DATA <file>\n520 End of", b" proper usage.\n"]:
            self.assertNoResult(d)
            self.conn.receive(piece)
        error = self.failureResultOf(d, AGICommandError).value
        self.assertEqual(error.message, " Usage: GET DATA <file>")

    def test_crlf_line_endings_are_accepted(self):
        self.assertEqual(
            self.ok(lambda: self.session.get_variable("X"), b'GET VARIABLE "X"\n',
                    b"200 result=1 (v)\r\n"),
            "v",
        )


@pytest.mark.parametrize("name", ["Dial\n", "Dial\r", "Dial\x00", "Dial Now", ""])
def test_application_name_must_match_whole(name):
    """'$' accepts a final newline: the whole name is matched ("Dial\\n" was accepted)."""
    from switchboard.agi.commands import application
    with pytest.raises(AGIArgumentError):
        application(name)
    assert application("ConfBridge") == "ConfBridge"


@pytest.mark.parametrize("digits", ["1\n", "#\n", "12x"])
def test_dtmf_must_match_whole(digits):
    from switchboard.agi.commands import dtmf
    with pytest.raises(AGIArgumentError, match="not DTMF digits"):
        dtmf(digits)
    assert dtmf("1*#") == '"1*#"'
