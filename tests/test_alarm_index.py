"""The in-memory caller index."""

import gc
import os

import pytest

from switchboard.community import csvfile
from alarm.index import CallerIndex, CallerTable, SnapshotBuilder, form_key
from switchboard.community.registry import HouseholdData, Registry
from switchboard.numbers import NumberPlan

from tests.test_alarm_support import PLAN, SyncDatabase, database, number

pytestmark = pytest.mark.database

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
    smaller = table.remapped([0, -1, -1, 3], [(form_key("5"), 9)])
    assert [smaller.get(form_key(f)) for f in forms + ["5"]] == [0, None, None, 3, 9]


@pytest.mark.parametrize("plan", [PLAN, NumberPlan("CN", ""), NumberPlan("CN", "10"),
                                  NumberPlan("IT", "06"), NumberPlan("GB", "20")])
def test_builder_forms_are_the_plans(plan):
    """The string-operation forms are exactly L{NumberPlan.variants}."""
    builder = SnapshotBuilder(plan)
    for e164 in ("+8659187650001", "+8613912345678", "+861012345678", "+85221234567",
                 "+442079460000", "+390612345678", "+393471234567", "+12025550123",
                 "+8659122000001", "+8675512345678"):
        assert builder.variants(e164) == plan.variants(e164), (plan, e164)


CALLERS = [number(n) for n in range(1, 14)] + [
    f(n) for n in (1, 3, 12, 13) for f in (
        lambda n: f"8765{n:04d}", lambda n: f"0591{8765_0000 + n}", lambda n: f"86591{8765_0000 + n}",
        lambda n: f"0086591{8765_0000 + n}", lambda n: f"591{8765_0000 + n}",
        lambda n: f" +86 (591) 8765-{n:04d} ", lambda n: f"0591-8765 {n:04d}")] + [
    None, "", "anonymous", "87659999", "+442079460000", "12", "1" * 40, "87650001x",
    "８７６５０００１", "+", "00", "0", "13912345678"]


def test_find_before_the_load_answers_as_the_loaded_index(registry):
    """From the database while the index is not loaded: the same households."""
    index = CallerIndex(SyncDatabase(registry.database), PLAN)
    assert not index.loaded and len(index) == 0
    before = {}
    for caller in CALLERS:
        index.find(caller).addCallback(lambda h, c=caller: before.__setitem__(c, h))
    index.load()
    assert index.loaded
    for caller in CALLERS:
        expected = index.lookup(caller)
        got = before[caller]
        if expected is None:
            assert got is None, caller
        else:
            assert (got.id, got.numbers, got.neighbours, got.address, got.notes) == (
                expected.id, expected.numbers, expected.neighbours, expected.address,
                expected.notes), caller
    assert sum(h is not None for h in before.values()) == 12 + 3 * 7 + 1  # + full-width


def test_find_after_the_load_is_from_memory(registry):
    sync = SyncDatabase(registry.database)
    index = CallerIndex(sync, PLAN)
    index.load()
    calls = sync.calls
    found = []
    index.find("87650003").addCallback(found.append)
    assert found == [index.lookup("87650003")] and sync.calls == calls


def test_households_from_the_database(registry):
    index = CallerIndex(SyncDatabase(registry.database), PLAN)
    out = []
    index.households([3, 1, 999]).addCallback(out.append)
    assert sorted(out[0]) == [1, 3]
    assert out[0][3].neighbours[:3] == (number(2), number(4), number(1))


def test_the_collector_is_back_on_after_a_load(index):
    assert gc.isenabled()
    gc.disable()
    try:
        index.load()
        assert not gc.isenabled()  # left as it was found
    finally:
        gc.enable()


def test_a_big_table_is_sorted_in_runs_with_pauses_between():
    import random
    rng = random.Random(4)
    pairs = [(rng.randrange(10 ** 8, 10 ** 16), i) for i in range(20000)]
    pairs += [(pairs[7][0], 3), (pairs[7][0], 20001)]  # a form two households share
    steps = []
    table = CallerTable(pairs, lambda: steps.append(1))
    ordered = sorted(pairs)
    assert list(table.keys) == [k for k, _ in ordered]
    assert list(table.values) == [v for _, v in ordered]
    assert table.get(pairs[7][0]) == 3  # the smallest value of a shared key
    assert len(steps) > 100
    assert len(pairs) == 20002  # the caller's list is left as it was


def test_pause_load_holds_the_build_until_every_pause_is_resumed(index):
    first, second = index.pause_load(), index.pause_load()
    assert not index._may_build.is_set()
    first()
    first()  # once only
    assert not index._may_build.is_set()
    second()
    assert index._may_build.is_set()
    index._pace()  # not paused: returns at once


def test_a_paused_build_goes_on_after_the_longest_pause(index):
    index.longest_pause = 0.0
    resume = index.pause_load()
    index._pace()  # waits at most longest_pause
    assert index.load().result == 12
    resume()
