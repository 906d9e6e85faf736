"""
The registry of households and their neighbours, for staff (the CLI).

Everything here is synchronous and runs outside the reactor. Every change
bumps L{RegistryVersion} in the same transaction, so a running server
notices it with one cheap query and refreshes its caller index and AstDB.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import selectinload

from switchboard.community.mobiles import MAX_MOBILES, mask
from switchboard.community.models import (
    Household, HouseholdNumber, Mobile, Neighbour, RegistryVersion, now_utc)
from switchboard.numbers import InvalidNumber, NumberPlan
from switchboard.pgnotify import notify

#: Control characters (C0, DEL, C1), line and paragraph separators and the
#: bidirectional overrides that make text display other than it reads.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_FIELDS = ("community", "building", "unit", "room", "residents", "notes")
_LIMITS = {"community": 100, "building": 20, "unit": 20, "room": 20, "residents": 200,
           "notes": 500}
NAME_LIMIT = 100  # a neighbour's name


def text_problem(value: str, limit: int) -> str | None:
    """Why C{value} cannot be stored as a name or note, or L{None}."""
    bad = _CONTROL.search(value)
    if bad:
        return (f"control character U+{ord(bad.group()):04X} at character {bad.start() + 1}"
                " (line breaks, tabs and other control characters are not allowed)")
    if len(value) > limit:
        return f"{len(value)} characters, longer than {limit}"
    return None


class RegistryError(Exception):
    """A change was refused; C{problems} lists every reason (one line each)."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass
class HouseholdData:
    """A household as staff describe it, numbers already in E.164."""

    numbers: list
    community: str = ""
    building: str = ""
    unit: str = ""
    room: str = ""
    residents: str = ""
    notes: str = ""
    neighbours: list = field(default_factory=list)  # [(e164, name)]
    id: int | None = None
    #: Residents' mobiles [(e164, name)]; None: those registered are kept as they are
    #: (an import without a mobiles column, a change of neighbours).
    mobiles: list | None = None

    def fields(self) -> dict:
        return {"community": self.community, "building": self.building, "unit": self.unit,
                "room": self.room, "residents": self.residents, "notes": self.notes}


def parse_neighbour(numbers: NumberPlan, text: str, cache=None) -> tuple:
    """C{"87650002"} or C{"87650002=Wang Fang"} -> (E.164, name); raise L{InvalidNumber}."""
    number, _, name = str(text).partition("=")
    return normalise(numbers, number, cache), name.strip()


def normalise(numbers: NumberPlan, text: str, cache=None) -> str:
    """L{NumberPlan.normalise}, remembered in C{cache} (bulk imports repeat numbers)."""
    if cache is None:
        return numbers.normalise(text)
    key = text.strip()
    found = cache.get(key)
    if found is None:
        try:
            found = numbers.normalise(key)
        except InvalidNumber as e:
            found = e
        cache[key] = found
    if isinstance(found, InvalidNumber):
        raise found
    return found


class Registry:
    """
    Households, their landlines and neighbours in C{database}
    (a L{switchboard.storage.Database}).
    """

    def __init__(self, database, numbers: NumberPlan, *, max_neighbours: int = 10):
        self.database = database
        self.numbers = numbers
        self.max_neighbours = max_neighbours

    # Checks -------------------------------------------------------------

    def problems(self, data: HouseholdData) -> list:
        """Every reason C{data} cannot be stored on its own (no database needed)."""
        out = []
        if not data.numbers:
            out.append("no landline number: the household could not be recognised when it calls")
        seen = set()
        for number in data.numbers:
            if number in seen:
                out.append(f"landline {number} is listed twice")
            seen.add(number)
        for name, limit in _LIMITS.items():
            problem = text_problem(getattr(data, name), limit)
            if problem:
                out.append(f"{name}: {problem}")
        if not (data.building or data.unit or data.room):
            out.append("no address: give at least a building, unit or room")
        if len(data.neighbours) > self.max_neighbours:
            out.append(f"{len(data.neighbours)} neighbours, at most {self.max_neighbours} allowed")
        seen_neighbours = set()
        for number, name in data.neighbours:
            if number in seen:
                out.append(f"neighbour {number} is one of this household's own numbers"
                           " (its phone cannot answer its own alarm)")
            if number in seen_neighbours:
                out.append(f"neighbour {number} is listed twice")
            seen_neighbours.add(number)
            problem = text_problem(name, NAME_LIMIT)
            if problem:
                out.append(f"neighbour {number}: name: {problem}")
        mobiles = data.mobiles or []
        if len(mobiles) > MAX_MOBILES:
            out.append(f"{len(mobiles)} mobiles, at most {MAX_MOBILES} allowed")
        seen_mobiles = set()
        for number, name in mobiles:
            if number in seen_mobiles:
                out.append(f"mobile {mask(number)} is listed twice")
            seen_mobiles.add(number)
            problem = text_problem(name, NAME_LIMIT)
            if problem:
                out.append(f"mobile {mask(number)}: name: {problem}")
        return out

    def _owners(self, session, numbers) -> dict:
        owners = {}
        for chunk in _chunks(list(numbers), 500):
            owners.update(session.execute(
                select(HouseholdNumber.number, HouseholdNumber.household_id)
                .where(HouseholdNumber.number.in_(chunk))).all())
        return owners

    # Reading ------------------------------------------------------------

    def find(self, ref) -> Household | None:
        """The household with id C{ref}, or calling from number C{ref}."""
        with self.database.session() as session:
            return self._find(session, ref)

    def _find(self, session, ref):
        options = (selectinload(Household.numbers), selectinload(Household.neighbours),
                   selectinload(Household.mobiles))
        text = str(ref).strip()
        if text.isascii() and text.isdigit() and len(text) < 7:
            return session.get(Household, int(text), options=options)
        try:
            number = self.numbers.normalise(text)
        except InvalidNumber:
            return None
        hid = session.execute(select(HouseholdNumber.household_id)
                               .where(HouseholdNumber.number == number)).scalar_one_or_none()
        return session.get(Household, hid, options=options) if hid is not None else None

    def households(self) -> list:
        """Every household with its numbers and neighbours, by id."""
        with self.database.session() as session:
            return list(session.execute(
                select(Household).order_by(Household.id)
                .options(selectinload(Household.numbers), selectinload(Household.neighbours),
                         selectinload(Household.mobiles))
            ).scalars())

    def version(self) -> int:
        with self.database.session() as session:
            return read_version(session)

    # Changing -----------------------------------------------------------

    def add(self, data: HouseholdData) -> int:
        """Register a new household; return its id. Raise L{RegistryError}."""
        data.id = None
        return self.store([data], new=True)[0]

    def set_neighbours(self, ref, neighbours) -> int:
        """Replace the ring group of household C{ref} with C{neighbours} [(e164, name)]."""
        return self._rewrite(ref, neighbours=list(neighbours))

    def set_mobiles(self, ref, mobiles) -> int:
        """Replace the registered mobiles of household C{ref} with C{mobiles} [(e164, name)]."""
        return self._rewrite(ref, mobiles=list(mobiles))

    def _rewrite(self, ref, **changes) -> int:
        """Household C{ref} stored again as it is but for C{changes} (L{HouseholdData} fields)."""
        with self.database.session() as session:
            household = self._find(session, ref)
            if household is None:
                raise RegistryError([f"no household {ref}"])
            data = HouseholdData(numbers=[n.number for n in household.numbers],
                                 neighbours=[(n.number, n.name) for n in household.neighbours],
                                 id=household.id,
                                 **{k: getattr(household, k) or "" for k in _FIELDS})
        for name, value in changes.items():
            setattr(data, name, value)
        return self.store([data])[0]

    def remove(self, ref) -> int:
        with self.database.sessions.begin() as session:
            household = self._find(session, ref)
            if household is None:
                raise RegistryError([f"no household {ref}"])
            session.delete(household)
            bump_version(session)
            return household.id

    def store(self, items, labels=None, known=(), new=False) -> list:
        """
        Create or update every L{HouseholdData} in C{items} in one
        transaction and return their ids, or write nothing: raise
        L{RegistryError} listing every problem in item order, each prefixed
        with C{labels[i]} (e.g. C{"file.csv:7"}). C{known} are problems
        already found, as (item index, reason); they are reported with the rest.
        With C{new}, a landline already registered is refused instead of
        meaning "update that household".
        """
        labels = labels or [""] * len(items)
        found = list(known)
        for i, data in enumerate(items):
            found += [(i, p) for p in self.problems(data)]
        first = {}
        for i, data in enumerate(items):
            for number in data.numbers:
                if number in first:
                    other = labels[first[number]] or "another household"
                    found.append((i, f"landline {number} is also given for {other}"))
                else:
                    first[number] = i
        with self.database.sessions.begin() as session:
            targets = self._targets(session, items, found, first, new)
            if found:
                found.sort(key=lambda p: p[0])
                raise RegistryError(f"{labels[i]}: {reason}" if 0 <= i < len(labels) and labels[i]
                                    else reason for i, reason in found)
            return self._write(session, items, targets)

    def _targets(self, session, items, problems, numbers, new=False):
        """Which existing household each item updates (None: a new one); check ownership."""
        owners = self._owners(session, numbers)
        ids = [data.id for data in items if data.id is not None]
        existing = set()
        for chunk in _chunks(ids, 500):
            existing.update(session.execute(select(Household.id)
                                            .where(Household.id.in_(chunk))).scalars())
        targets = []
        for i, data in enumerate(items):
            if data.id is not None:
                if data.id not in existing:
                    problems.append((i, f"no household with id {data.id}"))
                targets.append(data.id)
                continue
            found = {owners[n] for n in data.numbers if n in owners}
            if new:
                found = set()  # reported below as numbers of another household
            if len(found) > 1:
                problems.append((i, "its landlines belong to different households ("
                                 + ", ".join(str(h) for h in sorted(found)) + ")"))
            targets.append(found.pop() if len(found) == 1 else None)
        updated = {t for t in targets if t is not None}
        # A number may only move away from a household that is itself rewritten.
        for i, data in enumerate(items):
            for number in data.numbers:
                owner = owners.get(number)
                if owner is not None and owner != targets[i] and owner not in updated:
                    problems.append((i, f"landline {number} belongs to household {owner}"))
        return targets

    def _write(self, session, items, targets) -> list:
        now = now_utc()
        updated = [t for t in targets if t is not None]
        for chunk in _chunks(updated, 500):
            session.execute(delete(HouseholdNumber).where(HouseholdNumber.household_id.in_(chunk)))
            session.execute(delete(Neighbour).where(Neighbour.household_id.in_(chunk)))
        # Mobiles only where the item gives them (None keeps those registered).
        rewritten = [t for data, t in zip(items, targets) if t is not None
                     and data.mobiles is not None]
        for chunk in _chunks(rewritten, 500):
            session.execute(delete(Mobile).where(Mobile.household_id.in_(chunk)))
        for data, target in zip(items, targets):
            if target is not None:
                session.execute(update(Household).where(Household.id == target).values(
                    revision=Household.revision + 1, updated_at=now, **data.fields()))
        new = [i for i, t in enumerate(targets) if t is None]
        targets = Stored(targets)
        targets.created = len(new)
        # In chunks: a 200,000-household import must not build millions of rows at once.
        returning = insert(Household).returning(Household.id, sort_by_parameter_order=True)
        for chunk in _chunks(new, 2000):
            rows = [dict(items[i].fields(), revision=1, updated_at=now) for i in chunk]
            for i, hid in zip(chunk, session.execute(returning, rows).scalars().all()):
                targets[i] = hid
        for start in range(0, len(items), 2000):
            pairs = list(zip(items[start:start + 2000], targets[start:start + 2000]))
            numbers = [{"household_id": hid, "number": n, "position": p}
                       for data, hid in pairs for p, n in enumerate(data.numbers, 1)]
            neighbours = [{"household_id": hid, "number": n, "name": name, "position": p}
                          for data, hid in pairs
                          for p, (n, name) in enumerate(data.neighbours, 1)]
            # Core inserts: the ORM's bulk path costs more than the database here.
            if numbers:
                session.connection().execute(HouseholdNumber.__table__.insert(), numbers)
            if neighbours:
                session.connection().execute(Neighbour.__table__.insert(), neighbours)
            mobiles = [{"household_id": hid, "number": n, "name": name, "position": p}
                       for data, hid in pairs
                       for p, (n, name) in enumerate(data.mobiles or (), 1)]
            if mobiles:
                session.connection().execute(Mobile.__table__.insert(), mobiles)
        bump_version(session)
        return targets


class Stored(list):
    """The ids of the households stored, in item order; C{created} of them are new."""

    created = 0


def read_version(session) -> int:
    return session.execute(select(RegistryVersion.version)
                           .where(RegistryVersion.id == 1)).scalar_one_or_none() or 0


def bump_version(session) -> None:
    """
    Mark the registry changed (in the caller's transaction); on PostgreSQL
    running servers hear of it when it commits (L{switchboard.pgnotify}).
    """
    notify(session, "registry")
    row = session.get(RegistryVersion, 1)
    if row is None:
        session.add(RegistryVersion(id=1, version=1, changed_at=now_utc()))
    else:
        row.version += 1
        row.changed_at = now_utc()
    session.flush()


def _chunks(items, size):
    for start in range(0, len(items), size):
        yield items[start:start + size]
