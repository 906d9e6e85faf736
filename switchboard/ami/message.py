"""
AMI messages: ordered headers with repeats, and their wire form.
"""

from __future__ import annotations

from collections.abc import Mapping

from switchboard.ami.errors import AMIArgumentError

_FORBIDDEN = ("\r", "\n", "\0")

# Asterisk writes these for "no value" (no channel was created, no caller ID).
NO_VALUE = ("<null>", "<unknown>")


class Message:
    """
    One AMI block: a response, an event or an action.

    Headers keep their order and repeats (C{Variable}, C{ChanVariable},
    C{Output} appear many times). Lookup by name ignores case, as Asterisk
    does, and the first of repeated headers wins.

    The names and the values are held in two sequences side by side (the
    reader's tuples, taken as they are): a message costs two containers
    rather than one tuple per header, which is most of what an event
    costs when Asterisk sends thousands a second. Lookups scan the names
    folded to lower case, folded once on the first lookup: a subscriber
    reads a few headers of an event, and scanning a few dozen names is
    cheaper than building a dictionary of them.

    @ivar events: for an action answered with an event list, the events
        of the list (without the closing event); otherwise empty.
    @ivar complete: for an event list, its closing event (C{EventList:
        Complete}, with C{ListItems}); otherwise L{None}.
    """

    __slots__ = ("_names", "_values", "_folded", "events", "complete")

    def __init__(self, headers=()):
        pairs = [(str(k), str(v)) for k, v in _pairs(headers)]
        self._names = [k for k, _ in pairs]
        self._values = [v for _, v in pairs]
        self._folded = None
        self.events = []
        self.complete = None

    @classmethod
    def from_columns(cls, names, values):
        """
        A message whose headers are C{names[i]: values[i]}: two sequences
        of strings of the same length (tuples or lists), taken as they
        are, with no copy (the reader's way).
        """
        message = cls.__new__(cls)
        message._names = names
        message._values = values
        message._folded = None
        message.events = []
        message.complete = None
        return message

    @classmethod
    def from_pairs(cls, pairs):
        """A message of C{pairs}, a list of C{(name, value)} strings."""
        if not pairs:
            return cls.from_columns([], [])
        names, values = zip(*pairs)
        return cls.from_columns(names, values)

    def _fold(self):
        folded = self._folded = tuple(map(str.lower, self._names))
        return folded

    # Mapping-like access

    def __getitem__(self, name):
        folded = self._folded or self._fold()
        try:
            return self._values[folded.index(name.lower())]
        except ValueError:
            raise KeyError(name) from None

    def get(self, name, default=None):
        """The first value of header C{name}, or C{default}."""
        folded = self._folded or self._fold()
        try:
            return self._values[folded.index(name.lower())]
        except ValueError:
            return default

    def getall(self, name):
        """Every value of header C{name}, in order (empty when absent)."""
        wanted = name.lower()
        folded = self._folded or self._fold()
        return [value for key, value in zip(folded, self._values) if key == wanted]

    def add(self, name, value):
        """Append a header (repeats are kept)."""
        if type(self._names) is not list:
            self._names, self._values = list(self._names), list(self._values)
        self._names.append(str(name))
        self._values.append(str(value))
        self._folded = None

    def items(self):
        """Every C{(name, value)} pair, in order, repeats included."""
        return list(zip(self._names, self._values))

    def keys(self):
        """Header names in order of first appearance, without repeats."""
        seen, names = set(), []
        for key, folded in zip(self._names, self._folded or self._fold()):
            if folded not in seen:
                seen.add(folded)
                names.append(key)
        return names

    def __contains__(self, name):
        return self.get(name) is not None

    def __iter__(self):
        return iter(self.keys())

    def __len__(self):
        return len(self._names)

    def __eq__(self, other):
        if not isinstance(other, Message):
            return NotImplemented
        return self.items() == other.items() and self.events == other.events

    def __repr__(self):
        return f"Message({self.items()!r})"

    # What kind of block

    @property
    def event(self):
        """The event name (C{Event} header), or L{None}."""
        return self.get("Event")

    @property
    def response(self):
        """The response status (C{Success}, C{Error}, ...), or L{None}."""
        return self.get("Response")

    @property
    def is_event(self):
        """
        Whether this is an event: its first header is C{Event} (an event
        such as C{OriginateResponse} carries a C{Response} header too).
        """
        if self._names:
            first = self._names[0].lower()
            if first == "event":
                return True
            if first == "response":
                return False
        return self.event is not None

    @property
    def action_id(self):
        """The C{ActionID} header, or L{None}."""
        return self.get("ActionID")

    def value(self, name):
        """
        Header C{name}, with Asterisk's placeholders for nothing
        (C{<null>}, C{<unknown>}) and an absent header as L{None}.
        """
        value = self.get(name)
        return None if value in NO_VALUE else value

    def encode(self) -> bytes:
        """The wire form: C{Name: value} lines and a blank line."""
        return encode(self.items())


def _pairs(headers):
    """
    C{(name, value)} pairs from a mapping or an iterable of pairs; a list or
    tuple value gives one header per item, L{None} omits the header,
    booleans are written C{true}/C{false}.
    """
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, (Mapping, Message)) else headers
    pairs = []
    add = pairs.append
    for name, value in items:
        if type(value) is str:  # most values: as they are
            add((name, value))
        elif value is None:
            continue
        elif isinstance(value, (list, tuple)):
            for item in value:
                if item is not None:
                    add((name, _text(item)))
        else:
            add((name, _text(value)))
    return pairs


def _text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def check_name(name):
    """Refuse a header name that could not be read back as written."""
    if not isinstance(name, str) or not name:
        raise AMIArgumentError(f"AMI header name must be a non-empty string, not {name!r}")
    if any(c in name for c in _FORBIDDEN) or ":" in name or name != name.strip():
        raise AMIArgumentError(f"AMI header name {name!r} contains CR, LF, NUL, ':' or blanks")


def check_value(name, value):
    """Refuse a header value that would end the header early."""
    if any(c in value for c in _FORBIDDEN):
        raise AMIArgumentError(f"AMI header {name!r} has a value containing CR, LF or NUL")


# Header names already found safe (a client sends the same few dozen).
_SAFE_NAMES: set = set()


def _check_pairs(pairs):
    """
    L{check_name} and L{check_value} for every pair, the same refusals:
    names seen before are not looked at again, and the values are scanned
    for CR, LF and NUL all at once (each pair is checked by itself only to
    name the one that is refused).
    """
    safe = _SAFE_NAMES
    for name, _ in pairs:
        if type(name) is not str or name not in safe:
            check_name(name)
            if len(safe) < 1024:
                safe.add(name)
    values = "".join([value for _, value in pairs])
    if "\r" in values or "\n" in values or "\0" in values:
        for name, value in pairs:
            check_value(name, value)


def normalise(headers):
    """
    Checked C{(name, value)} string pairs from the forms L{Message} accepts.

    @raise AMIArgumentError: a name or value cannot be sent safely.
    """
    pairs = _pairs(headers)
    _check_pairs(pairs)
    return pairs


def encode(pairs) -> bytes:
    """
    The wire form of checked header pairs.

    @raise AMIArgumentError: a name or value cannot be sent safely (checked
        again here: nothing unsafe is ever written).
    """
    lines = [f"{name}: {value}\r\n" for name, value in normalise(pairs)]
    lines.append("\r\n")
    return "".join(lines).encode("utf-8")


def action(name, headers=None, action_id=None) -> Message:
    """
    The L{Message} for action C{name}: C{Action}, then C{ActionID} (when
    given), then C{headers} in order.

    @raise AMIArgumentError: unsafe names or values, or C{headers} naming
        C{Action}/C{ActionID} themselves (the client owns them).
    """
    check_value("Action", _text(name))
    check_name(_text(name))  # an action name is a plain word as well
    pairs = normalise(headers)
    for key, _ in pairs:
        if key.lower() in ("action", "actionid"):
            raise AMIArgumentError(f"header {key!r} is set by the client, not by the caller")
    first = [("Action", _text(name))]
    if action_id is not None:
        first.append(("ActionID", _text(action_id)))
    return Message(first + pairs)
