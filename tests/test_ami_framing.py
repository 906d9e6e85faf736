"""
Cutting the manager byte stream into the banner and blocks.
"""

import pytest

from switchboard.ami import BlockReader, Message
from switchboard.ami.framing import Banner, BlockTooLarge, Malformed

BANNER = b"Asterisk Call Manager/11.0.0\r\n"


def read(*chunks, reader=None):
    reader = reader or BlockReader()
    items = []
    for chunk in chunks:
        items.extend(reader.feed(chunk))
    return items


def messages(items):
    return [i for i in items if isinstance(i, Message)]


def test_banner_then_blocks():
    items = read(BANNER + b"Response: Success\r\nActionID: t-1\r\n"
                 b"Message: Authentication accepted\r\n\r\n"
                 b"Event: FullyBooted\r\nPrivilege: system,all\r\nStatus: Fully Booted\r\n\r\n")
    assert isinstance(items[0], Banner)
    assert items[0].version == "11.0.0"
    assert items[1] == Message([("Response", "Success"), ("ActionID", "t-1"),
                                ("Message", "Authentication accepted")])
    assert items[2]["Status"] == "Fully Booted"
    assert len(items) == 3


def test_not_a_banner():
    [item] = read(b"SSH-2.0-OpenSSH_9.6\r\n")
    assert isinstance(item, Banner)
    assert item.version is None


def test_any_chunking_gives_the_same_blocks():
    data = BANNER + b"Event: A\r\nX: 1\r\n\r\nEvent: B\r\nY: 2\r\n\r\n"
    whole = read(data)
    bytewise = read(*[data[i:i + 1] for i in range(len(data))])
    assert messages(bytewise) == messages(whole)
    assert [m.event for m in messages(whole)] == ["A", "B"]


def test_lf_only_line_endings_and_no_space_after_colon():
    items = read(BANNER, b"Event: Hangup\nChannel:PJSIP/1-0001\nCause: 16\n\n")
    [msg] = messages(items)
    assert msg.items() == [("Event", "Hangup"), ("Channel", "PJSIP/1-0001"), ("Cause", "16")]


def test_repeated_headers_are_all_kept_in_order():
    [msg] = messages(read(BANNER, b"Event: VarSet\r\nChanVariable: A=1\r\nVariable: X=1\r\n"
                          b"ChanVariable: B=2\r\nVariable: X=2\r\n\r\n"))
    assert msg.getall("ChanVariable") == ["A=1", "B=2"]
    assert msg.getall("Variable") == ["X=1", "X=2"]


def test_values_keep_colons_and_inner_spacing():
    [msg] = messages(read(BANNER, b"Response: Success\r\nOutput:   indented: yes\r\n"
                          b"Output: \r\nTimestamp: 12:30:01\r\n\r\n"))
    assert msg.getall("Output") == ["  indented: yes", ""]
    assert msg["Timestamp"] == "12:30:01"


def test_blank_lines_between_blocks_are_ignored():
    items = read(BANNER, b"\r\n\r\nEvent: A\r\n\r\n\r\n\r\nEvent: B\r\n\r\n")
    assert [m.event for m in messages(items)] == ["A", "B"]
    assert not [i for i in items if isinstance(i, Malformed)]


def test_a_block_not_starting_with_a_header_is_malformed_and_skipped():
    items = read(BANNER, b"garbage without colon\r\nEvent: A\r\n\r\nEvent: B\r\n\r\n")
    assert isinstance(items[1], Malformed)
    assert items[1].lines == ["garbage without colon", "Event: A"]
    assert [m.event for m in messages(items)] == ["B"]


def test_a_block_that_is_neither_response_nor_event_is_malformed():
    items = read(BANNER, b"Foo: bar\r\n\r\n")
    assert isinstance(items[1], Malformed)
    assert messages(items) == []


def test_stray_lines_inside_a_block_are_dropped_and_reported():
    # e.g. a value holding a newline: the rest of the block still counts.
    items = read(BANNER, b"Event: Newexten\r\nAppData: first\r\nsecond half\r\n"
                 b"Uniqueid: 1.2\r\n\r\n")
    assert isinstance(items[1], Malformed)
    assert items[1].lines == ["second half"]
    assert items[2].items() == [("Event", "Newexten"), ("AppData", "first"),
                                ("Uniqueid", "1.2")]


def test_response_follows_output_becomes_output_headers():
    # Asterisk before 14: raw output ended by --END COMMAND--, blank lines kept.
    items = read(BANNER, b"Response: Follows\r\nPrivilege: Command\r\nActionID: t-4\r\n"
                 b"Channel: PJSIP/1\n\nline: 3\n--END COMMAND--\r\n\r\n"
                 b"Event: After\r\n\r\n")
    [msg, after] = messages(items)
    assert msg["ActionID"] == "t-4"
    assert msg.getall("Output") == ["Channel: PJSIP/1", "", "line: 3"]
    assert msg.getall("Channel") == []
    assert after.event == "After"


def test_end_command_glued_to_the_last_output_line():
    [msg] = messages(read(BANNER, b"Response: Follows\r\nActionID: t-5\r\n"
                          b"last line--END COMMAND--\r\n\r\n"))
    assert msg.getall("Output") == ["last line"]


def test_follows_without_output():
    items = read(BANNER, b"Response: Follows\r\nActionID: t-6\r\n\r\nEvent: Next\r\n\r\n")
    [msg, nxt] = messages(items)
    assert msg.action_id == "t-6"
    assert msg.getall("Output") == []
    assert nxt.event == "Next"


def test_undecodable_bytes_are_replaced():
    [msg] = messages(read(BANNER, b"Event: NewCallerid\r\nCallerIDName: M\xfcller\r\n\r\n"))
    assert msg["CallerIDName"] == "M\ufffdller"


def test_a_line_over_the_limit():
    reader = BlockReader(max_line=100)
    read(BANNER, reader=reader)
    with pytest.raises(BlockTooLarge):
        reader.feed(b"Event: X\r\nData: " + b"x" * 200)  # no end of line yet
    reader = BlockReader(max_line=100)
    with pytest.raises(BlockTooLarge):
        read(BANNER, b"Event: X\r\nData: " + b"x" * 200 + b"\r\n", reader=reader)


def test_a_block_over_the_limit():
    reader = BlockReader(max_line=100, max_block=1000)
    read(BANNER, reader=reader)
    with pytest.raises(BlockTooLarge):
        for _ in range(100):
            reader.feed(b"Variable: xxxxxxxxxxxxxxxxxxxx\r\n")


def test_a_large_block_within_the_limit():
    lines = b"".join(b"Output: line %d\r\n" % i for i in range(5000))
    [msg] = messages(read(BANNER, b"Response: Success\r\n" + lines + b"\r\n"))
    assert len(msg.getall("Output")) == 5000


# The fast path (whole blocks at once) against the line machine alone -------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


class LineMachineOnly(BlockReader):
    """The reader with its fast path turned off: the reference."""

    def _feedBlocks(self):
        return None


def described(items):
    out = []
    for item in items:
        if isinstance(item, Message):
            out.append(("message", item.items()))
        elif isinstance(item, Malformed):
            out.append(("malformed", item.reason, item.lines))
        else:
            out.append(("banner", item.text))
    return out


LINES = st.sampled_from([
    "Event: Newchannel", "Event: VarSet", "Response: Success", "Response: Error",
    "ActionID: t-7", "Privilege: call,all", "CallerIDName: 陈梅", "Value: ",
    "Value:", "Variable: A=1", "Variable: B=2", "Name:no-space", "Padded : name",
    " Leading: blank", "Message: a : b", "no colon at all", ": no name",
    "Output: 1 2 3", "Response: Follows", "Key:: colons", "Cause-txt: Normal Clearing",
    # Blanks that str.strip() removes around a name, inside a name, after the colon.
    "\x0bName: v", "Name\x0b: v", "Name\u3000: v", "\x1cName: v", "Two words: v",
    "Key:  two spaces", "Trailing: v ", "Name:x: y",
    # Kinds and ActionIDs in other cases, or not at a line's start.
    "EVENT: VarSet", "event:Hangup", "response: success", "actionid: t-8", "ActionId: t-9",
    "Message: see ActionID: t-1", "Value: a\rb",
    # Colons and ": " where a block cut at every ": " could go wrong.
    "Value: :", "Tail: x:", "Two: a: b", "Value: : ", "Spaces:   ", "NoColon",
])
BLOCKS = st.lists(st.lists(LINES, min_size=1, max_size=6), max_size=8)
ENDS = st.sampled_from([b"\r\n", b"\n"])


@settings(max_examples=300, deadline=None)
@given(BLOCKS, ENDS, st.integers(1, 64), st.booleans(), st.booleans())
def test_fast_path_reads_exactly_what_the_line_machine_reads(blocks, end, size, blank,
                                                             filtered):
    data = BANNER
    for block in blocks:
        data += b"".join(line.encode() + end for line in block) + end + (end if blank else b"")
    chunks = [data[i:i + size] for i in range(0, len(data), size)]
    fast, reference = BlockReader(), LineMachineOnly()
    if filtered:
        fast.event_filter = reference.event_filter = lambda name: name != "VarSet"
    assert described(read(*chunks, reader=fast)) == described(read(*chunks, reader=reference))


@pytest.mark.parametrize("lines", [
    ["Event: Hangup", "NoColon", "Two: a: b"],   # as many ": " as lines
    ["Event: Hangup", "Two: a: b", "NoColon"],
    ["Event: Hangup", "Tail: x:", "Value:", "Two: a: b"],
])
def test_lines_that_balance_each_others_cuts_are_read_as_the_line_machine_reads(lines):
    data = BANNER + "".join(line + "\r\n" for line in lines).encode() + b"\r\n"
    assert described(read(data, reader=BlockReader())) == described(
        read(data, reader=LineMachineOnly()))


def test_a_character_split_across_reads_is_kept():
    data = BANNER + "Event: Newchannel\r\nCallerIDName: 陈梅\r\n\r\n".encode()
    cut = data.index("梅".encode()) + 1
    [_, event] = read(data[:cut], data[cut:])
    assert event["CallerIDName"] == "陈梅"


def test_a_long_event_list_block_is_read_line_by_line():
    reader = BlockReader(max_line=100, max_block=100_000)
    body = b"".join(b"Output: line %d\r\n" % i for i in range(2000))
    data = BANNER + b"Response: Success\r\nActionID: t-2\r\n" + body + b"\r\n"
    items = read(*[data[i:i + 4096] for i in range(0, len(data), 4096)], reader=reader)
    assert len(messages(items)[0].getall("Output")) == 2000


def test_events_nobody_asked_for_are_not_built():
    reader = BlockReader()
    reader.event_filter = lambda name: name == "Hangup"
    items = read(BANNER + b"Event: VarSet\r\nValue: 1\r\n\r\n"
                 b"Event: Hangup\r\nUniqueid: 1.2\r\n\r\n"
                 b"Event: DBGetTreeResponse\r\nActionID: t-4\r\nKey: /a/b\r\n\r\n"
                 b"Response: Success\r\nActionID: t-5\r\n\r\n", reader=reader)
    kinds = [m.event or m.response for m in messages(items)]
    # Hangup asked for; a list's event answers an action; a response always.
    assert kinds == ["Hangup", "DBGetTreeResponse", "Success"]
