"""
AGI command lines and the typed commands of a session.

Asterisk splits a command line into words at blanks; a word in double quotes
may hold blanks, and a backslash makes the next character literal (so C{\\"}
is a quote inside a quoted word and C{\\\\} a backslash). Every string
argument is sent quoted that way. A CR, LF or NUL in an argument would end
(or cut short) the command line and let the rest be read as another command,
so such an argument is refused with L{AGIArgumentError} before anything is
written; so is a line too long for Asterisk's command buffer, which would
otherwise be split into two commands.
"""

from __future__ import annotations

import datetime
import functools
import re

from twisted.internet import defer

from switchboard.agi.errors import AGIArgumentError, AGICommandError, AGIHangup
from switchboard.agi.reply import (
    RECORD_BEEP,
    RECORD_DTMF,
    RECORD_ERROR,
    DigitsRead,
    Playback,
    Recognition,
    Recording,
    SpeechResult,
)

#: Asterisk reads a command into a 2048-byte buffer (with its terminating
#: NUL): a longer line is cut and the remainder run as a second command.
MAX_COMMAND_BYTES = 2047  # including the final "\n"

#: Asterisk reads numbers with C{sscanf("%d")} into a C int: outside
#: this range the value it uses is not the one sent.
INT_MIN, INT_MAX = -(2**31), 2**31 - 1

#: C{GET DATA} reads the digits into a 1024-byte buffer (with its NUL).
MAX_GET_DATA_DIGITS = 1023

#: Context and extension names are kept in 80-byte fields (with the NUL);
#: Asterisk cuts a longer name, and the channel would go somewhere else.
MAX_DIALPLAN_NAME = 79

_UNSAFE = re.compile(r"[\r\n\x00]")
# Matched with fullmatch: "$" would also accept a final newline ("Dial\n").
_APPLICATION = re.compile(r"[A-Za-z0-9_]+")
_DTMF = re.compile(r"[0-9*#A-Da-d]*")


def quote(value) -> str:
    """
    One argument in double quotes, backslash-escaping C{\\} and C{"}.

    @param value: a L{str} (or an L{int}/L{float}, written in decimal).
    @raise AGIArgumentError: C{value} contains CR, LF or NUL, or is of
        another type.
    """
    if value.__class__ is str:
        text = value  # the usual argument
    elif isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise AGIArgumentError(f"AGI argument must be text or a number, not {value!r}")
    else:
        text = str(value)
    if not text.isprintable() and _UNSAFE.search(text):  # CR, LF and NUL are not printable
        raise AGIArgumentError(f"AGI argument contains CR, LF or NUL: {text!r}")
    if "\\" in text or '"' in text:
        text = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + text + '"'


def integer(value) -> str:
    """
    An integer argument, written bare.

    @raise AGIArgumentError: C{value} is not an integer (or a string of one).
    """
    if isinstance(value, bool):
        raise AGIArgumentError(f"AGI argument must be an integer, not {value!r}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value):
        return str(int(value))
    raise AGIArgumentError(f"AGI argument must be an integer, not {value!r}")


def dtmf(digits) -> str:
    """
    A quoted set of DTMF digits (C{0-9 * # A-D}), e.g. escape digits.

    @raise AGIArgumentError: another character is present.
    """
    if isinstance(digits, int) and not isinstance(digits, bool):
        digits = str(digits)
    if not isinstance(digits, str) or not _DTMF.fullmatch(digits):
        raise AGIArgumentError(f"not DTMF digits: {digits!r}")
    return quote(digits)


def application(name) -> str:
    """
    A dialplan application name, written bare (C{Dial}, C{ConfBridge}).

    @raise AGIArgumentError: C{name} is not a plain word.
    """
    if not isinstance(name, str) or not _APPLICATION.fullmatch(name):
        raise AGIArgumentError(f"not an application name: {name!r}")
    return name


def int32(value, what="number") -> str:
    """
    An integer argument Asterisk reads into a C int, written bare.

    @raise AGIArgumentError: not an integer, or outside C{INT_MIN..INT_MAX}
        (Asterisk would use another value than the one sent).
    """
    text = integer(value)
    if not INT_MIN <= int(text) <= INT_MAX:
        raise AGIArgumentError(
            f"{what} {text} is outside what Asterisk reads ({INT_MIN}..{INT_MAX})"
        )
    return text


def _at_least(value, least, what) -> str:
    text = int32(value, what)
    if int(text) < least:
        raise AGIArgumentError(f"{what} must be at least {least}, not {text}")
    return text


def _word(value, pattern, what, reason) -> str:
    """A quoted argument that must fully match C{pattern}."""
    if not isinstance(value, str) or not re.fullmatch(pattern, value):
        raise AGIArgumentError(f"not a valid {what}: {value!r} ({reason})")
    return quote(value)


def _dialplan_name(value, what) -> str:
    if not isinstance(value, str) or not value or len(value.encode("utf-8")) > MAX_DIALPLAN_NAME:
        raise AGIArgumentError(
            f"{what} must be 1 to {MAX_DIALPLAN_NAME} bytes (Asterisk keeps no more): {value!r}"
        )
    if re.search(r"[\s,]", value):
        raise AGIArgumentError(f"{what} cannot hold blanks or commas: {value!r}")
    return quote(value)


def _priority(value) -> str:
    """A priority: a number from 1, or a label (a word), as Asterisk looks it up."""
    if isinstance(value, str) and not re.fullmatch(r"-?[0-9]+", value):
        return _word(value, r"[A-Za-z_][A-Za-z0-9_\-]*", "priority label", "a label is a word")
    return _at_least(value, 1, "priority")


def _epoch(when, what, low=INT_MIN, high=INT_MAX) -> str:
    """Seconds since 1970 from an L{int} or an aware L{datetime.datetime}."""
    if isinstance(when, datetime.datetime):
        if when.tzinfo is None:
            raise AGIArgumentError(
                f"{what} needs a time zone: a naive datetime is ambiguous ({when!r})"
            )
        when = int(when.timestamp())
    text = integer(when)
    if not low <= int(text) <= high:
        raise AGIArgumentError(f"{what} {text} is outside what Asterisk reads ({low}..{high})")
    return text


def encode_command(line: str) -> bytes:
    """
    The bytes to send for command C{line} (without the final newline).

    @raise AGIArgumentError: C{line} contains CR, LF or NUL, or is too long
        for Asterisk's command buffer.
    """
    if not isinstance(line, str):
        raise AGIArgumentError(f"AGI command must be text, not {line!r}")
    if not str.isprintable(line) and _UNSAFE.search(line):  # CR, LF, NUL: not printable
        raise AGIArgumentError(f"AGI command contains CR, LF or NUL: {line!r}")
    data = line.encode("utf-8")
    if len(data) + 1 > MAX_COMMAND_BYTES:
        raise AGIArgumentError(
            f"AGI command of {len(data) + 1} bytes is longer than Asterisk reads "
            f"({MAX_COMMAND_BYTES}): {line[:60]!r}..."
        )
    return data


def _deferred(method):
    """
    Make a command method return a failed Deferred, rather than raise, when
    its arguments are refused.
    """

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except Exception:
            return defer.fail()

    return wrapper


def _digit(reply) -> str:
    """The digit whose ASCII code is the result, or C{""} for C{0}."""
    code = reply.number()
    if code == 0:
        return ""
    if 0 < code < 128:
        return chr(code)
    raise AGICommandError(reply.code, f"result is not a digit: {reply.line!r}")


def _value(reply):
    """C{result=1 (value)} -> value; C{result=0} -> L{None}."""
    if reply.result == "1":
        return reply.data if reply.data is not None else ""
    return None


def _nothing(reply):
    return None


def _succeeded(command):
    """A converter: C{result=1} is success, anything else fails the command."""

    def check(reply):
        if reply.result != "1":
            raise AGICommandError(200, f"{command} failed: {reply.line!r}")

    return check


def _channel_name(name) -> str:
    """A channel name (C{PJSIP/87650001-0000002a}), quoted."""
    return _word(name, r"[^\s]+", "channel name", "channel names hold no blanks")


class AGICommands:
    """
    The typed AGI commands, on top of C{_execute(line, *, channel=False,
    idle_timeout=..., convert=None)} provided by the session (C{convert}
    turns the reply into the command's result before the Deferred fires).

    Commands marked I{channel} act on the caller's channel (play, read
    digits, run an application): for them C{result=-1} is Asterisk's
    "hangup or failure" and fails with L{AGIHangup}. That includes a prompt
    file that does not exist or an application that fails: the handler
    stops, and the dialplan's fallback (C{SWITCHBOARD_RESULT} not C{OK})
    takes over the call.

    Where the reply tells more, a second helper returns it as a dataclass
    (L{switchboard.agi.reply}): L{stream_file_result}, L{get_option_result}
    and L{control_stream_file} (a file that could not be played is
    C{failed}, not a hangup), L{get_data_result} (the C{(timeout)} flag),
    L{record_file} (its C{endpos} even when a hangup ended it).
    """

    def _idle_after(self, timeout_ms):
        """The idle limit for a command that may itself wait C{timeout_ms}."""
        if self.idle_timeout is None:
            return None
        if timeout_ms is None:
            return self.idle_timeout
        if int(timeout_ms) < 0:
            return None  # waits forever by request
        return self.idle_timeout + int(timeout_ms) / 1000.0

    @_deferred
    def answer(self):
        """C{ANSWER} (I{channel}). Fires with L{None}."""
        return self._execute("ANSWER", channel=True, convert=_nothing)

    @_deferred
    def hangup(self):
        """C{HANGUP}: hang up the caller's channel. Fires with L{None}."""
        return self._execute("HANGUP", convert=_nothing)

    @_deferred
    def stream_file(self, name, escape_digits=""):
        """
        C{STREAM FILE "name" "digits"} (I{channel}): play a sound file.

        @return: Deferred firing with the digit that interrupted it, or C{""}.
        """
        line = f"STREAM FILE {quote(name)} {dtmf(escape_digits)}"
        return self._execute(line, channel=True, convert=_digit)

    @_deferred
    def get_data(self, prompt, timeout_ms=None, max_digits=None):
        """
        C{GET DATA "prompt" [timeout [maxdigits]]} (I{channel}): play
        C{prompt} and read digits until C{#}, C{max_digits} or the timeout.

        @param timeout_ms: wait for each digit (Asterisk's default when
            L{None}: 6 s for the first, 2 s between).
        @return: Deferred firing with the digits read: C{""} when nothing
            was entered before the timeout, the digits so far when the
            timeout came after some (as Asterisk's C{Read()} does), C{"#"}
            when C{#} alone was pressed.
        """
        line, wait = self._get_data(prompt, timeout_ms, max_digits)
        return self._execute(line, channel=True, idle_timeout=wait,
                             convert=lambda reply: reply.result)

    @_deferred
    def get_data_result(self, prompt, timeout_ms=None, max_digits=None):
        """
        L{get_data} that also tells how the wait ended.

        @return: Deferred firing with a L{DigitsRead}: the digits, and
            whether the timeout ended the wait (Asterisk's C{(timeout)}).
        @raise AGIHangup: (as a failure) C{result=-1}: the caller hung up,
            or the prompt could not be played (Asterisk gives the same
            reply for both).
        """
        line, wait = self._get_data(prompt, timeout_ms, max_digits)
        return self._execute(
            line, channel=True, idle_timeout=wait,
            convert=lambda reply: DigitsRead(reply.result, reply.data == "timeout"),
        )

    def _get_data(self, prompt, timeout_ms, max_digits):
        line = f"GET DATA {quote(prompt)}"
        if timeout_ms is not None or max_digits is not None:
            line += " " + int32(timeout_ms if timeout_ms is not None else 0, "timeout")
        if max_digits is not None:
            count = int32(max_digits, "max_digits")
            if not 1 <= int(count) <= MAX_GET_DATA_DIGITS:
                raise AGIArgumentError(
                    f"max_digits must be 1 to {MAX_GET_DATA_DIGITS} (Asterisk reads "
                    f"the digits into a {MAX_GET_DATA_DIGITS + 1}-byte buffer), not {count}"
                )
            line += " " + count
        return line, self._idle_after(timeout_ms)

    @_deferred
    def get_option(self, prompt, escape_digits, timeout_ms=None):
        """
        C{GET OPTION "prompt" "digits" [timeout]} (I{channel}): play
        C{prompt}, then wait up to C{timeout_ms} for one of C{escape_digits}.

        @return: Deferred firing with the digit, or C{""}.
        """
        line = f"GET OPTION {quote(prompt)} {dtmf(escape_digits)}"
        if timeout_ms is not None:
            line += " " + integer(timeout_ms)
        wait = self._idle_after(timeout_ms)
        return self._execute(line, channel=True, idle_timeout=wait, convert=_digit)

    @_deferred
    def wait_for_digit(self, timeout_ms):
        """
        C{WAIT FOR DIGIT timeout} (I{channel}); C{-1} waits forever.

        @return: Deferred firing with the digit, or C{""} on timeout.
        """
        line = f"WAIT FOR DIGIT {integer(timeout_ms)}"
        wait = self._idle_after(timeout_ms)
        return self._execute(line, channel=True, idle_timeout=wait, convert=_digit)

    @_deferred
    def say_digits(self, digits, escape_digits=""):
        """
        C{SAY DIGITS "digits" "escape"} (I{channel}).

        @return: Deferred firing with the digit that interrupted, or C{""}.
        """
        line = f"SAY DIGITS {quote(digits)} {dtmf(escape_digits)}"
        return self._execute(line, channel=True, convert=_digit)

    @_deferred
    def say_number(self, number, escape_digits="", gender=None):
        """
        C{SAY NUMBER n "escape" [gender]} (I{channel}): say a whole number,
        negative ones too ("minus five").

        @param number: an L{int} (or a string of one) that fits Asterisk's
            C int (C{INT_MIN..INT_MAX}: Asterisk reads it with C{sscanf}).
        @param gender: for languages whose numbers agree with the noun:
            C{"f"}, C{"m"}, C{"c"} (common) or C{"n"} (neuter); some
            languages take more (C{"p"} plural in a few); ignored by the
            others. L{None}: none sent.
        @return: Deferred firing with the digit that interrupted, or C{""}.
        """
        line = f"SAY NUMBER {int32(number)} {dtmf(escape_digits)}"
        if gender is not None:
            line += " " + _word(gender, r"[A-Za-z]{1,2}", "gender",
                                "Asterisk's say modules take a letter such as f, m, c, n")
        return self._execute(line, channel=True, convert=_digit)

    @_deferred
    def set_variable(self, name, value):
        """C{SET VARIABLE "name" "value"}. Fires with L{None}."""
        line = f"SET VARIABLE {quote(name)} {quote(value)}"
        return self._execute(line, convert=_nothing)

    @_deferred
    def get_variable(self, name):
        """
        C{GET VARIABLE "name"} (a variable or a function such as
        C{CALLERID(num)}).

        @return: Deferred firing with the value, or L{None} when unset.
        """
        return self._execute(f"GET VARIABLE {quote(name)}", convert=_value)

    @_deferred
    def get_full_variable(self, expression, channel=None):
        """
        C{GET FULL VARIABLE "expression" ["channel"]}: Asterisk substitutes
        C{expression} (e.g. C{"${CALLERID(num)}"}) on the caller's channel,
        or on the channel named C{channel}.

        @return: Deferred firing with the text (C{""} for an unset variable),
            or L{None} if Asterisk could not evaluate it or there is no
            channel of that name.
        """
        line = f"GET FULL VARIABLE {quote(expression)}"
        if channel is not None:
            line += " " + _channel_name(channel)
        return self._execute(line, convert=_value)

    @_deferred
    def channel_status(self, channel=None):
        """
        C{CHANNEL STATUS ["channel"]}: the state of the caller's channel, or
        of the channel named C{channel}: 0 down, 1 reserved, 2 off hook,
        3 dialing, 4 ring (placing a call), 5 ringing, 6 up, 7 busy,
        8 dialing offhook, 9 pre-ring.

        @return: Deferred firing with an L{int}; with L{None} when no
            channel has the name C{channel}.
        """
        if channel is None:
            return self._execute("CHANNEL STATUS", convert=lambda r: r.number())

        def state(reply):
            code = reply.number()
            return None if code == -1 else code

        return self._execute(f"CHANNEL STATUS {_channel_name(channel)}", convert=state)

    @_deferred
    def database_put(self, family, key, value):
        """
        C{DATABASE PUT "family" "key" "value"}. Fires with L{None}.

        @raise AGICommandError: (as a failure) Asterisk could not store it.
        """
        line = f"DATABASE PUT {quote(family)} {quote(key)} {quote(value)}"

        def check(reply):
            if reply.result != "1":
                raise AGICommandError(200, f"DATABASE PUT {family}/{key} failed")

        return self._execute(line, convert=check)

    @_deferred
    def database_get(self, family, key):
        """
        C{DATABASE GET "family" "key"}.

        @return: Deferred firing with the value, or L{None} if there is none.
        """
        line = f"DATABASE GET {quote(family)} {quote(key)}"
        return self._execute(line, convert=_value)

    @_deferred
    def database_del(self, family, key):
        """
        C{DATABASE DEL "family" "key"}.

        @return: Deferred firing with C{True} when Asterisk reports success
            (Asterisk 22 does so for a key that did not exist, too), C{False}
            otherwise.
        """
        line = f"DATABASE DEL {quote(family)} {quote(key)}"
        return self._execute(line, convert=lambda reply: reply.result == "1")

    @_deferred
    def exec_(self, app, *args, idle_timeout=None):
        """
        C{EXEC App "arg1,arg2,..."} (I{channel}): run a dialplan application;
        C{args} are joined with C{","} into its one option string, as
        written (a comma inside an argument separates arguments too).

        Applications such as C{Dial} and C{ConfBridge} last as long as the
        call, so by default no idle limit applies while one runs; pass
        C{idle_timeout} (seconds) to set one.

        @return: Deferred firing with the application's result (an L{int}).
        @raise AGICommandError: (as a failure) no such application
            (C{result=-2}).
        @raise AGIHangup: (as a failure) C{result=-1}: the caller hung up or
            the application failed.
        """
        options = ",".join(str(arg) for arg in args)
        line = f"EXEC {application(app)} {quote(options)}"

        def check(reply):
            result = reply.number()
            if result == -2:
                raise AGICommandError(200, f"no such application: {app}")
            return result

        return self._execute(line, channel=True, idle_timeout=idle_timeout, convert=check)

    @_deferred
    def verbose(self, message, level=1):
        """C{VERBOSE "message" level}: log on the Asterisk console."""
        line = f"VERBOSE {quote(message)} {integer(level)}"
        return self._execute(line, convert=_nothing)

    # Playback with its details

    def _playback(self, offset):
        """
        A converter for C{STREAM FILE}/C{GET OPTION} replies to L{Playback}.

        Asterisk answers C{result=-1} both when the caller hangs up and when
        the file cannot be opened; only the latter leaves the position where
        it was asked to start (C{offset}): a hangup comes while playing, after
        the first frame was read. (The C{HANGUP} notice follows a hangup's
        reply, so it cannot help here; an empty file cut by a hangup would
        read as a failure, and the next command then fails with
        L{AGIHangup}.)
        """

        def convert(reply):
            code = reply.number()
            if code == -1:
                if not self.hungup and reply.endpos == offset:
                    return Playback("", reply.endpos, failed=True)
                raise AGIHangup(f"{reply.line}: the caller hung up")
            return Playback(_digit(reply), reply.endpos)

        return convert

    @_deferred
    def stream_file_result(self, name, escape_digits="", offset=0):
        """
        C{STREAM FILE "name" "digits" [offset]} (I{channel}) with the
        details: L{stream_file} fails with L{AGIHangup} for a file that
        cannot be played; this tells that apart.

        @param offset: start this many samples (8000 a second) in.
        @return: Deferred firing with a L{Playback}: the digit that stopped
            it, C{endpos} (samples), and C{failed} for a file that could not
            be played (C{200 result=-1 endpos=<offset>}, the caller still
            there).
        @raise AGIHangup: (as a failure) the caller hung up.
        """
        line = f"STREAM FILE {quote(name)} {dtmf(escape_digits)}"
        start = int(_at_least(offset, 0, "offset"))
        if start:
            line += f" {start}"
        return self._execute(line, channel=True, raw=True, convert=self._playback(start))

    @_deferred
    def get_option_result(self, prompt, escape_digits, timeout_ms=None):
        """
        L{get_option} with the details, as L{stream_file_result}: fires with
        a L{Playback} (C{failed}: the prompt could not be played).
        """
        line = f"GET OPTION {quote(prompt)} {dtmf(escape_digits)}"
        if timeout_ms is not None:
            line += " " + int32(timeout_ms, "timeout")
        wait = self._idle_after(timeout_ms)
        return self._execute(line, channel=True, idle_timeout=wait, raw=True,
                             convert=self._playback(0))

    @_deferred
    def control_stream_file(self, name, escape_digits="", skip_ms=None, forward="",
                            rewind="", pause="", offset_ms=None):
        """
        C{CONTROL STREAM FILE "name" "stop" [skipms ["ff" ["rew" ["pause"
        [offsetms]]]]]} (I{channel}): play a file the caller can wind and
        pause (Asterisk's C{ControlPlayback}); it also sets
        C{CPLAYBACKSTATUS}, C{CPLAYBACKOFFSET} and C{CPLAYBACKSTOPKEY}.

        @param escape_digits: keys that stop it.
        @param skip_ms: how far a wind key moves (Asterisk: 3000).
        @param forward: keys that wind on (C{""}: Asterisk's C{#}).
        @param rewind: keys that wind back (C{""}: Asterisk's C{*}).
        @param pause: keys that pause and resume (C{""}: none).
        @param offset_ms: start this far in; negative: that far before the end.
        @return: Deferred firing with a L{Playback}: the stop key, C{endpos}
            in milliseconds (C{-1}: it played to the end), C{failed} when
            the file could not be played (C{200 result=-1 endpos=-1}).
        @raise AGIHangup: (as a failure) the caller hung up.
        """
        args = [quote(name), dtmf(escape_digits)]
        optional = [
            None if skip_ms is None else int32(skip_ms, "skip_ms"),
            dtmf(forward) if forward else None,
            dtmf(rewind) if rewind else None,
            dtmf(pause) if pause else None,
            None if offset_ms is None else int32(offset_ms, "offset_ms"),
        ]
        # Positional: an argument is sent when it or one after it is given;
        # Asterisk's defaults fill the gaps ("" keeps a default key).
        defaults = ["3000", '""', '""', '""', None]
        last = max((i for i, value in enumerate(optional) if value is not None), default=-1)
        for i in range(last + 1):
            args.append(optional[i] if optional[i] is not None else defaults[i])

        def convert(reply):
            code = reply.number()
            if code == -1:
                # A missing file never starts: Asterisk reports -1 for the
                # position; a hangup comes while playing, at a position >= 0.
                if not self.hungup and reply.endpos == -1:
                    return Playback("", -1, failed=True)
                raise AGIHangup(f"{reply.line}: the caller hung up")
            return Playback(_digit(reply), reply.endpos)

        # A paused playback waits for the caller as long as they like.
        limit = {"idle_timeout": None} if pause else {}
        return self._execute("CONTROL STREAM FILE " + " ".join(args), channel=True, raw=True,
                             convert=convert, **limit)

    # Recording

    @_deferred
    def record_file(self, name, format, escape_digits="", timeout_ms=-1, *, offset=None,
                    beep=False, silence_s=None):
        """
        C{RECORD FILE "name" "format" "escape" timeout [offset] [BEEP]
        [s=silence]} (I{channel}): record what the caller says.

        @param name: file name without extension, relative to Asterisk's
            sounds directory or absolute.
        @param format: the file format and extension (C{"wav"}, C{"gsm"},
            C{"ulaw"}, C{"sln"}...).
        @param escape_digits: keys that end the recording.
        @param timeout_ms: longest recording; C{-1}: no limit.
        @param offset: append to the file from this sample on (Asterisk
            then opens it for appending).
        @param beep: play a beep first.
        @param silence_s: end after this many seconds of silence.
        @return: Deferred firing with a L{Recording}: why it ended and
            C{endpos} (samples written). A hangup does not fail it: the
            recording so far is kept, with its C{endpos}
            (C{200 result=-1 (hangup) endpos=N}).
        """
        line = (f"RECORD FILE {quote(name)} "
                + _word(format, r"[A-Za-z0-9_]+", "format", "a format name is one word")
                + f" {dtmf(escape_digits)} {int32(timeout_ms, 'timeout')}")
        # Asterisk reads the optional arguments by their looks: a number is
        # the offset, "s=N" the silence, anything else asks for the beep.
        if offset is not None:
            line += " " + _at_least(offset, 0, "offset")
        if beep:
            line += " BEEP"
        if silence_s is not None:
            line += " s=" + _at_least(silence_s, 1, "silence_s")

        def convert(reply):
            code = reply.number()
            reason = reply.data if reply.data is not None else RECORD_ERROR
            digit = ""
            if code > 0 and reason in (RECORD_DTMF, RECORD_BEEP):
                digit = _digit(reply)
            return Recording(reason, digit, reply.endpos)

        return self._execute(line, channel=True, raw=True,
                             idle_timeout=self._idle_after(timeout_ms), convert=convert)

    # Saying things

    @_deferred
    def say_alpha(self, text, escape_digits="", case=None):
        """
        C{SAY ALPHA "text" "escape" [case]} (I{channel}): spell C{text}
        letter by letter.

        @param case: C{"a"} say the case of every letter, C{"u"} of upper
            case ones, C{"l"} of lower case ones, C{"n"} never (Asterisk's
            default).
        @return: Deferred firing with the digit that interrupted, or C{""}.
        """
        line = f"SAY ALPHA {quote(text)} {dtmf(escape_digits)}"
        if case is not None:
            if case not in ("a", "u", "l", "n"):
                raise AGIArgumentError(
                    f"case must be 'a', 'u', 'l' or 'n' (Asterisk refuses others): {case!r}"
                )
            line += f" {case}"
        return self._execute(line, channel=True, convert=_digit)

    @_deferred
    def say_phonetic(self, text, escape_digits=""):
        """
        C{SAY PHONETIC "text" "escape"} (I{channel}): spell C{text} in the
        phonetic alphabet (alfa, bravo...).

        @return: Deferred firing with the digit that interrupted, or C{""}.
        """
        line = f"SAY PHONETIC {quote(text)} {dtmf(escape_digits)}"
        return self._execute(line, channel=True, convert=_digit)

    @_deferred
    def say_date(self, when, escape_digits=""):
        """
        C{SAY DATE seconds "escape"} (I{channel}): say the date of C{when}
        in the server's local time zone of Asterisk.

        @param when: seconds since 1970 (UTC) or an aware
            L{datetime.datetime}; Asterisk reads a C int (up to 2038).
        @return: Deferred firing with the digit that interrupted, or C{""}.
        """
        line = f"SAY DATE {_epoch(when, 'date')} {dtmf(escape_digits)}"
        return self._execute(line, channel=True, convert=_digit)

    @_deferred
    def say_time(self, when, escape_digits=""):
        """
        C{SAY TIME seconds "escape"} (I{channel}): say the time of day of
        C{when}, as L{say_date}.
        """
        line = f"SAY TIME {_epoch(when, 'time')} {dtmf(escape_digits)}"
        return self._execute(line, channel=True, convert=_digit)

    @_deferred
    def say_datetime(self, when, escape_digits="", format=None, timezone=None):
        """
        C{SAY DATETIME seconds "escape" ["format" ["timezone"]]}
        (I{channel}).

        @param when: seconds since 1970 (UTC) or an aware
            L{datetime.datetime}.
        @param format: Asterisk's C{SayUnixTime} format (C{"ABdY 'digits/at'
            IMp"} by default for most languages).
        @param timezone: a zone name from the system's zoneinfo
            (C{"Asia/Shanghai"}); needs C{format} (the default format is
            chosen by Asterisk from the language, and cannot be named here).
        @return: Deferred firing with the digit that interrupted, or C{""}.
        """
        line = (f"SAY DATETIME {_epoch(when, 'time', -(2**63), 2**63 - 1)} "
                f"{dtmf(escape_digits)}")
        if timezone is not None and format is None:
            raise AGIArgumentError("say_datetime: a timezone needs a format too")
        if format is not None:
            line += " " + quote(format)
        if timezone is not None:
            line += " " + _word(timezone, r"[A-Za-z0-9_+\-/]+", "time zone",
                                "a zoneinfo name such as Asia/Shanghai")
        return self._execute(line, channel=True, convert=_digit)

    # The dialplan and the channel

    @_deferred
    def set_context(self, context):
        """
        C{SET CONTEXT "context"}: where the dialplan goes on after the AGI.
        Asterisk does not check that the context exists. Fires with L{None}.
        """
        return self._execute(f"SET CONTEXT {_dialplan_name(context, 'context')}",
                             convert=_nothing)

    @_deferred
    def set_extension(self, extension):
        """
        C{SET EXTENSION "extension"}: as L{set_context}. Fires with L{None}.
        """
        return self._execute(f"SET EXTENSION {_dialplan_name(extension, 'extension')}",
                             convert=_nothing)

    @_deferred
    def set_priority(self, priority):
        """
        C{SET PRIORITY priority}: the priority (a number from 1, or a label
        of the current extension) the dialplan goes on at after the AGI.

        @raise AGICommandError: (as a failure, C{520}) no such label.
        """
        return self._execute(f"SET PRIORITY {_priority(priority)}", convert=_nothing)

    @_deferred
    def set_autohangup(self, seconds):
        """
        C{SET AUTOHANGUP seconds}: hang the channel up C{seconds} from now
        (a fraction allowed); C{0} cancels it. Fires with L{None}.
        """
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise AGIArgumentError(f"seconds must be a number, not {seconds!r}")
        if not 0 <= seconds < 2**31:
            raise AGIArgumentError(
                f"seconds must be 0 (cancel) or more, below 2**31 (a C time): {seconds!r}"
            )
        text = str(int(seconds)) if float(seconds).is_integer() else f"{seconds:.6f}"
        return self._execute(f"SET AUTOHANGUP {text}", convert=_nothing)

    @_deferred
    def set_callerid(self, number, name=None):
        """
        C{SET CALLERID "\\"name\\" <number>"}: the caller ID the channel
        presents from now on. Fires with L{None}.

        Asterisk parses the one argument as C{"name" <number>}: the number
        may not hold C{<>"}, nor the name C{"} (either would be read as
        part of the other).
        """
        number = "" if number is None else number
        if not isinstance(number, str) or re.search(r'[<>"]', number):
            raise AGIArgumentError(f"caller ID number cannot hold <, > or \": {number!r}")
        if name is None:
            value = f"<{number}>"
        else:
            if not isinstance(name, str) or '"' in name:
                raise AGIArgumentError(f'caller ID name cannot hold ": {name!r}')
            value = f'"{name}" <{number}>'
        return self._execute(f"SET CALLERID {quote(value)}", convert=_nothing)

    @_deferred
    def set_music(self, on, music_class=None):
        """
        C{SET MUSIC on|off ["class"]}: start (C{on=True}) or stop music on
        hold on the channel. Fires with L{None}.
        """
        if not isinstance(on, bool):
            raise AGIArgumentError(f"on must be True or False, not {on!r}")
        line = "SET MUSIC " + ("on" if on else "off")
        if music_class is not None:
            if not on:
                raise AGIArgumentError("set_music: a class goes with on=True only")
            line += " " + _word(music_class, r"[A-Za-z0-9_\-]+", "music class",
                                "a musiconhold.conf section name")
        return self._execute(line, convert=_nothing)

    @_deferred
    def tdd_mode(self, mode):
        """
        C{TDD MODE on|off|tdd|mate}: switch the channel's TDD (text
        telephone) mode.

        @return: Deferred firing with C{True} if the channel did, C{False}
            if it cannot (only DAHDI channels can).
        """
        if mode not in ("on", "off", "tdd", "mate"):
            raise AGIArgumentError(f"mode must be on, off, tdd or mate: {mode!r}")
        return self._execute(f"TDD MODE {mode}", convert=lambda r: r.result == "1")

    @_deferred
    def send_text(self, text):
        """
        C{SEND TEXT "text"} (I{channel}): send text to a channel that takes
        it (SIP MESSAGE in a dialog); others ignore it. Fires with L{None}.
        """
        return self._execute(f"SEND TEXT {quote(text)}", channel=True, convert=_nothing)

    @_deferred
    def send_image(self, name):
        """
        C{SEND IMAGE "name"} (I{channel}): send an image to a channel that
        takes images; others ignore it. Fires with L{None}.
        """
        return self._execute(f"SEND IMAGE {quote(name)}", channel=True, convert=_nothing)

    @_deferred
    def receive_char(self, timeout_ms=0):
        """
        C{RECEIVE CHAR timeout} (I{channel}): wait for one character of
        text; C{0} waits forever.

        @return: Deferred firing with the character, or C{""} on timeout
            (or when the channel cannot receive text).
        """
        wait = self._idle_after(int(_at_least(timeout_ms, 0, "timeout")) or -1)
        return self._execute(f"RECEIVE CHAR {int32(timeout_ms, 'timeout')}", channel=True,
                             idle_timeout=wait, convert=_digit)

    @_deferred
    def receive_text(self, timeout_ms=0):
        """
        C{RECEIVE TEXT timeout} (I{channel}): wait for a text message; C{0}
        waits forever.

        @return: Deferred firing with the text, or L{None} when none came
            (C{result=-1}: timeout, a channel that cannot receive text, or a
            hangup, which the C{HANGUP} notice then makes the next command
            fail with).
        """
        wait = self._idle_after(int(_at_least(timeout_ms, 0, "timeout")) or -1)
        return self._execute(f"RECEIVE TEXT {int32(timeout_ms, 'timeout')}", channel=True,
                             idle_timeout=wait, raw=True, convert=_value)

    @_deferred
    def hangup_channel(self, channel):
        """
        C{HANGUP "channel"}: hang up another channel, by name.

        @return: Deferred firing with C{True}, or C{False} when there is no
            channel of that name.
        """
        return self._execute(f"HANGUP {_channel_name(channel)}",
                             convert=lambda r: r.result == "1")

    @_deferred
    def noop(self):
        """
        C{NOOP}: does nothing; answered even after a hangup (a cheap check
        that Asterisk still reads this connection). Fires with L{None}.
        """
        return self._execute("NOOP", convert=_nothing)

    @_deferred
    def asyncagi_break(self):
        """
        C{ASYNCAGI BREAK}: ends an Async AGI session (one driven over AMI);
        on a FastAGI connection Asterisk answers and nothing changes.
        Fires with L{None}.
        """
        return self._execute("ASYNCAGI BREAK", convert=_nothing)

    @_deferred
    def database_deltree(self, family, keytree=None):
        """
        C{DATABASE DELTREE "family" ["keytree"]}: delete a family, or the
        keys under C{family/keytree}.

        Asterisk 22 answers C{result=0} when it deleted keys and C{result=1}
        when there were none to delete (or the database failed): the
        opposite of its own documentation, as read in res_agi.c and seen on
        Asterisk 22.

        @return: Deferred firing with C{True} if keys were deleted.
        """
        line = f"DATABASE DELTREE {quote(family)}"
        if keytree is not None:
            line += " " + quote(keytree)
        return self._execute(line, convert=lambda r: r.result == "0")

    @_deferred
    def gosub(self, context, extension, priority, *args, idle_timeout=None):
        """
        C{GOSUB "context" "extension" priority ["args"]} (I{channel}): run
        a dialplan subroutine (until its C{Return()}) on the channel.
        Asterisk first says C{100 result=0 Trying...}, then replies when
        the subroutine is done; no idle limit applies meanwhile unless
        C{idle_timeout} (seconds) is given.

        @param priority: a number from 1, or a label.
        @param args: the subroutine's C{${ARG1}}, C{${ARG2}}...
        @return: Deferred firing with C{True} when the subroutine returned
            (C{GOSUB_RETVAL} holds its value), C{False} when it ended some
            other way (C{Gosub complete (abnormal exit)}: a hangup, or a
            C{Goto} out of it).
        @raise AGICommandError: (as a failure) no such extension or label,
            or the subroutine could not start.
        """
        line = (f"GOSUB {_dialplan_name(context, 'context')} "
                f"{_dialplan_name(extension, 'extension')} {_priority(priority)}")
        if args:
            line += " " + quote(",".join(str(arg) for arg in args))

        def convert(reply):
            tail = reply.tail()
            if reply.result == "0" and tail.startswith("Gosub complete"):
                return "abnormal exit" not in tail
            raise AGICommandError(200, f"GOSUB {context},{extension},{priority}: "
                                       f"{tail or reply.line}")

        return self._execute(line, channel=True, raw=True, idle_timeout=idle_timeout,
                             convert=convert)

    # Speech recognition (res_speech with an engine module)

    @_deferred
    def speech_create(self, engine=""):
        """
        C{SPEECH CREATE "engine"}: set up recognition on this session
        (C{""}: the default engine). Fires with L{None}.

        @raise AGICommandError: (as a failure) no such engine, or one was
            already set up.
        """
        return self._execute(f"SPEECH CREATE {quote(engine)}",
                             convert=_succeeded("SPEECH CREATE"))

    @_deferred
    def speech_set(self, name, value):
        """C{SPEECH SET "name" "value"}: an engine setting. Fires with L{None}."""
        return self._execute(f"SPEECH SET {quote(name)} {quote(value)}",
                             convert=_succeeded("SPEECH SET"))

    @_deferred
    def speech_destroy(self):
        """C{SPEECH DESTROY}. Fires with L{None}; fails if none was created."""
        return self._execute("SPEECH DESTROY", convert=_succeeded("SPEECH DESTROY"))

    @_deferred
    def speech_load_grammar(self, name, path):
        """C{SPEECH LOAD GRAMMAR "name" "path"}. Fires with L{None}."""
        return self._execute(f"SPEECH LOAD GRAMMAR {quote(name)} {quote(path)}",
                             convert=_succeeded("SPEECH LOAD GRAMMAR"))

    @_deferred
    def speech_unload_grammar(self, name):
        """C{SPEECH UNLOAD GRAMMAR "name"}. Fires with L{None}."""
        return self._execute(f"SPEECH UNLOAD GRAMMAR {quote(name)}",
                             convert=_succeeded("SPEECH UNLOAD GRAMMAR"))

    @_deferred
    def speech_activate_grammar(self, name):
        """C{SPEECH ACTIVATE GRAMMAR "name"}. Fires with L{None}."""
        return self._execute(f"SPEECH ACTIVATE GRAMMAR {quote(name)}",
                             convert=_succeeded("SPEECH ACTIVATE GRAMMAR"))

    @_deferred
    def speech_deactivate_grammar(self, name):
        """C{SPEECH DEACTIVATE GRAMMAR "name"}. Fires with L{None}."""
        return self._execute(f"SPEECH DEACTIVATE GRAMMAR {quote(name)}",
                             convert=_succeeded("SPEECH DEACTIVATE GRAMMAR"))

    @_deferred
    def speech_recognize(self, prompt, timeout_s, offset=None):
        """
        C{SPEECH RECOGNIZE "prompt" timeout [offset]} (I{channel}): play
        C{prompt} and listen.

        @param timeout_s: seconds to wait for speech after the prompt.
        @param offset: start the prompt this many samples in.
        @return: Deferred firing with a L{Recognition}.
        @raise AGIHangup: (as a failure) the caller hung up.
        """
        seconds = _at_least(timeout_s, 0, "timeout_s")
        line = f"SPEECH RECOGNIZE {quote(prompt)} {seconds}"
        if offset is not None:
            line += " " + _at_least(offset, 0, "offset")
        wait = self._idle_after(int(seconds) * 1000)
        return self._execute(line, channel=True, idle_timeout=wait, convert=_recognition)


_SPEECH_DIGIT = re.compile(r"(?:^| )digit=(\S)")
_SPEECH_RESULT = re.compile(r'score(\d+)=(-?\d+) text\1="(.*?)" grammar\1=(\S*)')


def _recognition(reply) -> Recognition:
    """
    C{200 result=1 (speech) endpos=N results=K score0=S text0="T"
    grammar0=G ...}, C{(digit) digit=D endpos=N}, C{(timeout) endpos=N},
    C{result=0 [endpos=N]} -> L{Recognition}; C{(hangup) endpos=N} ->
    L{AGIHangup}.
    """
    if reply.result != "1":
        return Recognition("failed", endpos=reply.endpos)
    if reply.data == "hangup":
        raise AGIHangup(f"{reply.line}: the caller hung up")
    tail = reply.tail()
    if reply.data == "speech":
        results = tuple(
            SpeechResult(int(score), text, grammar)
            for _, score, text, grammar in _SPEECH_RESULT.findall(tail)
        )
        return Recognition("speech", endpos=reply.endpos, results=results)
    if reply.data == "digit":
        found = _SPEECH_DIGIT.search(tail)
        return Recognition("digit", digit=found.group(1) if found else "", endpos=reply.endpos)
    return Recognition(reply.data or "failed", endpos=reply.endpos)
