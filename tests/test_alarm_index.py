"""The in-memory caller index."""

import os

import pytest

from alarm import csvfile
from alarm.index import CallerIndex, CallerTable, form_key
from alarm.registry import HouseholdData, Registry

from tests.test_alarm_support import PLAN, SyncDatabase, database, number

SAMPLE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "config", "households.csv")


@pytest.fixture
def registry(tmp_path):
    registry = Registry(database(tmp_path), PLAN)
    csvfile.import_csv(registry, SAMPLE)
    return registry


@pytest.fixture
def index(registry):
    index = CallerIndex(SyncDatabase(registry.database), PLAN)
    result = []
    index.load().addCallback(result.append)
    assert result == [12]
    return index


def refresh(index):
    out = []
    index.refresh().addBoth(out.append)
    return out[0]


def test_every_caller_id_form(index):
    for n in range(1, 13):
        e164 = number(n)
        forms = PLAN.variants(e164)
        assert len(forms) == 6
        for form in forms + ["0591-8765 %04d" % n, " +86 (591) 8765-%04d " % n]:
            found = index.lookup(form)
            assert found is not None and found.numbers == (e164,), form
    assert index.forms() == 12 * 6


def test_snapshot(index):
    h = index.lookup("87650003")
    assert h.address == "Hualin Garden, building 3, unit 1, room 201"
    assert (h.building, h.unit, h.room) == ("3", "1", "201")
    assert h.notes == "uses a wheelchair"
    assert h.neighbours[:3] == (number(2), number(4), number(1))
    assert len(h.neighbours) == 10
    assert index.get(h.id) is h
    assert len(index.lookup("87650012").neighbours) == 3
    # Shared, not copied: the same string object wherever a number appears.
    assert index.lookup("87650001").neighbours[0] is index.lookup("87650003").neighbours[0]


def test_unknown_and_bad_caller_ids(index):
    for caller in (None, "", "anonymous", "87659999", "+442079460000", "12", "1" * 40,
                   "87650001x"):
        assert index.lookup(caller) is None, caller
    # Full-width digits are still digits to the number plan.
    assert index.lookup("８７６５０００１").id == 1


def test_refresh_takes_in_changes(registry, index):
    assert refresh(index) == []
    old = index.lookup("87650003")
    registry.set_neighbours("87650003", [(number(7), "")])
    registry.remove("87650005")
    h = registry.find("87650004")
    registry.store([HouseholdData(numbers=[number(44)], room="202", id=h.id,
                                  neighbours=[(n.number, n.name) for n in h.neighbours])])
    new_id = registry.add(HouseholdData(numbers=[number(60)], room="1"))
    changes = refresh(index)
    assert {(o.id if o else None, n.id if n else None) for o, n in changes} == {
        (old.id, old.id), (5, None), (4, 4), (None, new_id)}
    assert index.lookup("87650003").neighbours == (number(7),)
    assert index.lookup("87650003") is not old
    assert index.lookup("87650005") is None
    assert index.lookup("87650004") is None
    assert index.lookup("059187650044").id == 4
    assert index.lookup("87650060").id == new_id
    assert len(index) == 12
    assert refresh(index) == []


def test_big_change_reloads_everything(registry, index):
    index.full_reload_over = 3
    for n in range(1, 6):
        registry.set_neighbours(f"8765{n:04d}", [])
    assert refresh(index) is None
    assert index.lookup("87650001").neighbours == ()
    assert len(index) == 12


def test_many_households(tmp_path):
    registry = Registry(database(tmp_path), PLAN)
    items = [HouseholdData(numbers=[f"+865918{n:07d}"], room=str(n),
                           neighbours=[(f"+865918{(n + k) % 3000:07d}", "") for k in range(1, 11)])
             for n in range(3000)]
    registry.store(items)
    index = CallerIndex(SyncDatabase(registry.database), PLAN)
    index.load()
    assert index.forms() == 3000 * 6
    for n in range(0, 3000, 7):
        assert index.lookup(f"8{n:07d}").room == str(n)
        assert index.lookup(f"05918{n:07d}").room == str(n)


def test_form_keys_distinct():
    forms = ["87650001", "087650001", "+87650001", "0087650001"]
    assert len({form_key(f) for f in forms}) == 4
    assert form_key("1_000") is None and form_key("+") is None and form_key("12a") is None
    table = CallerTable([(form_key(f), i) for i, f in enumerate(forms)])
    assert [table.get(form_key(f)) for f in forms] == [0, 1, 2, 3]
    assert table.get(form_key("187650001")) is None
    smaller = table.replacing({1, 2}, [(form_key("5"), 9)])
    assert [smaller.get(form_key(f)) for f in forms + ["5"]] == [0, None, None, 3, 9]
