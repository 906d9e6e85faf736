"""The AstDB copy of the registry for the dialplan's native fallback."""

import pytest
import os
import tempfile

from twisted.internet import defer, task
from twisted.trial.unittest import SynchronousTestCase

from switchboard.community import csvfile
from alarm.astdb import AstDBSync
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


class ResyncTests(Case):
    def test_every_form_of_every_landline(self):
        written = self.successResultOf(self.sync.resync())
        held = self.ami.family()
        self.assertEqual(self.ami.actions[:2], [("tree", "swb_alarm"),
                                               ("put", "swb_alarm", "duty", "PJSIP/87650190")])
        first = "&".join(f"PJSIP/8765{n:04d}" for n in range(2, 12))
        for form in ("87650001", "059187650001", "59187650001", "+8659187650001",
                     "8659187650001", "008659187650001"):
            self.assertEqual(held[form], first, form)
        self.assertEqual(held["87650012"], "PJSIP/87650011&PJSIP/87650010&PJSIP/87650009")
        self.assertEqual(len(held), 12 * 6 + 1)  # six forms per landline, and duty
        self.assertEqual(written, len(held))

    def test_household_without_neighbours_has_no_key(self):
        self.registry.set_neighbours("87650012", [])
        self.successResultOf(self.index.load())
        self.successResultOf(self.sync.resync())
        self.assertNotIn("87650012", self.ami.family())
        self.assertIn("87650011", self.ami.family())

    def test_rewritten_in_place_then_left_overs_deleted(self):
        self.successResultOf(self.sync.resync())
        # While this server was away: a household lost its neighbours, a
        # landline left the registry, and AstDB holds a key nobody owns.
        self.registry.set_neighbours("87650012", [])
        self.ami.astdb[("swb_alarm", "87659999")] = "PJSIP/87650001"
        self.successResultOf(self.index.load())
        self.ami.actions.clear()
        held_during = []
        self.ami.db_result = lambda: defer.succeed(
            held_during.append(self.ami.family().get("87650001")))
        self.successResultOf(self.sync.resync())
        self.assertNotIn(("deltree", "swb_alarm"), self.ami.actions)
        # Every household kept a value the whole time: old or new, never none.
        self.assertNotIn(None, held_during)
        held = self.ami.family()
        self.assertNotIn("87659999", held)
        self.assertNotIn("87650012", held)
        self.assertNotIn("+8659187650012", held)
        self.assertIn("87650011", held)
        deleted = sorted(a[2] for a in self.ami.actions if a[0] == "del")
        self.assertEqual(len(deleted), 7)  # six forms of one landline, and the stray key
        self.assertEqual(self.writes()[-1][0], "del", "deleted after everything is written")

    def test_in_step_after_reconnect(self):
        self.successResultOf(self.sync.resync())
        self.ami.actions.clear()
        self.assertEqual(self.successResultOf(self.sync.resync()), 0)
        self.assertEqual(self.ami.actions, [("tree", "swb_alarm")], "read back, nothing written")
        # A changed duty phone is the one key written.
        self.sync.config = config(stages=(Stage("duty", 60.0, ("PJSIP/duty-office",)),))
        self.assertEqual(self.successResultOf(self.sync.resync()), 1)
        self.assertEqual(self.ami.family()["duty"], "PJSIP/duty-office")

    def test_another_registry_with_the_same_number_of_changes_is_put_right(self):
        # What an older registry left in AstDB, under the "stamp" an older
        # server would have taken for the current one (same change count).
        self.ami.astdb[("swb_alarm", "stamp")] = f"v{self.index.version} 0badc0de"
        old = "&".join(f"PJSIP/8765{n:04d}" for n in range(150, 160))
        for form in PLAN.variants(number(1)):
            self.ami.astdb[("swb_alarm", form)] = old
        self.ami.astdb[("swb_alarm", "duty")] = "PJSIP/87650190"
        self.successResultOf(self.sync.resync())
        held = self.ami.family()
        current = "&".join(f"PJSIP/8765{n:04d}" for n in range(2, 12))
        for form in PLAN.variants(number(1)):
            self.assertEqual(held[form], current)
        # Households the old registry did not know have their keys too.
        self.assertEqual(len(held), 12 * 6 + 1)
        self.assertNotIn("stamp", held)
        self.assertFalse(self.sync.stale)

    def test_a_key_edited_by_hand_is_put_right(self):
        self.successResultOf(self.sync.resync())
        self.ami.astdb[("swb_alarm", "+8659187650003")] = "PJSIP/87650199"
        self.ami.actions.clear()
        self.assertEqual(self.successResultOf(self.sync.resync()), 1)
        self.assertEqual(self.ami.family()["+8659187650003"], self.ami.family()["87650003"])

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
        self.assertEqual(written, [12 * 6 + 1])
        # 72 household keys at 10 a second, after a first burst of one window.
        self.assertGreaterEqual(self.clock.seconds(), (72 - 5) / 10)
        self.assertEqual(len(self.ami.family()), 12 * 6 + 1)

    def test_link_lost_midway_then_rewritten(self):
        calls = []

        def flaky():
            calls.append(1)
            if len(calls) > 10:
                return defer.fail(AMINotConnected("link down"))
            return defer.succeed(True)

        self.ami.db_result = flaky
        self.assertEqual(self.successResultOf(self.sync.resync()), 0)
        self.assertEqual(len(self.flushLoggedErrors(AMINotConnected)), 1)
        self.assertTrue(self.sync.stale)
        self.ami.db_result = None
        self.successResultOf(self.sync.resync())
        self.assertEqual(len(self.ami.family()), 12 * 6 + 1)
        self.assertFalse(self.sync.stale)

    def test_newer_resync_stops_older(self):
        gate = defer.Deferred()
        self.sync.run_in_thread = lambda f, *a: gate.addCallback(lambda _: f(*a))
        first = self.sync.resync(force=True)
        second = self.sync.resync(force=True)
        self.sync.run_in_thread = inline
        gate.callback(None)
        self.assertEqual(self.successResultOf(first), 0, "stopped by the newer one")
        self.assertEqual(self.successResultOf(second), 12 * 6 + 1)
        self.assertEqual(self.ami.actions.count(("tree", "swb_alarm")), 2)


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
        puts = {a[2] for a in self.writes() if a[0] == "put"}
        self.assertEqual(puts, set(PLAN.variants(number(3))))
        self.assertEqual(self.ami.family()["87650003"], "PJSIP/87650007&PJSIP/87650008")

    def test_landline_changed_old_forms_removed(self):
        h = self.registry.find("87650004")
        data = HouseholdData(numbers=[number(40)], building="3", unit="1", room="202",
                             neighbours=[(n.number, n.name) for n in h.neighbours], id=h.id)
        self.registry.store([data])
        self.refresh()
        family = self.ami.family()
        self.assertNotIn("87650004", family)
        self.assertNotIn("+8659187650004", family)
        self.assertEqual(family["87650040"], family["059187650040"])
        dels = {a[2] for a in self.writes() if a[0] == "del"}
        self.assertEqual(dels, set(PLAN.variants(number(4))))

    def test_household_removed(self):
        self.registry.remove("87650005")
        self.refresh()
        self.assertNotIn("87650005", self.ami.family())
        self.assertEqual(len(self.ami.family()), 11 * 6 + 1)

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
        self.assertEqual(self.ami.family()["87650003"], "PJSIP/87650007")

    def test_duty_changed(self):
        new = config(stages=(Stage("duty", 60.0, ("PJSIP/duty-office", number(191))),))
        self.successResultOf(self.sync.duty_changed(new))
        self.assertEqual(self.ami.family()["duty"], "PJSIP/duty-office&PJSIP/87650191")
