"""
Reading what Asterisk writes back on a FastAGI connection.

After the environment, Asterisk sends one reply per command:

    200 result=1 (some value)
    200 result=0 endpos=40320
    510 Invalid or unknown command
    511 Command Not Permitted on a dead channel or intercept routine
    520-Invalid command syntax.  Proper usage follows:
    ... usage text ...
    520 End of proper usage.

and, on its own, a bare C{HANGUP} line when the caller hangs up. C{GOSUB}
alone says C{100 result=0 Trying...} before its subroutine runs and its
C{200} reply when the subroutine is done: a C{100} line is provisional and
is read past. L{ReplyReader} turns those lines into events, one per reply.

The typed results some commands return, with the details their replies
carry (L{Playback}, L{DigitsRead}, L{Recording}, L{Recognition}), are
defined here too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple, Optional, Tuple, Union

from switchboard.agi.errors import AGICommandError, AGIHangup

# "200 result=<value>[ <rest>]"; the value may be empty ("result= (timeout)").
_RESULT = re.compile(r"^200 result=(\S*)(?: (.*))?$")
# "(data)[ endpos=N]": greedy, so data may itself contain ")" and spaces; a
# line ending in ")" keeps everything up to that last ")" as data.
_DATA = re.compile(r"^\((.*)\)(?: endpos=(-?\d+))?$", re.DOTALL)
_ENDPOS = re.compile(r"(?:^| )endpos=(-?\d+)")
_CODE = re.compile(r"^(\d{3})([ -])(.*)$")

HANGUP_LINE = "HANGUP"

#: The code of a provisional line (only C{GOSUB} sends one, before its
#: subroutine runs); the command's reply is the C{200} line after it.
PROVISIONAL = 100

#: Replies seen often (C{200 result=1}, C{200 result=1 (ANSWER)}...) are
#: parsed once: line -> L{AGIReply}, immutable, shared by every connection.
#: Lines with a playback offset vary too much to be worth keeping.
_COMMON: dict = {}
_COMMON_LIMIT = 512

#: At most this many usage lines of a C{520} reply are kept (the rest are
#: read and dropped), so a peer cannot grow memory without bound.
MAX_USAGE_LINES = 200


class AGIReply(NamedTuple):
    """
    A successful (C{200}) reply (a named tuple: one is made per command).

    @ivar code: always C{200}.
    @ivar result: the text after C{result=} (C{"1"}, C{"-1"}, C{"123#"},
        possibly C{""}).
    @ivar data: the text in parentheses, or L{None} when there was none.
    @ivar endpos: the C{endpos=} sample offset, or L{None}.
    @ivar line: the reply line as received.
    """

    code: int
    result: str
    data: Optional[str] = None
    endpos: Optional[int] = None
    line: str = ""

    def number(self) -> int:
        """
        The result as an integer.

        @raise AGICommandError: the result is not a number.
        """
        try:
            return int(self.result)
        except ValueError:
            raise AGICommandError(
                self.code, f"expected a numeric result: {self.line!r}"
            ) from None


    def tail(self) -> str:
        """
        The text after C{result=...} (C{""} if none): C{"Gosub label not
        found"}, C{"(speech) endpos=0 results=1 score0=..."}.
        """
        match = _RESULT.match(self.line)
        return (match.group(2) or "") if match is not None else ""


def parse_result_line(line: str) -> Optional[AGIReply]:
    """
    Parse a C{200 result=...} line, or return L{None} if C{line} is not one.
    """
    match = _RESULT.match(line)
    if match is None:
        return None
    result, rest = match.group(1), match.group(2)
    if not rest:
        return AGIReply(200, result, None, None, line)
    data = endpos = None
    if rest.startswith("("):
        found = _DATA.match(rest)
        if found is not None:
            data = found.group(1)
            endpos = _int(found.group(2))
        else:
            # Something after the data we do not know (speech results...):
            # keep the first parenthesised part, and endpos if present.
            close = rest.find(")")
            data = rest[1:close] if close > 0 else rest[1:]
            endpos = _int(_first(_ENDPOS.search(rest)))
    else:
        endpos = _int(_first(_ENDPOS.search(rest)))
    return AGIReply(200, result, data, endpos, line)


def _first(match):
    return match.group(1) if match is not None else None


def _int(text):
    return int(text) if text is not None else None


@dataclass(frozen=True)
class Playback:
    """
    How C{STREAM FILE}, C{GET OPTION} or C{CONTROL STREAM FILE} ended.

    @ivar digit: the key that stopped it (C{""}: none, it played out, or it
        could not play).
    @ivar endpos: where it stopped: in samples (8000 a second) for C{STREAM
        FILE} and C{GET OPTION}; in milliseconds for C{CONTROL STREAM FILE},
        where C{-1} means it played to the end (or never started).
    @ivar failed: C{True} when Asterisk answered C{result=-1} but the caller
        is still there: the file could not be played (it does not exist in
        the channel's language, or cannot be read). Asterisk tells it apart
        from a hangup only by the position: nothing was played.
    """

    digit: str
    endpos: Optional[int]
    failed: bool = False


@dataclass(frozen=True)
class DigitsRead:
    """
    What C{GET DATA} read.

    @ivar digits: the digits (without the final C{#}; C{"#"} when C{#} alone
        was pressed; C{""} when nothing was pressed).
    @ivar timeout: C{True} when the wait ended by the timeout (C{(timeout)}
        in the reply): after no key at all, or after some digits but fewer
        than asked for and no C{#}.
    """

    digits: str
    timeout: bool


#: How a C{RECORD FILE} can end (the word in its reply's parentheses).
RECORD_DTMF = "dtmf"  # an escape digit was pressed: C{digit} holds it
RECORD_TIMEOUT = "timeout"  # the time limit or the silence limit was reached
RECORD_HANGUP = "hangup"  # the caller hung up; what was heard is kept
RECORD_WAITFOR = "waitfor"  # reading the channel failed
RECORD_WRITEFILE = "writefile"  # the file could not be created: nothing recorded
RECORD_BEEP = "randomerror"  # the beep was interrupted (key or hangup): nothing recorded
RECORD_ERROR = "error"  # no reason given: the silence detector could not be set up


@dataclass(frozen=True)
class Recording:
    """
    How C{RECORD FILE} ended.

    @ivar reason: one of C{RECORD_DTMF}, C{RECORD_TIMEOUT}, C{RECORD_HANGUP},
        C{RECORD_WAITFOR}, C{RECORD_WRITEFILE}, C{RECORD_BEEP},
        C{RECORD_ERROR}.
    @ivar digit: the escape digit that ended it (C{RECORD_DTMF}, or
        C{RECORD_BEEP} when a key stopped the beep), else C{""}.
    @ivar endpos: samples in the file (8000 a second), or L{None} when
        Asterisk gave none (C{RECORD_WRITEFILE}, C{RECORD_ERROR}).
    """

    reason: str
    digit: str
    endpos: Optional[int]

    @property
    def hangup(self) -> bool:
        """The caller hung up while recording (the file holds what came)."""
        return self.reason == RECORD_HANGUP

    @property
    def recorded(self) -> bool:
        """A file was written (possibly empty: see C{endpos})."""
        return self.reason in (RECORD_DTMF, RECORD_TIMEOUT, RECORD_HANGUP, RECORD_WAITFOR)


@dataclass(frozen=True)
class SpeechResult:
    """One hypothesis of C{SPEECH RECOGNIZE}: its score, text and grammar."""

    score: int
    text: str
    grammar: str


@dataclass(frozen=True)
class Recognition:
    """
    How C{SPEECH RECOGNIZE} ended.

    @ivar reason: C{"speech"} (C{results} holds the hypotheses),
        C{"digit"} (C{digit} holds the key), C{"timeout"}, or C{"failed"}
        (Asterisk answered C{result=0}: no speech object, or the channel
        could not be switched to signed linear).
    @ivar endpos: where the prompt stopped, in samples (L{None} if not
        given).
    """

    reason: str
    digit: str = ""
    endpos: Optional[int] = None
    results: Tuple[SpeechResult, ...] = ()


class _Hangup:
    """The type of L{HANGUP}."""

    def __repr__(self) -> str:
        return "HANGUP"


#: Event for the bare C{HANGUP} line Asterisk sends when the caller hangs up.
HANGUP = _Hangup()


@dataclass(frozen=True)
class Unexpected:
    """
    Event for a line that is no reply at all.

    @ivar line: the line as received.
    """

    line: str


Event = Union[AGIReply, AGICommandError, AGIHangup, _Hangup, Unexpected]


class ReplyReader:
    """
    Turns reply lines into events.

    L{feed} returns, for each line, one of: an L{AGIReply} (a C{200} reply),
    an L{AGICommandError} (C{510}, C{520} and other error codes), an
    L{AGIHangup} (C{511}), L{HANGUP} (the spontaneous hangup notice), an
    L{Unexpected} line, or L{None} for a provisional C{100} line and while
    a multi-line C{520} reply is still being read.
    """

    def __init__(self, max_usage_lines: int = MAX_USAGE_LINES):
        self._max_usage_lines = max_usage_lines
        self._usage = None  # list of lines while inside "520-" ... "520 "

    @property
    def in_reply(self) -> bool:
        """True while the lines of a multi-line reply are being read."""
        return self._usage is not None

    def feed(self, line: str) -> Optional[Event]:
        """
        Read one line (without its line ending).
        """
        if line == HANGUP_LINE:
            return HANGUP
        if self._usage is not None:
            return self._usage_line(line)
        reply = _COMMON.get(line)
        if reply is not None:
            return reply
        reply = parse_result_line(line)
        if reply is not None:
            # (Never a line ending in CR: the protocol looks a read up here
            # before it would drop a final CR.)
            if reply.endpos is None and len(_COMMON) < _COMMON_LIMIT and line[-1:] != "\r":
                _COMMON[line] = reply
            return reply
        match = _CODE.match(line)
        if match is None:
            return Unexpected(line)
        code, separator, text = int(match.group(1)), match.group(2), match.group(3)
        if code == PROVISIONAL:
            # GOSUB's "100 result=0 Trying...": the real reply follows.
            return None
        if code == 520 and separator == "-":
            self._usage = []
            self._usage_header = text
            return None
        if code == 511:
            return AGIHangup(f"511 {text}")
        if code == 200:
            # A 200 line without "result=": nothing we can interpret.
            return AGICommandError(200, f"unreadable reply: {line!r}")
        return AGICommandError(code, text)

    def _usage_line(self, line: str):
        if line.startswith("520 ") or line == "520":
            usage, self._usage = self._usage, None
            text = "\n".join(usage) if usage else self._usage_header
            return AGICommandError(520, text)
        if len(self._usage) < self._max_usage_lines:
            self._usage.append(line)
        return None
