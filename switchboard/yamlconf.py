"""
YAML loading that remembers where every value came from.

Staff edit routing and alarm files by hand, so every complaint about them
names the file, line and column, the key, and what would be right.
L{load} returns plain Python containers (L{LocatedDict}, L{LocatedList} and
scalars); the containers carry the position of each of their keys and items.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import NamedTuple

import yaml


class Location(NamedTuple):
    """A place in a file: 1-based line and column."""

    path: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}"


@dataclass
class Problem:
    """One thing wrong with a configuration file."""

    location: Location | None
    key: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        where = str(self.location) if self.location else "?"
        text = f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text


class ConfigError(Exception):
    """A configuration file was refused; C{problems} lists every reason."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    def __reduce__(self):
        return (type(self), (self.problems,))


class LocatedDict(dict):
    """A mapping that knows where it and each of its keys stand in the file."""

    location: Location | None = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.key_locations: dict = {}
        self.value_locations: dict = {}

    def where(self, key) -> Location | None:
        """The location of C{key}'s value (or of the key), else of this mapping."""
        return self.value_locations.get(key) or self.key_locations.get(key) or self.location


class LocatedList(list):
    """A sequence that knows where it and each of its items stand in the file."""

    location: Location | None = None

    def __init__(self, *args):
        super().__init__(*args)
        self.item_locations: list = []

    def where(self, index: int) -> Location | None:
        if 0 <= index < len(self.item_locations):
            return self.item_locations[index]
        return self.location


# libyaml's parser when present: a routing file of thousands of destinations
# parses several times faster, with the same marks.
_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):
    """SafeLoader (libyaml's when present) used to compose nodes and resolve scalars."""


_STR, _MAP, _SEQ, _MERGE = ("tag:yaml.org,2002:" + t for t in ("str", "map", "seq", "merge"))
_PLAIN_KEY = (str, int, float, bool, type(None))


class _Builder:
    """
    Python values from composed YAML nodes: containers are L{LocatedDict}
    and L{LocatedList} that know where their parts are; duplicate keys are
    noted, not kept. A node reached again through an alias is built once;
    an alias inside itself is refused.
    """

    def __init__(self, loader, path: str):
        self.loader = loader
        self.path = path
        self.duplicates: list[Problem] = []
        self._built: dict = {}
        self._open: set = set()

    def build(self, node):
        tag = node.tag
        if tag == _STR and node.__class__ is yaml.ScalarNode:
            return node.value
        key = id(node)
        if key in self._built:
            return self._built[key]
        if key in self._open:
            raise yaml.constructor.ConstructorError(
                None, None, "an alias may not refer to a value inside itself", node.start_mark)
        self._open.add(key)
        if tag == _MAP and isinstance(node, yaml.MappingNode):
            value = self._mapping(node)
        elif tag == _SEQ and isinstance(node, yaml.SequenceNode):
            value = self._sequence(node)
        else:
            value = self.loader.construct_object(node, deep=True)
        self._open.discard(key)
        self._built[key] = value
        return value

    def _where(self, node) -> Location:
        mark = node.start_mark
        return Location(self.path, mark.line + 1, mark.column + 1)

    def _mapping(self, node) -> LocatedDict:
        mapping = LocatedDict()
        mapping.location = self._where(node)
        key_locations, value_locations = mapping.key_locations, mapping.value_locations
        own = sum(1 for key_node, _ in node.value if key_node.tag != _MERGE)
        self.loader.flatten_mapping(node)  # "<<" merge keys: merged pairs come first
        merged = len(node.value) - own
        written = set()  # keys written in this mapping itself (not merged in)
        for index, (key_node, value_node) in enumerate(node.value):
            if (key_node.__class__ is not yaml.ScalarNode
                    or not isinstance(key := self.build(key_node), _PLAIN_KEY)):
                raise yaml.constructor.ConstructorError(
                    None, None, "a key must be a plain value", key_node.start_mark)
            where = self._where(key_node)
            if index >= merged:
                if key in written:
                    self.duplicates.append(Problem(
                        where, str(key),
                        f"duplicate key (first at line {key_locations[key].line})",
                        "remove one of them"))
                    continue
                written.add(key)
            mapping[key] = self.build(value_node)  # a key written here outdoes a merged one
            key_locations[key] = where
            value_locations[key] = self._where(value_node)
        return mapping

    def _sequence(self, node) -> LocatedList:
        sequence = LocatedList()
        sequence.location = self._where(node)
        for item in node.value:
            sequence.append(self.build(item))
            sequence.item_locations.append(self._where(item))
        return sequence


# Times like 08:30 must stay text, not YAML 1.1 base-60 integers.
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:int"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0x[0-9a-fA-F_]+|[-+]?(?:0|[1-9][0-9_]*))$"),
    list("-+0123456789"))


def loads(text: str, path: str = "<string>"):
    """Parse YAML C{text}; raise L{ConfigError} with the location of any syntax error."""
    loader = _Loader(text)
    builder = _Builder(loader, path)
    try:
        node = loader.get_single_node()
        data = builder.build(node) if node is not None else None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        location = Location(path, mark.line + 1, mark.column + 1) if mark else None
        raise ConfigError([Problem(location, "", f"YAML syntax: {e.problem or e.context}")])
    except yaml.YAMLError as e:
        raise ConfigError([Problem(Location(path, 1, 1), "", f"YAML: {e}")])
    finally:
        loader.dispose()
    if builder.duplicates:
        raise ConfigError(builder.duplicates)
    return data


def decode(raw: bytes, path: str) -> str:
    """The text of file C{path}, whose bytes are C{raw}; L{ConfigError} if not UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError([Problem(Location(path, 1, 1), "", f"not UTF-8 text: {e}")])


#: The largest configuration file read. A routing file for the biggest
#: community is well under 1 MiB; without a limit a 300 MB file was read
#: whole (and then parsed) by the server.
MAX_FILE_BYTES = 8 * 1024 ** 2


def read_bytes(path: str, limit: int | None = None) -> bytes:
    """
    The bytes of the file at C{path}, refused with a L{ConfigError} when
    larger than C{limit} (L{MAX_FILE_BYTES}): its size is checked before it
    is read, and no more than the limit is read of a file still growing.
    """
    limit = MAX_FILE_BYTES if limit is None else limit
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            raw = f.read(limit + 1) if size <= limit else b""
    except OSError as e:
        raise ConfigError([Problem(None, "", f"cannot read {path}: {e.strerror}")])
    if size > limit or len(raw) > limit:
        raise ConfigError([Problem(Location(path, 1, 1), "",
                                   f"the file has {max(size, len(raw))} bytes, more than the "
                                   f"{limit} a configuration file may have")])
    return raw


def load(path: str):
    """Read (within L{MAX_FILE_BYTES}) and parse the YAML file at C{path} (UTF-8)."""
    raw = read_bytes(path)
    return loads(decode(raw, path), path)


@dataclass
class Checker:
    """
    Collects problems while a validator walks a located document, so that a
    file with five mistakes is reported with five messages, not one.
    """

    problems: list[Problem] = field(default_factory=list)

    def add(self, location, key: str, message: str, hint: str = "") -> None:
        self.problems.append(Problem(location, key, message, hint))

    def mapping(self, value, key: str, location=None, *, allowed=None, required=()):
        """Check C{value} is a mapping with only C{allowed} and all C{required} keys."""
        if not isinstance(value, dict):
            self.add(getattr(value, "location", None) or location, key,
                     f"must be a mapping, not {_kind(value)}")
            return LocatedDict()
        for name in required:
            if name not in value:
                self.add(getattr(value, "location", location), key,
                         f"missing required key '{name}'")
        if allowed is not None:
            for name in value:
                if name not in allowed:
                    where = value.key_locations.get(name) if isinstance(value, LocatedDict) else location
                    if isinstance(name, bool):
                        # YAML 1.1 reads a bare on/off/yes/no as true/false.
                        self.add(where, f"{key}.{name}" if key else str(name),
                                 f"a key written on, off, yes or no is read as {name} by YAML",
                                 "quote it ('on') if it is a name; " + _suggest(str(name), allowed))
                        continue
                    self.add(where, f"{key}.{name}" if key else str(name), "unknown key",
                             _suggest(str(name), allowed))
        return value

    def typed(self, mapping, name: str, types, key: str, default=None, what: str | None = None):
        """Return C{mapping[name]} if it has one of C{types}, else record a problem."""
        if name not in mapping:
            return default
        value = mapping[name]
        if isinstance(value, bool) and bool not in _astuple(types):
            ok = False
        else:
            ok = isinstance(value, types)
        if not ok:
            where = mapping.where(name) if isinstance(mapping, LocatedDict) else None
            self.add(where, key, f"must be {what or _typename(types)}, not {_kind(value)}")
            return default
        return value

    def raise_if_any(self) -> None:
        if self.problems:
            raise ConfigError(self.problems)


def _astuple(types):
    return types if isinstance(types, tuple) else (types,)


def _typename(types) -> str:
    names = {str: "text", int: "a whole number", float: "a number", bool: "true or false",
             list: "a list", dict: "a mapping"}
    return " or ".join(names.get(t, t.__name__) for t in _astuple(types))


def _kind(value) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    return f"{type(value).__name__} {value!r}"


def _suggest(name: str, allowed) -> str:
    import difflib
    close = difflib.get_close_matches(name, list(allowed), n=1)
    if close:
        return f"did you mean '{close[0]}'?"
    return "allowed: " + ", ".join(sorted(map(str, allowed)))
