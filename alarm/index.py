"""
The hot caller index: which household is calling, from memory.

An alarm call must not wait for the database, so every form in which the
exchange may present a registered landline (L{NumberPlan.variants}) maps to a
compact snapshot of its household: address, notes and the neighbours' numbers
in ring-group order. The index is built from the database on a thread at
start-up, and refreshed (only the households whose revision changed) when the
registry version moves.

Memory matters at 200,000 households (1.2 million caller-ID forms): the forms
are kept as two sorted arrays of machine integers (form -> household id,
searched by bisection) rather than a dictionary of strings; snapshots use
C{__slots__} and share interned numbers and address parts.
"""

from __future__ import annotations

import sys
from array import array
from bisect import bisect_left

from sqlalchemy import select
from twisted.internet import defer
from twisted.logger import Logger

from alarm.models import Household, HouseholdNumber, Neighbour, format_address
from alarm.registry import read_version

_SEPARATORS = str.maketrans("", "", " -().\u00a0\u3000")
_intern = sys.intern
_MAX_DIGITS = 17  # "00" + 15 E.164 digits; with the marker digit it fits a signed 64-bit int


def form_key(text: str) -> int | None:
    """
    A caller-ID form as an integer that keeps it distinct (leading zeros and
    a leading C{+} included), or None if it is not a plain digit string.
    """
    marker = "1"
    if text[:1] == "+":
        marker, text = "2", text[1:]
    if not (text.isascii() and text.isdigit()) or len(text) > _MAX_DIGITS:
        return None
    return int(marker + text)


class HouseholdSnapshot:
    """What the alarm path needs to know about one household, read-only."""

    __slots__ = ("id", "revision", "community", "building", "unit", "room", "notes",
                 "numbers", "neighbours", "residents")

    def __init__(self, id, revision, community, building, unit, room, notes, numbers,
                 neighbours, residents=""):
        self.id = id
        self.revision = revision
        self.community = community
        self.building = building
        self.unit = unit
        self.room = room
        self.notes = notes
        self.numbers = numbers        # the household's landlines, E.164
        self.neighbours = neighbours  # E.164, ring-group order, never its own numbers
        self.residents = residents    # who lives there (said to the neighbours)

    @property
    def address(self) -> str:
        return format_address(self.community, self.building, self.unit, self.room)

    def __repr__(self) -> str:
        return f"<HouseholdSnapshot {self.id} {self.address!r} {len(self.neighbours)} neighbours>"


class SnapshotBuilder:
    """Reads households from a database session into snapshots (runs on a thread)."""

    def __init__(self, numbers, *, max_neighbours=None):
        self.numbers = numbers
        self.max_neighbours = max_neighbours

    def build(self, session, ids=None) -> list:
        """Snapshots of every household, or of those in C{ids}, by id."""
        out = []
        for chunk in ([None] if ids is None else _chunks(sorted(ids), 500)):
            out += self._build(session.connection(), chunk)
        return out

    def _build(self, connection, ids) -> list:
        h = select(Household.id, Household.revision, Household.community, Household.building,
                   Household.unit, Household.room, Household.notes,
                   Household.residents).order_by(Household.id)
        n = select(HouseholdNumber.household_id, HouseholdNumber.number) \
            .order_by(HouseholdNumber.household_id, HouseholdNumber.position)
        b = select(Neighbour.household_id, Neighbour.number) \
            .order_by(Neighbour.household_id, Neighbour.position)
        if ids is not None:
            h = h.where(Household.id.in_(ids))
            n = n.where(HouseholdNumber.household_id.in_(ids))
            b = b.where(Neighbour.household_id.in_(ids))
        # Three streams in household order, merged: no big intermediate tables.
        own = _Grouped(connection.execute(n))
        ring = _Grouped(connection.execute(b))
        out = []
        for hid, revision, community, building, unit, room, notes, residents \
                in connection.execute(h):
            numbers = tuple(_intern(x) for x in own.take(hid))
            neighbours = tuple(_intern(x) for x in ring.take(hid) if x not in numbers)
            if self.max_neighbours is not None:
                neighbours = neighbours[:self.max_neighbours]
            out.append(HouseholdSnapshot(
                hid, revision, _intern(community or ""), _intern(building or ""),
                _intern(unit or ""), _intern(room or ""), _intern(notes or ""),
                numbers, neighbours, residents or ""))
        return out

    def keys(self, snapshot) -> list:
        """The integer keys of every caller-ID form of C{snapshot}'s landlines."""
        out = []
        for number in snapshot.numbers:
            for form in self.numbers.variants(number):
                key = form_key(form)
                if key is not None:
                    out.append(key)
        return out


class _Grouped:
    """Rows (household id, value) in household order, taken one household at a time."""

    def __init__(self, rows):
        self._rows = iter(rows)
        self._next = next(self._rows, None)

    def take(self, hid) -> list:
        out = []
        while self._next is not None and self._next[0] <= hid:
            if self._next[0] == hid:
                out.append(self._next[1])
            self._next = next(self._rows, None)
        return out


class CallerTable:
    """Sorted caller-ID keys and the household id of each; immutable once built."""

    __slots__ = ("keys", "ids")

    def __init__(self, pairs=()):
        pairs = sorted(pairs)
        self.keys = array("q", [k for k, _ in pairs])
        self.ids = array("q", [i for _, i in pairs])

    def __len__(self) -> int:
        return len(self.keys)

    def get(self, key: int):
        i = bisect_left(self.keys, key)
        if i < len(self.keys) and self.keys[i] == key:
            return self.ids[i]
        return None

    def replacing(self, dropped_ids, pairs) -> "CallerTable":
        """A new table without the forms of C{dropped_ids}, plus C{pairs}."""
        kept = [(k, i) for k, i in zip(self.keys, self.ids) if i not in dropped_ids]
        return CallerTable(kept + list(pairs))


class CallerIndex:
    """
    Caller ID -> L{HouseholdSnapshot}, in memory.

    L{lookup} and L{get} never touch the database. L{load} and L{refresh}
    read it on the database's thread pool and swap the result in on the
    reactor thread; they run one at a time.
    """

    log = Logger()

    def __init__(self, database, numbers, *, max_neighbours=None, full_reload_over=20000):
        self.database = database
        self.numbers = numbers
        self.builder = SnapshotBuilder(numbers, max_neighbours=max_neighbours)
        self.full_reload_over = full_reload_over
        self.version = None
        self._table = CallerTable()
        self._by_id: dict = {}
        self._lock = defer.DeferredLock()

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self):
        return iter(list(self._by_id.values()))

    def forms(self) -> int:
        """How many caller-ID forms are indexed."""
        return len(self._table)

    def lookup(self, caller) -> HouseholdSnapshot | None:
        """The household calling from C{caller} (a caller ID as presented), or None."""
        if not caller:
            return None
        text = str(caller).strip().translate(_SEPARATORS)
        snapshot = self.exact(text)
        if snapshot is None and text:
            # A form the exchange was not expected to use: normalise it.
            e164 = self.numbers.try_normalise(text)
            snapshot = self.exact(e164) if e164 else None
        return snapshot

    def exact(self, form: str) -> HouseholdSnapshot | None:
        """The household with a landline of exactly this caller-ID form (as in AstDB)."""
        key = form_key(form)
        hid = self._table.get(key) if key is not None else None
        return self._by_id.get(hid) if hid is not None else None

    def get(self, household_id) -> HouseholdSnapshot | None:
        return self._by_id.get(household_id)

    def load(self) -> defer.Deferred:
        """Build the whole index again; fires with the number of households."""
        return self._lock.run(self._load)

    def _load(self):
        def work(session):
            version = read_version(session)
            snapshots = self.builder.build(session)
            table = CallerTable((k, s.id) for s in snapshots for k in self.builder.keys(s))
            return version, snapshots, table

        return self.database.run(work).addCallback(self._replace)

    def _replace(self, result):
        version, snapshots, table = result
        self._by_id = {s.id: s for s in snapshots}
        self._table, self.version = table, version
        self.log.info("caller index: {count} households, {forms} caller-ID forms (version {v})",
                      count=len(self._by_id), forms=len(table), v=version)
        return len(self._by_id)

    def refresh(self) -> defer.Deferred:
        """
        Take in the households changed since the last load or refresh. Fires
        with a list of (old snapshot or None, new snapshot or None), empty if
        nothing changed, or None when the whole index was rebuilt.
        """
        return self._lock.run(self._refresh)

    def _refresh(self):
        by_id, table, since = self._by_id, self._table, self.version

        def work(session):
            version = read_version(session)
            if version == since:
                return version, [], [], None
            current = dict(session.execute(select(Household.id, Household.revision)).all())
            removed = [hid for hid in by_id if hid not in current]
            changed = [hid for hid, rev in current.items()
                       if hid not in by_id or by_id[hid].revision != rev]
            if len(changed) + len(removed) > self.full_reload_over:
                snapshots = self.builder.build(session)
                return version, None, snapshots, CallerTable(
                    (k, s.id) for s in snapshots for k in self.builder.keys(s))
            snapshots = self.builder.build(session, changed) if changed else []
            rekeyed = set(removed)
            pairs = []
            for s in snapshots:
                old = by_id.get(s.id)
                if old is None or old.numbers != s.numbers:
                    rekeyed.add(s.id)
                    pairs += [(k, s.id) for k in self.builder.keys(s)]
            new_table = table.replacing(rekeyed, pairs) if rekeyed else None
            return version, removed, snapshots, new_table

        return self.database.run(work).addCallback(self._apply)

    def _apply(self, result):
        version, removed, snapshots, table = result
        if removed is None:
            self._replace((version, snapshots, table))
            return None
        changes = []
        for hid in removed:
            old = self._by_id.pop(hid, None)
            if old is not None:
                changes.append((old, None))
        for snapshot in snapshots:
            changes.append((self._by_id.get(snapshot.id), snapshot))
            self._by_id[snapshot.id] = snapshot
        if table is not None:
            self._table = table
        self.version = version
        if changes:
            self.log.info("caller index: {n} households changed (version {v})",
                          n=len(changes), v=version)
        return changes


def _chunks(items, size):
    for start in range(0, len(items), size):
        yield items[start:start + size]
