"""The AstDB copy of the registry for the dialplan's native fallback."""

import pytest
import os
import tempfile

from twisted.internet import defer, task
from twisted.trial.unittest import SynchronousTestCase

from alarm.astdb import BUCKETS, AstDBSync, landline_key
from switchboard.community import csvfile
from alarm.config import Stage
from alarm.index import CallerIndex
from switchboard.community.registry import HouseholdData, Registry
from switchboard.ami import AMINotConnected

from tests.test_alarm_support import (
    DIALER,
    PLAN,
    FakeAMI,
    SyncDatabase,
    config,
    database,
    number,
)

pytestmark = pytest.mark.database

SAMPLE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "config", "households.csv")


def inline(f, *args):
    return defer.maybeDeferred(f, *args)


class Case(SynchronousTestCase):
    def setUp(self):
        self.db = database(tempfile.mkdtemp())
        self.registry = Registry(self.db, PLAN)
        csvfile.import_csv(self.registry, SAMPLE)
        self.index = CallerIndex(SyncDatabase(self.db), PLAN)
        self.successResultOf(self.index.load())
        self.ami = FakeAMI()
        self.clock = task.Clock()
        self.sync = AstDBSync(self.ami, self.index, DIALER, config(), clock=self.clock,
                              run_in_thread=inline, window=5, rate=1e9, batch=4)

    def writes(self):
        return [a for a in self.ami.actions if a[0] not in ("get", "tree")]

    def ring(self):
        return self.ami.family("swb_ring")

    def old(self):
        return self.ami.family("swb_alarm")


def key(n):
    """The swb_ring key of lab phone 8765NNNN."""
    return landline_key(number(n))


FIRST = "&".join(f"PJSIP/8765{n:04d}" for n in range(2, 12))


class ResyncTests(Case):
    def test_one_key_per_landline_read_back_bucket_by_bucket(self):
        written = self.successResultOf(self.sync.resync())
        held = self.ring()
        self.assertEqual(key(1), "01/8659187650001")
        self.assertEqual(held[key(1)], FIRST)
        self.assertEqual(held[key(12)], "PJSIP/87650011&PJSIP/87650010&PJSIP/87650009")
        self.assertEqual(held["duty"], "PJSIP/87650190")
        self.assertEqual(held["area"], "591")  # what the dialplan completes local numbers with
        self.assertEqual(len(held), 12 + 2)
        self.assertEqual(written, len(held))
        # Never the whole family at once: a hundred subtrees, one after another.
        trees = [a for a in self.ami.actions if a[0] == "tree"]
        self.assertEqual(trees, [("tree", "swb_ring", b) for b in BUCKETS])
        self.assertEqual(self.ami.actions[-1], ("deltree", "swb_alarm"))

    def test_household_without_neighbours_has_no_key(self):
        self.registry.set_neighbours("87650012", [])
        self.successResultOf(self.index.load())
        self.successResultOf(self.sync.resync())
        self.assertNotIn(key(12), self.ring())
        self.assertIn(key(11), self.ring())

    def test_rewritten_in_place_then_left_overs_deleted(self):
        self.successResultOf(self.sync.resync())
        # While this server was away: a household lost its neighbours, a
        # landline left the registry, and AstDB holds a key nobody owns.
        self.registry.set_neighbours("87650012", [])
        self.ami.astdb[("swb_ring", key(9999))] = "PJSIP/87650001"
        self.successResultOf(self.index.load())
        self.ami.actions.clear()
        held_during = []
        self.ami.db_result = lambda: defer.succeed(held_during.append(self.ring().get(key(1))))
        self.successResultOf(self.sync.resync())
        # Every household kept a value the whole time: old or new, never none.
        self.assertNotIn(None, held_during)
        held = self.ring()
        self.assertNotIn(key(9999), held)
        self.assertNotIn(key(12), held)
        self.assertIn(key(11), held)
        deleted = sorted(a[2] for a in self.ami.actions if a[0] == "del")
        self.assertEqual(deleted, sorted([key(12), key(9999)]))
        self.assertEqual(self.writes()[-2][0], "del", "deleted after everything is written")

    def test_in_step_after_reconnect(self):
        self.successResultOf(self.sync.resync())
        self.ami.actions.clear()
        self.assertEqual(self.successResultOf(self.sync.resync()), 0)
        self.assertEqual(self.writes(), [("deltree", "swb_alarm")], "read back, nothing written")
        self.assertEqual(len([a for a in self.ami.actions if a[0] == "tree"]), 100)
        # A changed duty phone is the one key written.
        self.sync.config = config(stages=(Stage("duty", 60.0, ("PJSIP/duty-office",)),))
        self.assertEqual(self.successResultOf(self.sync.resync()), 1)
        self.assertEqual(self.ring()["duty"], "PJSIP/duty-office")

    def test_an_older_servers_flat_family_is_replaced_never_leaving_a_gap(self):
        # What an older server left: every caller-ID form of every landline
        # (other neighbours for 87650001), the stamp it trusted, a household
        # gone since.
        old = "&".join(f"PJSIP/8765{n:04d}" for n in range(150, 160))
        for snapshot in self.index:
            for e164 in snapshot.numbers:
                for form in PLAN.variants(e164):
                    self.ami.astdb[("swb_alarm", form)] = old
        self.ami.astdb[("swb_alarm", "stamp")] = f"v{self.index.version} 0badc0de"
        self.ami.astdb[("swb_alarm", "duty")] = "PJSIP/87650190"
        self.ami.astdb[("swb_alarm", "87659999")] = old
        every_form = PLAN.variants(number(1))

        def found():
            # What the dialplan finds for 87650001 in any form: the new key, else the old.
            new = self.ring().get(key(1))
            return [new or self.old().get(form) for form in every_form]

        seen = []
        self.ami.db_result = lambda: defer.succeed(seen.append(found()))
        self.successResultOf(self.sync.resync())
        self.assertTrue(seen)
        self.assertTrue(all(v is not None for values in seen for v in values), "never a gap")
        self.assertEqual(self.old(), {}, "the old family is gone, keys of gone households too")
        self.assertEqual(self.ring()[key(1)], FIRST)
        writes = self.writes()
        last_put = max(i for i, a in enumerate(writes) if a[0] == "put")
        first_old_del = min(i for i, a in enumerate(writes) if a[1] == "swb_alarm")
        self.assertLess(last_put, first_old_del, "the old family goes after the new is written")
        # This registry's keys one at a time (bounded), the rest in one DBDelTree.
        old_dels = {a[2] for a in writes if a[0] == "del" and a[1] == "swb_alarm"}
        self.assertEqual(len(old_dels), 12 * 6 + 2)
        self.assertEqual(writes[-1], ("deltree", "swb_alarm"))
        self.assertFalse(self.sync.stale)
        self.assertFalse(self.sync.old_family)

    def test_a_stray_old_key_alone_is_deleted_too(self):
        self.ami.astdb[("swb_alarm", "87659999")] = "PJSIP/87650001"
        self.successResultOf(self.sync.resync())
        self.assertEqual(self.old(), {})
        self.assertEqual([a for a in self.writes() if a[1] == "swb_alarm"],
                         [("deltree", "swb_alarm")], "no key of this registry found there")

    def test_a_key_edited_by_hand_is_put_right(self):
        self.successResultOf(self.sync.resync())
        right = self.ring()[key(3)]
        self.ami.astdb[("swb_ring", key(3))] = "PJSIP/87650199"
        self.ami.actions.clear()
        self.assertEqual(self.successResultOf(self.sync.resync()), 1)
        self.assertEqual(self.ring()[key(3)], right)

    def test_window_and_rate(self):
        pending = []

        def answer():
            d = defer.Deferred()
            pending.append(d)
            return d

        self.ami.db_result = answer
        self.sync.rate = 10.0
        self.sync.batch = 100
        written = []
        self.sync.resync(force=True).addCallback(written.append)
        most = 0
        while not written:
            most = max(most, len(pending))
            for waiting in list(pending):
                pending.remove(waiting)
                waiting.callback(True)
            self.clock.advance(0.1)
        self.assertEqual(most, 5)
        self.assertEqual(written, [12 + 2])
        # 14 keys at 10 a second, after a first burst of one window.
        self.assertGreaterEqual(self.clock.seconds(), (14 - 5) / 10)
        self.assertEqual(len(self.ring()), 12 + 2)

    def test_link_lost_midway_then_rewritten(self):
        calls = []

        def flaky():
            calls.append(1)
            if len(calls) > 6:
                return defer.fail(AMINotConnected("link down"))
            return defer.succeed(True)

        self.ami.db_result = flaky
        self.assertEqual(self.successResultOf(self.sync.resync()), 0)
        self.assertEqual(len(self.flushLoggedErrors(AMINotConnected)), 1)
        self.assertTrue(self.sync.stale)
        self.ami.db_result = None
        self.successResultOf(self.sync.resync())
        self.assertEqual(len(self.ring()), 12 + 2)
        self.assertFalse(self.sync.stale)

    def test_newer_resync_stops_older(self):
        gate = defer.Deferred()
        self.sync.run_in_thread = lambda f, *a: gate.addCallback(lambda _: f(*a))
        first = self.sync.resync(force=True)
        second = self.sync.resync(force=True)
        self.sync.run_in_thread = inline
        gate.callback(None)
        self.assertEqual(self.successResultOf(first), 0, "stopped by the newer one")
        self.assertEqual(self.successResultOf(second), 12 + 2)
        self.assertEqual(self.ami.actions.count(("tree", "swb_ring", "01")), 1)


class ChangeTests(Case):
    def setUp(self):
        super().setUp()
        self.successResultOf(self.sync.resync())
        self.ami.actions.clear()

    def refresh(self):
        changes = self.successResultOf(self.index.refresh())
        return self.successResultOf(self.sync.apply(changes))

    def test_neighbours_changed(self):
        self.registry.set_neighbours("87650003", [(number(7), ""), (number(8), "")])
        self.refresh()
        self.assertEqual(self.writes(), [("put", "swb_ring", key(3),
                                          "PJSIP/87650007&PJSIP/87650008")])

    def test_landline_changed_old_key_removed(self):
        h = self.registry.find("87650004")
        data = HouseholdData(numbers=[number(40)], building="3", unit="1", room="202",
                             neighbours=[(n.number, n.name) for n in h.neighbours], id=h.id)
        self.registry.store([data])
        self.refresh()
        family = self.ring()
        self.assertNotIn(key(4), family)
        self.assertIn(key(40), family)
        self.assertEqual([a[2] for a in self.writes() if a[0] == "del"], [key(4)])

    def test_household_removed(self):
        self.registry.remove("87650005")
        self.refresh()
        self.assertNotIn(key(5), self.ring())
        self.assertEqual(len(self.ring()), 11 + 2)

    def test_household_removed_while_the_old_family_may_be_there(self):
        # Before a resync deleted swb_alarm, the dialplan would find the
        # household's old key there once its swb_ring key is gone.
        for form in PLAN.variants(number(5)):
            self.ami.astdb[("swb_alarm", form)] = "PJSIP/87650006"
        self.sync.old_family = True
        self.registry.remove("87650005")
        self.refresh()
        self.assertNotIn(key(5), self.ring())
        self.assertEqual(self.old(), {})

    def test_nothing_changed(self):
        self.assertEqual(self.refresh(), 0)
        self.assertEqual(self.ami.actions, [])

    def test_while_disconnected(self):
        self.ami.connected = False
        self.registry.set_neighbours("87650003", [(number(7), "")])
        self.refresh()
        self.assertEqual(self.ami.actions, [])
        self.assertTrue(self.sync.stale)
        # The next connect reads AstDB back and writes what differs.
        self.ami.connected = True
        self.successResultOf(self.sync.resync())
        self.assertEqual(self.ring()[key(3)], "PJSIP/87650007")

    def test_duty_changed(self):
        new = config(stages=(Stage("duty", 60.0, ("PJSIP/duty-office", number(191))),))
        self.successResultOf(self.sync.duty_changed(new))
        self.assertEqual(self.ring()["duty"], "PJSIP/duty-office&PJSIP/87650191")
