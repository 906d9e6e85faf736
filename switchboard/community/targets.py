"""
Which households a message is for, as staff write it:

  all                    every household
  community:NAME         the households of community NAME
  building:3             the households of building 3
  building:3-5           buildings 3, 4 and 5 (numbered buildings)
  FILE.csv | FILE.xlsx   the households a file lists (by id, or by a landline),
                         in the format of C{switchboard households export}

Several may be joined with C{,} (C{building:3,building:7}); a household is
chosen once. Each chosen household is reached on its first landline; a
text goes to each of its residents' registered mobiles instead, where it
has any (L{for_texts}).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from switchboard.community import csvfile
from switchboard.community.models import Household, HouseholdNumber
from switchboard.community.registry import RegistryError
from switchboard.numbers import InvalidNumber

FORMS = "all | community:NAME | building:N | building:N-M | FILE.csv"


class TargetError(ValueError):
    """A target that selects nothing or cannot be read; C{problems}, one line each."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class Target:
    """A household chosen: its id, the landline it is reached on (E.164), its address."""

    household_id: int
    number: str
    address: str
    residents: str = ""
    #: The residents' registered mobiles, [(E.164, name)].
    mobiles: tuple = ()


def select_households(database, numbers, spec: str) -> list[Target]:
    """
    The households C{spec} names, by id (L{TargetError} when it names none,
    or a part cannot be read). Synchronous: for the CLI, or a thread.
    """
    parts = [p.strip() for p in str(spec or "").split(",") if p.strip()]
    if not parts:
        raise TargetError([f"no target given ({FORMS})"])
    chosen: dict = {}
    problems = []
    with database.session() as session:
        for part in parts:
            try:
                for household in _select(session, numbers, part):
                    chosen.setdefault(household.id, household)
            except TargetError as e:
                problems.extend(e.problems)
        if problems:
            raise TargetError(problems)
        targets = []
        for household in sorted(chosen.values(), key=lambda h: h.id):
            if not household.numbers:
                continue  # nothing to call it on (a registry refuses such a household)
            targets.append(Target(household.id, household.numbers[0].number,
                                  household.address, household.residents or "",
                                  tuple((m.number, m.name) for m in household.mobiles)))
    if not targets:
        raise TargetError([f"{spec!r} names no registered household"])
    return targets


def for_texts(targets) -> list[Target]:
    """
    Where a text to C{targets} goes: each registered mobile of a household
    (its owner's name after the address), else its landline (a SIP phone
    takes texts too).
    """
    out = []
    for t in targets:
        if not t.mobiles:
            out.append(t)
            continue
        for number, name in t.mobiles:
            address = f"{t.address} ({name})" if name else t.address
            out.append(Target(t.household_id, number, address, t.residents))
    return out


def _select(session, numbers, part):
    query = select(Household).options(selectinload(Household.numbers),
                                      selectinload(Household.mobiles))
    kind, sep, value = part.partition(":")
    kind = kind.strip().lower()
    if part.lower() == "all":
        return session.execute(query).scalars().all()
    if sep and kind == "community":
        if not value.strip():
            raise TargetError([f"{part!r}: no community name"])
        return session.execute(query.where(Household.community == value.strip())).scalars().all()
    if sep and kind == "building":
        return _buildings(session, query, part, value.strip())
    if part.lower().endswith((".csv", ".xlsx", ".txt")) or os.path.sep in part:
        return _from_file(session, numbers, query, part)
    raise TargetError([f"{part!r}: not a target ({FORMS})"])


def _buildings(session, query, part, value):
    low, dash, high = value.partition("-")
    low, high = low.strip(), high.strip()
    if not dash:
        if not value:
            raise TargetError([f"{part!r}: no building"])
        return session.execute(query.where(Household.building == value)).scalars().all()
    if not (low.isdigit() and high.isdigit()) or int(low) > int(high):
        raise TargetError([f"{part!r}: a range of buildings is N-M, numbers, N <= M"])
    wanted = {str(n) for n in range(int(low), int(high) + 1)}
    # Buildings are text ("3", "03"): compared as numbers.
    rows = session.execute(query.where(Household.building != "")).scalars().all()
    return [h for h in rows if h.building.strip().isdigit()
            and str(int(h.building.strip())) in wanted]


def _from_file(session, numbers, query, path):
    try:
        rows = list(csvfile.read_rows(path))
    except RegistryError as e:
        raise TargetError(e.problems) from None
    if not rows:
        raise TargetError([f"{path}: empty file"])
    _, header = rows[0]
    if isinstance(header, Exception):
        raise TargetError([f"{path}:1: {header}"])
    header = [h.strip().lower() for h in header]
    if "id" not in header and "numbers" not in header:
        raise TargetError([f"{path}:1: needs a column 'id' or 'numbers' to name households"])
    problems, ids, wanted_numbers = [], {}, {}
    for line, row in rows[1:]:
        if isinstance(row, Exception):
            problems.append(f"{path}:{line}: {row}")
            break
        if not any(cell.strip() for cell in row):
            continue
        cells = dict(zip(header, (csvfile.unquote(c.strip()) for c in row)))
        ident = cells.get("id", "")
        if ident:
            if not (ident.isascii() and ident.isdigit()):
                problems.append(f"{path}:{line}: id {ident!r} is not a household number")
            else:
                ids[int(ident)] = line
            continue
        first = next((p.strip() for p in cells.get("numbers", "").split(";") if p.strip()), "")
        if not first:
            problems.append(f"{path}:{line}: neither an id nor a landline")
            continue
        try:
            wanted_numbers[numbers.normalise(first)] = line
        except InvalidNumber as e:
            problems.append(f"{path}:{line}: numbers: {e}")
    found = {}
    for chunk in _chunks(list(ids), 500):
        for h in session.execute(query.where(Household.id.in_(chunk))).scalars():
            found[h.id] = h
    problems += [f"{path}:{line}: no household with id {i}" for i, line in ids.items()
                 if i not in found]
    owners = {}
    for chunk in _chunks(list(wanted_numbers), 500):
        owners.update(session.execute(
            select(HouseholdNumber.number, HouseholdNumber.household_id)
            .where(HouseholdNumber.number.in_(chunk))).all())
    for number, line in wanted_numbers.items():
        if number not in owners:
            problems.append(f"{path}:{line}: landline {number} is not registered")
    missing = [owners[n] for n in wanted_numbers if n in owners and owners[n] not in found]
    for chunk in _chunks(missing, 500):
        for h in session.execute(query.where(Household.id.in_(chunk))).scalars():
            found[h.id] = h
    if problems:
        raise TargetError(problems)
    return list(found.values())


def _chunks(items, size):
    for start in range(0, len(items), size):
        yield items[start:start + size]
