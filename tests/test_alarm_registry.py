"""The household registry and its CSV import/export, on a real SQLite database."""

import io

import pytest
from sqlalchemy import func, select

from alarm import csvfile
from alarm.models import Household, HouseholdNumber, Neighbour
from alarm.registry import HouseholdData, Registry, RegistryError

from tests.test_alarm_support import PLAN, database, number

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
                                "building, unit, room, residents, notes, neighbours)"]
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
    assert e.value.problems[0].startswith("h.csv:4: numbers:")


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
    assert out.getvalue().splitlines()[1] == (
        '1,+8659187650001,Hualin,3,1,101,"Chen, Mei","a ""note""",'
        "+8659187650002=Lin Tao;+8613800138000")
    summary = csvfile.import_text(registry, out.getvalue())
    assert (summary.created, summary.updated) == (0, 1)
