"""
Households as CSV: what staff import and export.

One row per household, with a header naming the columns (any order)::

    id,numbers,community,building,unit,room,residents,notes,neighbours
    ,87650001,Sunrise Garden,3,1,101,Chen Mei,"elderly, lives alone",87650002=Lin Tao;87650003

C{numbers}: the household's landline(s), separated by C{;}. C{neighbours}:
up to the configured maximum, in ring-group order, separated by C{;}, each a
number optionally followed by C{=name}. Numbers may be written in any local
form. C{id} (optional) updates that household; otherwise a row whose landline
is already registered updates that household and any other row adds one.
An import stores every row or, if any row is wrong, none, reporting each
problem as C{file:line: reason}.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from alarm.registry import HouseholdData, Registry, RegistryError, normalise, parse_neighbour
from switchboard.numbers import InvalidNumber

COLUMNS = ("id", "numbers", "community", "building", "unit", "room", "residents", "notes",
           "neighbours")
REQUIRED = ("numbers",)


@dataclass(frozen=True)
class ImportSummary:
    created: int
    updated: int

    def __str__(self) -> str:
        return f"{self.created} households added, {self.updated} updated"


def import_csv(registry: Registry, path: str) -> ImportSummary:
    """Import the file at C{path} all-or-nothing; raise L{RegistryError}."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            text = f.read()
    except OSError as e:
        raise RegistryError([f"{path}: cannot read: {e.strerror}"])
    except UnicodeDecodeError as e:
        raise RegistryError([f"{path}: not UTF-8 text ({e.reason} at byte {e.start})"])
    return import_text(registry, text, path)


def import_text(registry: Registry, text: str, path: str = "<csv>") -> ImportSummary:
    items, labels, problems = parse(registry, text, path)
    if not items and not problems:
        problems.append((-1, f"{path}: no households in the file"))
    ids = registry.store(items, labels, known=problems)
    return ImportSummary(created=ids.created, updated=len(ids) - ids.created)


def parse(registry: Registry, text: str, path: str):
    """
    The rows of C{text} as L{HouseholdData}, their C{file:line} labels and
    the problems found so far as (item index, reason); -1 is the header.
    """
    numbers = registry.numbers
    cache: dict = {}
    reader = csv.reader(io.StringIO(text))
    items, labels, problems = [], [], []
    try:
        header = next(reader)
    except StopIteration:
        return items, labels, [(-1, f"{path}: empty file (a header line is needed: "
                                    + ",".join(COLUMNS) + ")")]
    except csv.Error as e:
        return items, labels, [(-1, f"{path}:1: {e}")]
    header = [h.strip().lower() for h in header]
    bad = [h for h in header if h not in COLUMNS]
    missing = [c for c in REQUIRED if c not in header]
    if bad or missing:
        reason = "; ".join([f"unknown column {h!r}" for h in bad]
                           + [f"missing column {c!r}" for c in missing])
        return items, labels, [(-1, f"{path}:1: {reason} (columns: {', '.join(COLUMNS)})")]
    line = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            # Not a row of its own: reported with its line, after the rows before it.
            problems.append((len(items), f"{path}:{line}: {e}"))
            break
        start, line = line, reader.line_num + 1
        if not any(cell.strip() for cell in row):
            continue
        index = len(items)
        say = problems.append
        if len(row) != len(header):
            say((index, f"{len(row)} fields where the header has {len(header)}"))
        cells = dict(zip(header, (cell.strip() for cell in row)))
        data = HouseholdData(numbers=[], **{k: cells.get(k, "") for k in
                                            ("community", "building", "unit", "room",
                                             "residents", "notes")})
        if cells.get("id"):
            if cells["id"].isdigit():
                data.id = int(cells["id"])
            else:
                say((index, f"id {cells['id']!r} is not a household number"))
        for part in _split(cells.get("numbers", "")):
            try:
                data.numbers.append(normalise(numbers, part, cache))
            except InvalidNumber as e:
                say((index, f"numbers: {e}"))
        for part in _split(cells.get("neighbours", "")):
            try:
                data.neighbours.append(parse_neighbour(numbers, part, cache))
            except InvalidNumber as e:
                say((index, f"neighbours: {e}"))
        items.append(data)
        labels.append(f"{path}:{start}")
    return items, labels, problems


def _split(text: str) -> list:
    return [part.strip() for part in text.split(";") if part.strip()]


def export_csv(registry: Registry, out) -> int:
    """Write every household to the text file C{out}; return how many."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    count = 0
    for h in registry.households():
        neighbours = ";".join(f"{n.number}={n.name}" if n.name else n.number for n in h.neighbours)
        writer.writerow([h.id, ";".join(n.number for n in h.numbers), h.community, h.building,
                         h.unit, h.room, h.residents, h.notes, neighbours])
        count += 1
    return count
