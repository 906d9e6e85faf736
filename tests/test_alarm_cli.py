"""The households, neighbours and alarms commands, through switchboard's main()."""

import os

import pytest
from twisted.internet import task

from alarm.coordinator import AlarmCoordinator
from alarm.recorder import AlarmRecorder
from switchboard.cli import main
from switchboard.storage import Database

from tests import databases
from tests.test_alarm_support import DIALER, FakeAMI, SyncDatabase, config, household

pytestmark = pytest.mark.database

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(PROJECT, "config", "households.csv")


@pytest.fixture
def sb(tmp_path, capsys):
    path = tmp_path / "switchboard.yaml"
    path.write_text(f"""
database: {databases.url(tmp_path, "sb")}
numbers: {{region: CN, area_code: "591"}}
timezone: Asia/Shanghai
alarm: {PROJECT}/config/alarm.yaml
hotline_number: "12345"
""")

    def run(*argv):
        code = main(["--config", str(path), *argv])
        out, err = capsys.readouterr()
        return code, out, err

    run.db = lambda: Database(databases.url(tmp_path, "sb"))
    run.tmp = tmp_path
    return run


def test_import_show_list(sb):
    code, out, _ = sb("households", "import", SAMPLE)
    assert code == 0
    assert "12 households added, 0 updated" in out
    code, out, _ = sb("households", "show", "0591-87650003")
    assert code == 0
    assert "Household 3  Hualin Garden, building 3, unit 1, room 201" in out
    assert "uses a wheelchair" in out
    assert "    1. +8659187650002   87650002     Lin Tao" in out
    code, out, _ = sb("households", "list")
    assert out.strip().endswith("12 households")
    # Importing again updates the same households.
    code, out, _ = sb("households", "import", SAMPLE)
    assert "0 households added, 12 updated" in out


def test_import_refused_with_every_problem(sb):
    bad = sb.tmp / "bad.csv"
    bad.write_text("numbers,building,unit,room,neighbours\n"
                   "87650001,3,1,101,87650002;87650001\n"
                   "87650002,3,1,102,12\n"
                   "\n"
                   "87650001,3,1,103,\n")
    code, _, err = sb("households", "import", str(bad))
    assert code == 1
    lines = err.strip().splitlines()
    assert lines[0].startswith(f"{bad}:2: neighbour +8659187650001 is one of this household's own")
    assert lines[1] == f"{bad}:3: neighbours: '12' is not a valid CN phone number"
    assert lines[2] == f"{bad}:5: landline +8659187650001 is also given for {bad}:2"
    assert lines[-1] == "nothing was changed (3 problems)"
    code, out, _ = sb("households", "list")
    assert "0 households" in out


def test_add_and_neighbours_set(sb):
    code, out, err = sb("households", "add", "--number", "87650050", "--building", "5",
                        "--unit", "1", "--room", "101", "--residents", "Li Ming",
                        "--neighbour", "87650051=Wang", "--neighbour", "13800138000")
    assert code == 0, err
    assert "household 1 added" in out
    assert "+8613800138000" in out
    code, _, err = sb("neighbours", "set", "87650050", "87650052", "0591 8765 0050")
    assert code == 1
    assert "is one of this household's own numbers" in err
    code, out, _ = sb("neighbours", "set", "1", "87650052=Zhao", "87650053")
    assert code == 0
    assert "neighbours: 2" in out and "Zhao" in out
    code, _, err = sb("households", "add", "--number", "87650050", "--room", "9")
    assert code == 1 and "belongs to household 1" in err


def test_too_many_neighbours(sb):
    many = [f"876501{n:02d}" for n in range(11)]
    code, _, err = sb("households", "add", "--number", "87650050", "--room", "1",
                      *[a for n in many for a in ("--neighbour", n)])
    assert code == 1
    assert "11 neighbours, at most 10 allowed" in err


def test_export_round_trip(sb):
    sb("households", "import", SAMPLE)
    out_file = sb.tmp / "out.csv"
    code, out, _ = sb("households", "export", str(out_file))
    assert code == 0 and "12 households" in out
    assert out_file.read_bytes().startswith(b"\xef\xbb\xbfid,numbers,")
    code, out, _ = sb("households", "import", str(out_file))
    assert "0 households added, 12 updated" in out
    code, out, _ = sb("households", "export")
    assert out.splitlines()[0] == ("id,numbers,community,building,unit,room,residents,notes,"
                                   "neighbours,mobiles")
    assert len(out.splitlines()) == 13


def test_remove(sb):
    sb("households", "import", SAMPLE)
    code, out, _ = sb("households", "remove", "87650012")
    assert code == 0
    code, _, err = sb("households", "show", "87650012")
    assert code == 1 and "no household" in err


def test_alarms_list_show_close(sb):
    sb("households", "import", SAMPLE)
    db = sb.db()
    clock = task.Clock()
    clock.advance(1_700_000_000)  # 2023-11-14 22:13:20 UTC, 06:13:20 in Fuzhou
    ami = FakeAMI()
    coordinator = AlarmCoordinator(DIALER, ami, AlarmRecorder(SyncDatabase(db), clock=clock),
                                   config(), clock)
    alarm = coordinator.raise_alarm("87650001", household(1, 3)).result
    clock.advance(5)
    ami.calls[1].finish("busy")
    ami.calls[0].finish("answered")
    coordinator.answered(alarm.id, ami.calls[0].channel_id)
    clock.advance(4)
    coordinator.confirm(alarm.id, ami.calls[0].channel_id)
    coordinator.raise_alarm("87650150", None)
    code, out, _ = sb("alarms")
    assert code == 0
    lines = out.splitlines()
    assert lines[1].split()[:5] == ["2", "2023-11-15", "06:13:29", "open", "87650150"]
    assert "unregistered" in lines[1]
    assert "confirmed" in lines[2] and "Hualin Garden, building 3, unit 1, room 101" in lines[2]
    code, out, _ = sb("alarms", "show", str(alarm.id))
    assert code == 0
    assert "Alarm 1: confirmed" in out
    assert "confirmed: 2023-11-15 06:13:29 (+9 s)" in out
    timeline = out.split("timeline:")[1].splitlines()[1:]
    assert [line.split()[2] for line in timeline] == [
        "opened", "ringing", "ringing", "ringing", "busy", "answered", "confirmed"]
    assert timeline[0].split()[:2] == ["06:13:20.0", "+0.0s"]
    assert timeline[4].split()[1:4] == ["+5.0s", "busy", "+8659187650003"]
    code, out, _ = sb("alarms", "close", "2", "--note", "false alarm, checked in person")
    assert code == 0
    code, out, _ = sb("alarms", "show", "2")
    assert "ended:" in out and "closed by staff: false alarm, checked in person" in out
    code, _, err = sb("alarms", "close", "2")
    assert code == 1 and "already closed" in err
    code, _, err = sb("alarms", "show", "99")
    assert code == 1
