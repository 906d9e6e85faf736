"""Reading Asterisk's FastAGI reply lines."""

import pytest

from switchboard.agi import AGICommandError, AGIHangup, AGIReply, parse_result_line
from switchboard.agi.reply import HANGUP, ReplyReader, Unexpected


@pytest.mark.parametrize(
    "line, result, data, endpos",
    [
        ("200 result=0", "0", None, None),
        ("200 result=1", "1", None, None),
        ("200 result=-1", "-1", None, None),
        ("200 result=1 (some value)", "1", "some value", None),
        ("200 result=1 ()", "1", "", None),
        ("200 result=49 endpos=40320", "49", None, 40320),
        ("200 result=-1 endpos=0", "-1", None, 0),
        ("200 result= (timeout)", "", "timeout", None),
        ("200 result=12 (timeout)", "12", "timeout", None),
        ("200 result=123#", "123#", None, None),
        ("200 result=1 (timeout) endpos=8000", "1", "timeout", 8000),
        # Values may hold parentheses and spaces; the line's last ")" ends them.
        ("200 result=1 (a (b) c)", "1", "a (b) c", None),
        ("200 result=1 (x) endpos=5)", "1", "x) endpos=5", None),
        ("200 result=1 ((()", "1", "((", None),
        ("200 result=1 (Zhang San <87650001>)", "1", "Zhang San <87650001>", None),
        ("200 result=1 (中文 名字)", "1", "中文 名字", None),
        ("200 result=1 (speech) endpos=0 results=1 score0=900", "1", "speech", 0),
    ],
)
def test_result_lines(line, result, data, endpos):
    assert parse_result_line(line) == AGIReply(200, result, data, endpos, line)


def test_not_a_result_line():
    assert parse_result_line("510 Invalid or unknown command") is None
    assert parse_result_line("HANGUP") is None


def test_number():
    assert parse_result_line("200 result=-2").number() == -2
    with pytest.raises(AGICommandError):
        parse_result_line("200 result=abc").number()


def test_reader_events():
    reader = ReplyReader()
    assert reader.feed("200 result=1 (x)") == AGIReply(200, "1", "x", None, "200 result=1 (x)")
    assert reader.feed("HANGUP") is HANGUP
    error = reader.feed("510 Invalid or unknown command")
    assert isinstance(error, AGICommandError)
    assert (error.code, error.message) == (510, "Invalid or unknown command")
    hangup = reader.feed("511 Command Not Permitted on a dead channel or intercept routine")
    assert isinstance(hangup, AGIHangup)
    assert "511" in str(hangup)
    assert reader.feed("hello there") == Unexpected("hello there")
    other = reader.feed("500 Something else")
    assert isinstance(other, AGICommandError) and other.code == 500


def test_reader_multi_line_usage():
    reader = ReplyReader()
    assert reader.feed("520-Invalid command syntax.  Proper usage follows:") is None
    assert reader.in_reply
    assert reader.feed(" Usage: STREAM FILE <filename> <escape digits> [sample offset]") is None
    assert reader.feed("  Send the given file.") is None
    error = reader.feed("520 End of proper usage.")
    assert isinstance(error, AGICommandError)
    assert error.code == 520
    assert error.message == (
        " Usage: STREAM FILE <filename> <escape digits> [sample offset]\n  Send the given file."
    )
    assert not reader.in_reply
    assert reader.feed("200 result=0").result == "0"


def test_reader_single_line_usage():
    error = ReplyReader().feed("520 Invalid command syntax.  Proper usage not available.")
    assert isinstance(error, AGICommandError)
    assert error.message == "Invalid command syntax.  Proper usage not available."


def test_reader_usage_is_bounded():
    reader = ReplyReader(max_usage_lines=3)
    reader.feed("520-Invalid command syntax.  Proper usage follows:")
    for i in range(1000):
        assert reader.feed(f"line {i}") is None
    error = reader.feed("520 End of proper usage.")
    assert error.message == "line 0\nline 1\nline 2"


def test_reader_hangup_inside_usage_block():
    reader = ReplyReader()
    reader.feed("520-Invalid command syntax.  Proper usage follows:")
    assert reader.feed("HANGUP") is HANGUP
    assert reader.feed("520 End of proper usage.").code == 520


def test_common_replies_parsed_once_and_bounded(monkeypatch):
    from switchboard.agi import reply as module

    monkeypatch.setattr(module, "_COMMON", {})
    monkeypatch.setattr(module, "_COMMON_LIMIT", 3)
    reader, other = ReplyReader(), ReplyReader()
    first = reader.feed("200 result=1 (ANSWER)")
    assert other.feed("200 result=1 (ANSWER)") is first
    assert first == AGIReply(200, "1", "ANSWER", None, "200 result=1 (ANSWER)")
    # Playback offsets vary: such lines are parsed every time.
    assert reader.feed("200 result=0 endpos=1234").endpos == 1234
    assert "200 result=0 endpos=1234" not in module._COMMON
    for i in range(10):
        assert reader.feed(f"200 result={i}").result == str(i)
    assert len(module._COMMON) == 3
    # Errors and the usage block are not affected.
    assert isinstance(reader.feed("510 Invalid or unknown command"), AGICommandError)


def test_provisional_line_is_read_past():
    # GOSUB: "100 result=0 Trying..." before the subroutine, then the reply.
    reader = ReplyReader()
    assert reader.feed("100 result=0 Trying...") is None
    assert not reader.in_reply
    reply = reader.feed("200 result=0 Gosub complete")
    assert reply.result == "0"
    assert reply.tail() == "Gosub complete"


def test_tail():
    assert parse_result_line("200 result=-1 Gosub label not found").tail() == \
        "Gosub label not found"
    assert parse_result_line("200 result=1 (digit) digit=7 endpos=5").tail() == \
        "(digit) digit=7 endpos=5"
    assert parse_result_line("200 result=0").tail() == ""
