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

import functools
import re

from twisted.internet import defer

from switchboard.agi.errors import AGIArgumentError, AGICommandError

#: Asterisk reads a command into a 2048-byte buffer (with its terminating
#: NUL): a longer line is cut and the remainder run as a second command.
MAX_COMMAND_BYTES = 2047  # including the final "\n"

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
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise AGIArgumentError(f"AGI argument must be text or a number, not {value!r}")
    text = str(value)
    if _UNSAFE.search(text):
        raise AGIArgumentError(f"AGI argument contains CR, LF or NUL: {text!r}")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


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


def encode_command(line: str) -> bytes:
    """
    The bytes to send for command C{line} (without the final newline).

    @raise AGIArgumentError: C{line} contains CR, LF or NUL, or is too long
        for Asterisk's command buffer.
    """
    if not isinstance(line, str):
        raise AGIArgumentError(f"AGI command must be text, not {line!r}")
    if _UNSAFE.search(line):
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
        line = f"GET DATA {quote(prompt)}"
        if timeout_ms is not None or max_digits is not None:
            line += " " + integer(timeout_ms if timeout_ms is not None else 0)
        if max_digits is not None:
            line += " " + integer(max_digits)
        wait = self._idle_after(timeout_ms)
        return self._execute(line, channel=True, idle_timeout=wait,
                             convert=lambda reply: reply.result)

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
    def say_number(self, number, escape_digits=""):
        """
        C{SAY NUMBER n "escape"} (I{channel}).

        @return: Deferred firing with the digit that interrupted, or C{""}.
        """
        line = f"SAY NUMBER {integer(number)} {dtmf(escape_digits)}"
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
    def get_full_variable(self, expression):
        """
        C{GET FULL VARIABLE "expression"}: Asterisk substitutes
        C{expression} (e.g. C{"${CALLERID(num)}"}) on the channel.

        @return: Deferred firing with the text (C{""} for an unset variable),
            or L{None} if Asterisk could not evaluate it.
        """
        line = f"GET FULL VARIABLE {quote(expression)}"
        return self._execute(line, convert=_value)

    @_deferred
    def channel_status(self):
        """
        C{CHANNEL STATUS}: the channel state (0 down ... 4 ringing, 6 up,
        7 busy). Fires with an L{int}.
        """
        return self._execute("CHANNEL STATUS", convert=lambda r: r.number())

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
