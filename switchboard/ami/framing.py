"""
Cutting the bytes Asterisk sends into the banner and header blocks.
"""

from __future__ import annotations

from switchboard.ami.message import Message

BANNER_PREFIX = "Asterisk Call Manager/"
END_COMMAND = "--END COMMAND--"

# What a block's first header may be for the fast path to build it.
_KINDS = frozenset(("event", "response"))

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
        # Events nobody asked for: C{event_filter(name)} false (and no
        # ActionID) means the block is dropped before a Message is built.
        self.event_filter = None
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
        items = []
        while True:
            if not self._banner and not self._follows and not self._lines:
                blocks = self._feedBlocks()
                if blocks is not None:
                    items.extend(blocks)
                    if len(self._buffer) <= self.max_line or b"\n" not in self._buffer:
                        break
                    # else: a long block still coming: line by line
            if not self._feedLines(items):
                break
        self._checkPartial()
        return items

    def _feedLines(self, items):
        """
        The line machine: take complete lines off the buffer until a block
        ends (then the fast path may take over again). Returns whether the
        buffer may hold more to read.
        """
        buffer = self._buffer
        start = 0
        while True:
            end = buffer.find(b"\n", start)
            if end < 0:
                self._buffer = buffer[start:]
                return False
            raw = buffer[start:end]
            start = end + 1
            if len(raw) > self.max_line:
                raise BlockTooLarge(f"line of {len(raw)} bytes (limit {self.max_line})")
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            self._line(raw.decode("utf-8", "replace"), items)
            if not self._lines and not self._follows and not self._banner:
                self._buffer = buffer[start:]
                return True

    def _feedBlocks(self):
        """
        The fast path, between blocks: cut whole CRLF-terminated blocks out
        of the buffer at once, decode them in one go (a character split
        across reads stays in the buffer whole) and build each block's
        Message straight from its lines. Returns L{None}, having consumed
        nothing, when the line machine must take the data instead: bare LF
        line ends, an old-style C{Response: Follows}, or a line too long.
        """
        buffer = self._buffer
        end = buffer.rfind(b"\r\n\r\n")
        if end < 0:
            return None
        complete = buffer[:end]
        if (complete.count(b"\n") != complete.count(b"\r\n")
                or b"ollows" in complete or b"OLLOWS" in complete):
            return None
        max_line, max_block = self.max_line, self.max_block
        wanted = self.event_filter
        items = []
        for block in complete.decode("utf-8", "replace").split("\r\n\r\n"):
            if len(block) > max_line:
                if len(block) > max_block:
                    raise BlockTooLarge(f"block of more than {max_block} bytes")
                if any(len(line) > max_line for line in block.split("\r\n")):
                    raise BlockTooLarge(f"line of more than {max_line} bytes")
            if not block or block.startswith("\r\n") or block.endswith("\r\n"):
                # Blank lines between blocks.
                block = _strip_blank_lines(block)
                if not block:
                    continue
            if wanted is not None and not self._wantedBlock(block):
                continue
            message = _plain_block(block)
            if message is not None:
                items.append(message)
            else:
                items.extend(parse_block(block.split("\r\n")))
        self._buffer = buffer[end + 4:]
        return items

    def _wantedBlock(self, block):
        """L{_wanted} for a block's text (CRLF between its lines)."""
        if block[:6].lower() != "event:":
            return True
        end = block.find("\r\n")
        if self.event_filter(block[6:end if end >= 0 else len(block)].strip()):
            return True
        # A line starting with ActionID, in any case, as _wanted reads it.
        return "\nActionID:" in block or "\nactionid:" in block.lower()

    def _wanted(self, lines):
        """Whether a block is worth building: not an event nobody asked for."""
        first = lines[0]
        if first[:6].lower() != "event:" or self.event_filter(first[6:].strip()):
            return True
        return any(line[:9].lower() == "actionid:" for line in lines)

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
        if self.event_filter is None or self._wanted(lines):
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


def _plain_block(block):
    """
    The L{Message} of a block (CRLF between its lines, no bare LF) whose
    every line is C{Name: value}, as Asterisk writes them, the first being
    C{Event} or C{Response}; L{None} for anything else, which
    L{parse_block} reads.

    Cutting at the first C{": "} is what L{split_header} does when the
    name holds no colon and no blank (a name with blanks in it or around
    it, or a line without C{": "}, is left to L{parse_block}). This is the
    path every event Asterisk sends takes, so the block is cut with a few
    calls over the whole block rather than a call per line: each line end
    becomes a token of its own (C{"\\n"}, which no line holds) between the
    C{": "} cuts, so the tokens are name, value, C{"\\n"}, name, value, ...
    exactly when every line holds one C{": "}; a line with none or with
    more shifts the C{"\\n"} tokens out of every third place.
    """
    lines = block.count("\r\n") + 1
    tokens = block.replace("\r\n", ": \n: ").split(": ")
    if len(tokens) != 3 * lines - 1 or tokens[2::3].count("\n") != lines - 1:
        return None
    names = tokens[0::3]
    joined = "".join(names)
    # isprintable() is false for every blank str.strip() removes but " ".
    if ("" in names or ":" in joined or " " in joined or not joined.isprintable()
            or names[0].lower() not in _KINDS):
        return None
    return Message.from_columns(names, tokens[1::3])


def _strip_blank_lines(block):
    """C{block} without the blank lines (CRLF) at its start and end."""
    while block.startswith("\r\n"):
        block = block[2:]
    while block.endswith("\r\n"):
        block = block[:-2]
    return block


def parse_block(lines):
    """
    The items for one block's lines: a L{Message} (possibly preceded by a
    L{Malformed} reporting lines that were dropped), or a L{Malformed}.
    """
    headers, dropped = [], []
    for line in lines:
        # split_header, inlined: this runs for every header Asterisk sends.
        name, colon, value = line.partition(":")
        if colon and name and not name[0].isspace() and not name[-1].isspace():
            headers.append((name, value[1:] if value[:1] == " " else value))
            continue
        header = split_header(line)
        if header is None:
            if not headers and not dropped:
                return [Malformed(lines, "the block does not start with a header")]
            dropped.append(line)
        else:
            headers.append(header)
    message = Message.from_pairs(headers)
    if message.response is None and message.event is None:
        return [Malformed(lines, "neither a Response nor an Event")]
    if dropped:
        return [Malformed(dropped, "lines that are not headers were dropped"), message]
    return [message]
