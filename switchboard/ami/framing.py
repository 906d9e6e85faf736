"""
Cutting the bytes Asterisk sends into the banner and header blocks.
"""

from __future__ import annotations

from switchboard.ami.message import Message

BANNER_PREFIX = "Asterisk Call Manager/"
END_COMMAND = "--END COMMAND--"

# Headers that may precede the raw output of a "Response: Follows" block.
_FOLLOWS_HEADERS = frozenset(("actionid", "privilege", "message"))


class Banner:
    """
    The first line of a manager connection.

    @ivar text: the whole line.
    @ivar version: the protocol version after C{Asterisk Call Manager/}, or
        L{None} when the line is not a manager banner.
    """

    def __init__(self, text):
        self.text = text
        self.version = text[len(BANNER_PREFIX):] if text.startswith(BANNER_PREFIX) else None

    def __repr__(self):
        return f"Banner({self.text!r})"


class Malformed:
    """
    A block that is neither a response nor an event (skipped by the reader's
    user).

    @ivar lines: the block's lines.
    @ivar reason: why it was refused.
    """

    def __init__(self, lines, reason):
        self.lines = lines
        self.reason = reason

    def __repr__(self):
        return f"Malformed({self.reason!r}, {self.lines!r})"


class BlockTooLarge(Exception):
    """A line or a block exceeded the reader's limits; the link cannot be trusted."""


class BlockReader:
    """
    Turns received bytes into L{Banner}, L{Message} and L{Malformed} items.

    Lines end with CRLF or a bare LF. A blank line ends a block. Headers are
    C{Name: value} (the space after the colon is optional); the raw output of
    an old-style C{Response: Follows} block, up to C{--END COMMAND--}, becomes
    C{Output} headers, as Asterisk 14 and later send it.

    A block's lines without a colon are dropped (reported by a L{Malformed}
    item before the block's L{Message}) while its headers are kept; a block
    whose first line is not a header, or that is neither a response nor an
    event, is L{Malformed} as a whole.

    @param max_line: longest line accepted, in bytes.
    @param max_block: largest block accepted, in bytes.
    """

    def __init__(self, max_line=65536, max_block=4 * 1024 * 1024):
        self.max_line = max_line
        self.max_block = max_block
        self._buffer = b""
        self._banner = True
        self._lines = []
        self._size = 0
        self._follows = False
        self._output_started = False

    def feed(self, data: bytes):
        """
        Take C{data}; return the items it completes, in order.

        @raise BlockTooLarge: a line or block over the limits (the reader is
            then unusable: close the connection).
        """
        self._buffer += data
        if b"\n" not in data:
            self._checkPartial()
            return []
        *lines, self._buffer = self._buffer.split(b"\n")
        self._checkPartial()
        items = []
        for raw in lines:
            if len(raw) > self.max_line:
                raise BlockTooLarge(f"line of {len(raw)} bytes (limit {self.max_line})")
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            self._line(raw.decode("utf-8", "replace"), items)
        return items

    def _checkPartial(self):
        if len(self._buffer) > self.max_line:
            raise BlockTooLarge(f"line of more than {self.max_line} bytes")

    def _line(self, line, items):
        if self._banner:
            if line == "":
                return  # tolerate blank lines before the banner
            self._banner = False
            items.append(Banner(line))
            return
        if self._follows:
            self._followsLine(line, items)
            return
        if line == "":
            self._endBlock(items)
            return
        self._grow(line)
        self._lines.append(line)
        if len(self._lines) == 1 and _is_follows(line):
            self._follows = True
            self._output_started = False

    def _followsLine(self, line, items):
        if line.endswith(END_COMMAND):
            rest = line[: -len(END_COMMAND)]
            if rest:
                self._addOutput(rest)
            self._follows = False  # the blank line after it ends the block
            return
        if not self._output_started:
            header = split_header(line)
            if header is not None and header[0].lower() in _FOLLOWS_HEADERS:
                self._grow(line)
                self._lines.append(line)
                return
            if line == "":
                # Headers only, no output and no terminator: a plain block.
                self._follows = False
                self._endBlock(items)
                return
        self._addOutput(line)

    def _addOutput(self, text):
        self._output_started = True
        line = "Output: " + text
        self._grow(line)
        self._lines.append(line)

    def _grow(self, line):
        self._size += len(line) + 2
        if self._size > self.max_block:
            raise BlockTooLarge(f"block of more than {self.max_block} bytes")

    def _endBlock(self, items):
        lines, self._lines, self._size = self._lines, [], 0
        if not lines:
            return  # blank lines between blocks
        items.extend(parse_block(lines))


def _is_follows(line):
    header = split_header(line)
    return (
        header is not None
        and header[0].lower() == "response"
        and header[1].lower() == "follows"
    )


def split_header(line):
    """
    C{(name, value)} from C{Name: value} (or C{Name:value}); L{None} when
    the line is not a header. One space after the colon is separator, any
    further ones are part of the value (command output keeps its indent).
    """
    name, colon, value = line.partition(":")
    name = name.strip()
    if not colon or not name:
        return None
    if value.startswith(" "):
        value = value[1:]
    return name, value


def parse_block(lines):
    """
    The items for one block's lines: a L{Message} (possibly preceded by a
    L{Malformed} reporting lines that were dropped), or a L{Malformed}.
    """
    first = split_header(lines[0])
    if first is None:
        return [Malformed(lines, "the block does not start with a header")]
    headers, dropped = [], []
    for line in lines:
        header = split_header(line)
        if header is None:
            dropped.append(line)
        else:
            headers.append(header)
    message = Message(headers)
    if message.response is None and message.event is None:
        return [Malformed(lines, "neither a Response nor an Event")]
    if dropped:
        return [Malformed(dropped, "lines that are not headers were dropped"), message]
    return [message]
