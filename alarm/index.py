"""
The hot caller index: which household is calling, from memory.

An alarm call must not wait for the database, so every form in which the
exchange may present a registered landline (L{NumberPlan.variants}) maps to a
compact snapshot of its household: address, notes and the neighbours' numbers
in ring-group order. The index is built from the database on a thread at
start-up, and refreshed (only the households whose revision changed) when the
registry version moves.

Memory matters at 200,000 households (1.2 million caller-ID forms): the forms
are kept as two sorted arrays of machine integers (form -> position of the
household's snapshot in a list ordered by id, searched by bisection) rather
than dictionaries; snapshots use C{__slots__}, keep their own and their
neighbours' numbers in one tuple, and share number strings and address parts
within a build. 85 MiB at 200,000 households (C{python -m bench.alarm_lookup}).
"""

from __future__ import annotations

import ctypes
import gc
import sys
import threading
from array import array
from bisect import bisect_left, bisect_right
from functools import lru_cache
from itertools import chain
from operator import attrgetter

from sqlalchemy import select
from twisted.internet import defer
from twisted.logger import Logger

from switchboard.community.models import Household, HouseholdNumber, Neighbour, format_address
from switchboard.community.registry import read_version

_SEPARATORS = str.maketrans("", "", " -().\u00a0\u3000")
_ID = attrgetter("id")
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
    """
    What the alarm path needs to know about one household, read-only.

    The household's own numbers and its neighbours' are kept in one tuple
    (L{numbers} and L{neighbours} are slices of it): a second tuple for
    the usual single landline cost 8 MiB at 200,000 households.
    """

    __slots__ = ("id", "revision", "community", "building", "unit", "room", "notes",
                 "_lines", "_own", "residents")

    def __init__(self, id, revision, community, building, unit, room, notes, numbers,
                 neighbours, residents=""):
        self.id = id
        self.revision = revision
        self.community = community
        self.building = building
        self.unit = unit
        self.room = room
        self.notes = notes
        self.residents = residents    # who lives there (said to the neighbours)
        self._lines = (*numbers, *neighbours)
        self._own = len(numbers)

    @property
    def numbers(self) -> tuple:
        """The household's landlines, E.164."""
        return self._lines[:self._own]

    @property
    def neighbours(self) -> tuple:
        """E.164, ring-group order, never the household's own numbers."""
        return self._lines[self._own:]

    @property
    def address(self) -> str:
        return format_address(self.community, self.building, self.unit, self.room)

    def __repr__(self) -> str:
        return f"<HouseholdSnapshot {self.id} {self.address!r} {len(self.neighbours)} neighbours>"


class SnapshotBuilder:
    """
    Reads households from a database session into snapshots (runs on a thread).

    The numbers of one build are shared through a dictionary of its own
    (the same string object wherever a number appears) rather than
    L{sys.intern}, whose table would keep ~10 MiB for 200,000 households
    for as long as the server runs.
    """

    def __init__(self, numbers, *, max_neighbours=None):
        self.numbers = numbers
        self.max_neighbours = max_neighbours
        # The forms of the plan's own country, worked out with string
        # operations (L{variants}); phonenumbers' parse took half the load.
        import phonenumbers
        cc = phonenumbers.country_code_for_region(numbers.region)
        self._home = f"+{cc}" if cc else None
        self._area = numbers.area_code or ""

    def variants(self, e164: str) -> list:
        """
        C{self.numbers.variants(e164)}, without parsing an E.164 number of
        the plan's own country: its national number is what follows the
        country code (country codes are prefix-free; a national number
        with a leading zero, as Italy's, goes the slow way).
        """
        home = self._home
        if home is None or not e164.startswith(home):
            return self.numbers.variants(e164)
        national = e164[len(home):]
        if not (national.isascii() and national.isdigit()) or national[0] == "0":
            return self.numbers.variants(e164)
        bare = e164[1:]
        forms = [e164, bare, "00" + bare, national, "0" + national]
        if self._area and national.startswith(self._area):
            forms.append(national[len(self._area):])
        return list(dict.fromkeys(forms))

    def build(self, session, ids=None, pace=None) -> list:
        """
        Snapshots of every household, or of those in C{ids}, by id;
        C{pace()} is called every 64 households (~1 ms).
        """
        out, shared = [], {}
        for chunk in ([None] if ids is None else _chunks(sorted(ids), 500)):
            out += self._build(session.connection(), chunk, shared.setdefault, pace)
        return out

    def _build(self, connection, ids, share, pace) -> list:
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
            if pace is not None and not len(out) % 64:
                pace()
            numbers = [share(x, x) for x in own.take(hid)]
            neighbours = [share(x, x) for x in ring.take(hid) if x not in numbers]
            if self.max_neighbours is not None:
                neighbours = neighbours[:self.max_neighbours]
            out.append(HouseholdSnapshot(
                hid, revision, share(community or "", community or ""),
                share(building or "", building or ""), share(unit or "", unit or ""),
                share(room or "", room or ""), share(notes or "", notes or ""),
                numbers, neighbours, residents or ""))
        return out

    def keys(self, snapshot) -> list:
        """The integer keys of every caller-ID form of C{snapshot}'s landlines."""
        out = []
        for number in snapshot.numbers:
            for form in self.variants(number):
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
    """
    Sorted caller-ID keys and a value of each (the position of the
    household's snapshot in the index); immutable once built. A key held
    by several households answers with the smallest value.
    """

    __slots__ = ("keys", "values")

    def __init__(self, pairs=(), pace=None):
        """
        @param pace: called between steps of the build (a load's L{CallerIndex._pace}).
        """
        pairs = list(pairs)  # emptied as it is sorted (L{_sorted_runs})
        wide = any(not -2 ** 31 <= v < 2 ** 31 for _, v in pairs)
        keys, values = array("q"), array("q" if wide else "i")
        for run in _sorted_runs(pairs, pace):
            keys.extend([k for k, _ in run])
            values.extend([v for _, v in run])
        # 32-bit values while they fit (always, for positions): 4.6 MiB less at 200,000.
        self.keys, self.values = keys, values

    def __len__(self) -> int:
        return len(self.keys)

    def get(self, key: int):
        i = bisect_left(self.keys, key)
        if i < len(self.keys) and self.keys[i] == key:
            return self.values[i]
        return None

    def remapped(self, mapping, pairs=(), pace=None) -> "CallerTable":
        """
        A new table whose values are C{mapping[value]}, without the keys
        whose value maps to -1, plus C{pairs}.
        """
        kept = ((k, m) for k, m in zip(self.keys, map(mapping.__getitem__, self.values))
                if m >= 0)
        # One list of the pairs, the new table's, freed as it is sorted.
        return CallerTable(chain(kept, pairs), pace)


class CallerIndex:
    """
    Caller ID -> L{HouseholdSnapshot}, in memory.

    L{lookup} and L{get} never touch the database. L{load} and L{refresh}
    read it on the database's thread pool and swap the result in on the
    reactor thread; they run one at a time. Until the first L{load} has
    ended (L{loaded}), L{find} answers from the database instead, so that
    the FastAGI port need not wait for the load (~5 s at 200,000
    households).

    The snapshots are kept in a list in household-id order; the caller
    table maps each caller-ID form to a position in it (no dictionary by
    id: 10 MiB at 200,000 households).
    """

    log = Logger()

    def __init__(self, database, numbers, *, max_neighbours=None, full_reload_over=20000,
                 settle=False):
        """
        @param settle: leave what a load builds out of the garbage
            collector's passes (C{gc.freeze()}, as L{switchboard.service.settle_memory}
            does before the FastAGI port opens): the index of 200,000
            households made each full pass take ~70 ms. It has no cycles;
            what it drops is freed by reference counting all the same.
        """
        self.settle = settle
        self.database = database
        self.numbers = numbers
        self.builder = SnapshotBuilder(numbers, max_neighbours=max_neighbours)
        self.full_reload_over = full_reload_over
        self.version = None
        self.loaded = False
        self._table = CallerTable()
        self._rows: list = []  # snapshots by id; replaced, never changed in place
        self._lock = defer.DeferredLock()
        self._pauses = 0
        self._may_build = threading.Event()  # cleared while an alarm needs the interpreter
        self._may_build.set()

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self):
        return iter(self._rows)

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
        position = self._table.get(key) if key is not None else None
        return self._rows[position] if position is not None else None

    def get(self, household_id) -> HouseholdSnapshot | None:
        rows = self._rows
        i = bisect_left(rows, household_id, key=_ID)
        return rows[i] if i < len(rows) and rows[i].id == household_id else None

    def find(self, caller) -> defer.Deferred:
        """
        L{lookup}, as a Deferred: from memory once L{loaded}, before that
        from the database on its thread pool, with the same answer the
        loaded index would give.
        """
        if self.loaded:
            return defer.succeed(self.lookup(caller))
        if not caller:
            return defer.succeed(None)
        text = str(caller).strip().translate(_SEPARATORS)
        # phonenumbers on the reactor, as L{lookup} does (and cached there).
        e164 = self.numbers.try_normalise(text) if text else None
        resume = self.pause_load()
        d = self.database.run(lambda session: self._find(session, text, e164))
        d.addBoth(lambda result: (resume(), result)[1])
        return d

    def _find(self, session, text, e164):
        """On a pool thread: the household whose forms hold C{text}, else C{e164}'s."""
        candidates = set(self._owners(text)) if form_key(text) is not None else set()
        if e164:
            candidates.add(e164)
        if not candidates:
            return None
        rows = session.execute(
            select(HouseholdNumber.household_id, HouseholdNumber.number)
            .where(HouseholdNumber.number.in_(sorted(candidates)))).all()
        # As L{lookup}: an exact form first, the smallest id among several.
        key = form_key(text)
        exact = [hid for hid, number in rows if key is not None and key in
                 {form_key(f) for f in self.builder.variants(number)}]
        normalised = [hid for hid, number in rows if number == e164]
        hid = min(exact) if exact else min(normalised) if normalised else None
        if hid is None:
            return None
        found = self.builder.build(session, [hid])
        return found[0] if found else None

    def _owners(self, text):
        """The E.164 numbers among whose L{SnapshotBuilder.variants} C{text} may be."""
        builder = self.builder
        yield text if text.startswith("+") else "+" + text
        if text.startswith("00"):
            yield "+" + text[2:]
        if builder._home:
            yield builder._home + text
            if text.startswith("0"):
                yield builder._home + text[1:]
            if builder._area:
                yield builder._home + builder._area + text

    def pause_load(self):
        """
        Hold a load or refresh building on its thread (at its next step,
        within ~1 ms) until the returned function is called: a #9 served
        meanwhile has the interpreter to itself, not every other slice of
        it. A pause ends by itself after L{longest_pause} seconds.
        """
        self._pauses += 1
        self._may_build.clear()
        resumed = []

        def resume():
            if not resumed:
                resumed.append(True)
                self._pauses -= 1
                if not self._pauses:
                    self._may_build.set()

        return resume

    #: Seconds a build waits at most for L{pause_load}'s resume.
    longest_pause = 2.0

    def _pace(self):
        """On the building thread: wait while paused (L{pause_load})."""
        if not self._may_build.is_set():
            self._may_build.wait(self.longest_pause)

    def households(self, ids) -> defer.Deferred:
        """
        Fires with {id: snapshot} of the households C{ids}, read from the
        database (for use before the index is L{loaded}).
        """
        ids = sorted(set(ids))
        if not ids:
            return defer.succeed({})
        return self.database.run(
            lambda session: {s.id: s for s in self.builder.build(session, ids)})

    def load(self) -> defer.Deferred:
        """Build the whole index again; fires with the number of households."""
        return self._lock.run(self._load)

    def _load(self):
        def work(session):
            return read_version(session), *self._build_all(session)

        return self.database.run(work).addCallback(self._replace)

    def _build_all(self, session):
        """On a pool thread: every household's snapshot, by id, and their table."""
        collecting, interval = gc.isenabled(), sys.getswitchinterval()
        # The garbage collector's passes over a heap growing by millions of
        # objects made half the load, and held the reactor thread for tens
        # of milliseconds each: the load makes no cycles. And the reactor
        # thread gets the interpreter within 1 ms, not 5, while it builds.
        gc.disable()
        sys.setswitchinterval(min(interval, 0.001))
        try:
            rows = self.builder.build(session, pace=self._pace)
            table = self._table_of(rows)
            if self.settle:
                gc.freeze()
        finally:
            sys.setswitchinterval(interval)
            if collecting:
                gc.enable()
        _give_back_memory()
        return rows, table

    def _table_of(self, rows):
        pace, keys = self._pace, self.builder.keys

        def pairs():
            for p, s in enumerate(rows):
                if not p % 256:
                    pace()
                yield from ((k, p) for k in keys(s))

        return CallerTable(pairs(), pace)

    def _replace(self, result):
        version, rows, table = result
        self._rows, self._table, self.version = rows, table, version
        self.loaded = True
        self.log.info("caller index: {count} households, {forms} caller-ID forms (version {v})",
                      count=len(rows), forms=len(table), v=version)
        return len(rows)

    def refresh(self) -> defer.Deferred:
        """
        Take in the households changed since the last load or refresh. Fires
        with a list of (old snapshot or None, new snapshot or None), empty if
        nothing changed, or None when the whole index was rebuilt.
        """
        return self._lock.run(self._refresh)

    def _refresh(self):
        rows, table, since = self._rows, self._table, self.version

        def work(session):
            version = read_version(session)
            if version == since:
                return version, [], rows, table
            current = dict(session.execute(select(Household.id, Household.revision)).all())
            by_id = {s.id: s for s in rows}
            removed = [hid for hid in by_id if hid not in current]
            changed = [hid for hid, rev in current.items()
                       if hid not in by_id or by_id[hid].revision != rev]
            if len(changed) + len(removed) > self.full_reload_over:
                return version, None, *self._build_all(session)
            snapshots = self.builder.build(session, changed) if changed else []
            changes = [(by_id.pop(hid), None) for hid in removed]
            rekeyed = set(removed)
            for s in snapshots:
                old = by_id.get(s.id)
                changes.append((old, s))
                if old is None or old.numbers != s.numbers:
                    rekeyed.add(s.id)
                by_id[s.id] = s
            if not changes:
                return version, [], rows, table
            if not rekeyed:
                # The same households with the same numbers: same positions.
                return version, changes, [by_id[s.id] for s in rows], table
            new_rows = sorted(by_id.values(), key=_ID)
            position = {s.id: p for p, s in enumerate(new_rows)}
            mapping = array("i", [-1 if s.id in rekeyed else position[s.id] for s in rows])
            pairs = [(k, position[hid]) for hid in rekeyed if hid in by_id
                     for k in self.builder.keys(by_id[hid])]
            return version, changes, new_rows, table.remapped(mapping, pairs, self._pace)

        return self.database.run(work).addCallback(self._apply)

    def _apply(self, result):
        version, changes, rows, table = result
        if changes is None:
            self._replace((version, rows, table))
            return None
        self._rows, self._table, self.version = rows, table, version
        if changes:
            self.log.info("caller index: {n} households changed (version {v})",
                          n=len(changes), v=version)
        return changes


def _give_back_memory():
    """
    Return the C allocator's free pages to the system (glibc's
    C{malloc_trim}): a load's temporaries (~11 MiB at 200,000 households,
    more when it ran on a thread) stay in the process's resident set
    otherwise. Nothing elsewhere.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@lru_cache(maxsize=1)
def _malloc_trim():
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None


def _sorted_runs(pairs, pace=None, runs=256):
    """
    C{pairs} sorted, as consecutive runs (a sample sort): one C{sorted()} of
    1.2 million pairs held the interpreter, and so the reactor thread, for
    ~0.3 s; a run of ~5,000 takes ~1 ms. Equal keys fall in the same run.
    """
    if len(pairs) <= 4 * runs:
        yield sorted(pairs)
        return
    step = len(pairs) // (4 * runs)
    sample = sorted(pairs[i][0] for i in range(0, len(pairs), step))
    splitters = sample[4::4][:runs - 1]
    buckets = [[] for _ in range(len(splitters) + 1)]
    for start in range(0, len(pairs), 8192):
        if pace is not None:
            pace()
        for pair in pairs[start:start + 8192]:
            buckets[bisect_right(splitters, pair[0])].append(pair)
    # Freed run by run: 1.2 million pairs freed at once held it ~80 ms.
    pairs.clear()
    for i, bucket in enumerate(buckets):
        bucket.sort()
        yield bucket
        if pace is not None:
            pace()
        buckets[i] = None
        bucket.clear()


def _chunks(items, size):
    for start in range(0, len(items), size):
        yield items[start:start + size]
