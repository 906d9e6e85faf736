"""
Households as CSV (or an Excel workbook): what staff import and export.

One row per household, with a header naming the columns (any order)::

    id,numbers,community,building,unit,room,residents,notes,neighbours
    ,87650001,Sunrise Garden,3,1,101,Chen Mei,"elderly, lives alone",87650002=Lin Tao;87650003

C{numbers}: the household's landline(s), separated by C{;}. C{neighbours}:
up to the configured maximum, in ring-group order, separated by C{;}, each a
number optionally followed by C{=name}. C{mobiles} (optional): residents'
mobiles for text notices, the same way (C{13800138000=Chen Mei}), each a
Chinese mobile; a file without the column leaves those registered as they
are, an empty cell removes them. A problem with a mobile never shows it in
full. Numbers may be written in any local
form. C{id} (optional) updates that household; otherwise a row whose landline
is already registered updates that household and any other row adds one.
An import stores every row or, if any row is wrong, none, reporting each
problem as C{file:line: reason}.

Files come from Chinese Excel and WPS as they save them: UTF-8 with or
without a BOM, GB18030 (GBK), UTF-16 with a BOM (Excel's "Unicode text",
tab-separated), or an C{.xlsx} workbook (its first sheet).

An export is formula-safe: a cell that a spreadsheet would run as a
formula or read as a number (starting with C{= + - @}, a tab or CR, such as
C{+8659187650001}) is written with a C{'} in front, as OWASP advises
against CSV injection, and an import takes that one C{'} off again, so an
export imports back unchanged.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import zipfile
from dataclasses import dataclass

from switchboard.community.registry import (
    HouseholdData, Registry, RegistryError, normalise, parse_neighbour)
from switchboard.community.mobiles import parse_entry
from switchboard.numbers import InvalidNumber

COLUMNS = ("id", "numbers", "community", "building", "unit", "room", "residents", "notes",
           "neighbours", "mobiles")
REQUIRED = ("numbers",)

#: Refused before reading: ten times a 200,000-household registry.
MAX_FILE_BYTES = 256 * 1024 ** 2
#: A workbook's unpacked size and rows (a small .xlsx can unpack to gigabytes).
MAX_XLSX_UNPACKED = 1024 ** 3
MAX_ROWS = 1_000_000

#: What a spreadsheet acts on at the start of a cell; C{'} makes it text.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_QUOTE = "'"

_BOMS = ((codecs.BOM_UTF8, "utf-8-sig", "UTF-8 with BOM"),
         (codecs.BOM_UTF32_LE, None, "UTF-32"),  # before UTF-16 LE: its BOM starts the same
         (codecs.BOM_UTF32_BE, None, "UTF-32"),
         (codecs.BOM_UTF16_LE, "utf-16", "UTF-16 LE"),
         (codecs.BOM_UTF16_BE, "utf-16", "UTF-16 BE"))
TRIED = "UTF-8 with or without BOM, UTF-16, GB18030/GBK"


@dataclass(frozen=True)
class ImportSummary:
    created: int
    updated: int

    def __str__(self) -> str:
        return f"{self.created} households added, {self.updated} updated"


def import_csv(registry: Registry, path: str) -> ImportSummary:
    """Import the CSV or C{.xlsx} file at C{path} all-or-nothing; raise L{RegistryError}."""
    return _import_rows(registry, read_rows(path), path)


def import_text(registry: Registry, text: str, path: str = "<csv>") -> ImportSummary:
    return _import_rows(registry, csv_rows(text), path)


def _import_rows(registry, rows, path) -> ImportSummary:
    items, labels, problems = parse(registry, rows, path)
    if not items and not problems:
        problems.append((-1, f"{path}: no households in the file"))
    ids = registry.store(items, labels, known=problems)
    return ImportSummary(created=ids.created, updated=len(ids) - ids.created)


# Reading files ------------------------------------------------------------

def read_rows(path: str):
    """The (line, cells) of the file at C{path}: a workbook or CSV text; L{RegistryError}."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_FILE_BYTES:
                raise RegistryError([f"{path}: {size} bytes, more than the "
                                     f"{MAX_FILE_BYTES // 1024 ** 2} MiB a households file "
                                     "may have"])
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise RegistryError([f"{path}: cannot read: {e.strerror}"])
    if raw.startswith(b"PK\x03\x04"):
        return xlsx_rows(raw, path)
    if raw.startswith(b"\xd0\xcf\x11\xe0"):
        raise RegistryError([f"{path}: an Excel 97-2003 (.xls) workbook is not read; save it "
                             "as .xlsx or as CSV UTF-8"])
    return csv_rows(decode(raw, path))


def decode(raw: bytes, path: str) -> str:
    """
    The text of C{raw}, in the first encoding that fits: a BOM's, then
    strict UTF-8, then GB18030 (which includes GBK and GB2312).
    Otherwise L{RegistryError} saying where each encoding failed.
    """
    for bom, codec, name in _BOMS:
        if raw.startswith(bom):
            if codec is None:
                raise RegistryError([f"{path}: {name} text is not read; save it as UTF-8 "
                                     f"(tried: {TRIED})"])
            try:
                text = raw.decode(codec)
            except UnicodeDecodeError as e:
                raise RegistryError([f"{path}:{_line(raw, e.start)}: starts with a {name} "
                                     f"BOM but is not {name} text ({e.reason} at byte "
                                     f"{e.start})"])
            return text.lstrip("\ufeff")
    head = raw[:32]
    if b"\0" in head:
        # UTF-16 without a BOM: every other byte of the (ASCII) header is zero.
        codec = ("utf-16-le" if not head[1::2].strip(b"\0") else
                 "utf-16-be" if not head[0::2].strip(b"\0") else None)
        if codec:
            try:
                return raw.decode(codec)
            except UnicodeDecodeError as e:
                raise RegistryError([f"{path}: looks like {codec.upper()} text but is not "
                                     f"({e.reason} at byte {e.start}); save it as CSV UTF-8"])
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        utf8 = e
    try:
        return raw.decode("gb18030")
    except UnicodeDecodeError as e:
        raise RegistryError([
            f"{path}:{_line(raw, utf8.start)}: not text in an encoding tried ({TRIED}): "
            f"not UTF-8 ({utf8.reason} at byte {utf8.start}), not GB18030 ({e.reason} at "
            f"byte {e.start}, line {_line(raw, e.start)}); save it as CSV UTF-8"])


def _line(raw: bytes, offset: int) -> int:
    return raw.count(b"\n", 0, offset) + 1


def csv_rows(text: str):
    """
    The (line, cells) of CSV C{text}, line being where the row starts; a
    C{csv.Error} is yielded in place of the row it spoils. Comma-separated,
    or tab-separated when the header line has tabs and no commas (Excel's
    "Unicode text").
    """
    first = text.split("\n", 1)[0]
    delimiter = "\t" if "\t" in first and "," not in first else ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    line = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            yield line, e
            return
        yield line, row
        line = reader.line_num + 1


def xlsx_rows(raw: bytes, path: str):
    """
    The (row number, cells as text) of the first sheet of the workbook
    C{raw}, read in openpyxl's read-only mode. Numbers come back as staff
    see them: a whole number without C{.0} or exponent, zero-padded when
    the cell's format is one like C{00000000000} (a landline typed as a
    number). A formula is refused: its value is not in the file we read.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
        unpacked = sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile as e:
        raise RegistryError([f"{path}: not a readable .xlsx workbook ({e})"])
    if unpacked > MAX_XLSX_UNPACKED:
        raise RegistryError([f"{path}: the workbook unpacks to {unpacked} bytes, more than "
                             f"{MAX_XLSX_UNPACKED // 1024 ** 2} MiB"])
    try:
        import openpyxl
    except ImportError:
        raise RegistryError([f"{path}: an .xlsx workbook needs openpyxl (pip install "
                             "openpyxl); or save the sheet as CSV UTF-8"])
    try:
        book = openpyxl.load_workbook(io.BytesIO(raw), read_only=True, data_only=False)
    except Exception as e:  # openpyxl raises many kinds for a damaged workbook
        raise RegistryError([f"{path}: not a readable .xlsx workbook ({e})"])
    return _sheet_rows(book, path)


def _sheet_rows(book, path):
    """Rows as long as the header: a sheet's empty cells at the end of a row are not stored."""
    width = None
    try:
        sheet = book.worksheets[0]
        for number, cells in enumerate(sheet.iter_rows(), 1):
            if number > MAX_ROWS:
                raise RegistryError([f"{path}: more than {MAX_ROWS} rows"])
            row = [_cell_text(cell, path, number) for cell in cells]
            while row and row[-1] == "":
                row.pop()
            if width is None:
                width = len(row)
            yield number, row + [""] * (width - len(row))
    finally:
        book.close()


def _cell_text(cell, path, row) -> str:
    value = cell.value
    if value is None:
        return ""
    if getattr(cell, "data_type", None) == "f":
        raise RegistryError([f"{path}:{row}: cell {cell.coordinate} is a formula ({value}); "
                             "paste it as values first"])
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        text = str(value)
        zeros = str(getattr(cell, "number_format", "") or "")
        if zeros and set(zeros) == {"0"}:
            text = text.zfill(len(zeros))
        return text
    return str(value)


# Parsing rows --------------------------------------------------------------

def parse(registry: Registry, rows, path: str):
    """
    The C{rows} (line, cells) as L{HouseholdData}, their C{file:line}
    labels and the problems found so far as (item index, reason); -1 is
    the header.
    """
    numbers = registry.numbers
    cache: dict = {}
    rows = iter(rows)
    items, labels, problems = [], [], []
    try:
        _, header = next(rows)
    except StopIteration:
        return items, labels, [(-1, f"{path}: empty file (a header line is needed: "
                                    + ",".join(COLUMNS) + ")")]
    if isinstance(header, csv.Error):
        return items, labels, [(-1, f"{path}:1: {header}")]
    header = [h.strip().lower() for h in header]
    bad = [h for h in header if h not in COLUMNS]
    missing = [c for c in REQUIRED if c not in header]
    if bad or missing:
        reason = "; ".join([f"unknown column {h!r}" for h in bad]
                           + [f"missing column {c!r}" for c in missing])
        return items, labels, [(-1, f"{path}:1: {reason} (columns: {', '.join(COLUMNS)})")]
    for start, row in rows:
        if isinstance(row, csv.Error):
            # Not a row of its own: reported with its line, after the rows before it.
            problems.append((len(items), f"{path}:{start}: {row}"))
            break
        if not any(cell.strip() for cell in row):
            continue
        index = len(items)
        say = problems.append
        if len(row) != len(header):
            say((index, f"{len(row)} fields where the header has {len(header)}"))
        cells = dict(zip(header, (unquote(cell.strip()) for cell in row)))
        data = HouseholdData(numbers=[], **{k: cells.get(k, "") for k in
                                            ("community", "building", "unit", "room",
                                             "residents", "notes")})
        if cells.get("id"):
            if cells["id"].isascii() and cells["id"].isdigit():
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
        if "mobiles" in header:
            data.mobiles = []
            for part in _split(cells.get("mobiles", "")):
                try:
                    data.mobiles.append(parse_entry(part))
                except InvalidNumber as e:
                    say((index, f"mobiles: {e}"))
        items.append(data)
        labels.append(f"{path}:{start}")
    return items, labels, problems


def _split(text: str) -> list:
    return [part.strip() for part in text.split(";") if part.strip()]


# Formula safety ------------------------------------------------------------

def quote(cell) -> str:
    """C{cell} as text a spreadsheet neither runs nor turns into a number."""
    text = str(cell)
    if text.startswith(FORMULA_START) or text.startswith(_QUOTE):
        # A value that already starts with ' gets one too, so that unquote is exact.
        return _QUOTE + text
    return text


def unquote(cell: str) -> str:
    """Take off the one C{'} L{quote} added."""
    if cell.startswith(_QUOTE) and cell[1:].startswith(FORMULA_START + (_QUOTE,)):
        return cell[1:]
    return cell


def export_csv(registry: Registry, out) -> int:
    """Write every household to the text file C{out}; return how many."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    count = 0
    for h in registry.households():
        neighbours = ";".join(f"{n.number}={n.name}" if n.name else n.number for n in h.neighbours)
        mobiles = ";".join(f"{m.number}={m.name}" if m.name else m.number for m in h.mobiles)
        writer.writerow([quote(cell) for cell in (
            h.id, ";".join(n.number for n in h.numbers), h.community, h.building, h.unit,
            h.room, h.residents, h.notes, neighbours, mobiles)])
        count += 1
    return count
