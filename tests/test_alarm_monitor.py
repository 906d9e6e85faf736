"""The server notices what the CLI (another process) changed."""

import pytest
import os
import tempfile

from twisted.internet import defer, task
from twisted.trial.unittest import SynchronousTestCase

from switchboard.community import csvfile
from alarm.astdb import AstDBSync
from alarm.index import CallerIndex
from alarm.models import Alarm
from alarm.monitor import RegistryWatcher
from switchboard.community.registry import Registry

from tests.test_alarm_support import DIALER, PLAN, Rig, number

pytestmark = pytest.mark.database

SAMPLE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "config", "households.csv")


class WatcherTests(SynchronousTestCase):
    def setUp(self):
        self.rig = Rig(tempfile.mkdtemp())
        self.registry = Registry(self.rig.db, PLAN)
        csvfile.import_csv(self.registry, SAMPLE)
        self.index = CallerIndex(self.rig.sync, PLAN)
        self.successResultOf(self.index.load())
        self.astdb = AstDBSync(self.rig.ami, self.index, DIALER, self.rig.config,
                               clock=self.rig.clock, rate=1e9,
                               run_in_thread=lambda f, *a: defer.maybeDeferred(f, *a))
        self.successResultOf(self.astdb.resync())
        self.watcher = RegistryWatcher(self.index, self.astdb, self.rig.coordinator,
                                       self.rig.recorder, interval=5, clock=self.rig.clock)
        self.watcher.start()
        self.addCleanup(self.watcher.stop)

    def test_registry_change_reaches_index_and_astdb(self):
        self.registry.set_neighbours("87650003", [(number(9), "")])
        self.assertEqual(len(self.index.lookup("87650003").neighbours), 10)
        self.rig.clock.advance(5)
        self.assertEqual(self.index.lookup("87650003").neighbours, (number(9),))
        self.assertEqual(self.rig.ami.family("swb_ring")["03/8659187650003"], "PJSIP/87650009")

    def test_alarm_closed_by_staff_stops_here(self):
        alarm = self.successResultOf(self.rig.coordinator.raise_alarm(
            "87650001", self.index.lookup("87650001")))
        with self.rig.db.sessions.begin() as session:
            row = session.get(Alarm, alarm.id)
            row.status, row.closed_at, row.outcome = "closed", row.opened_at, "closed by staff"
        self.rig.clock.advance(5)
        self.assertEqual(alarm.status, "closed")
        self.rig.clock.advance(300)
        self.assertEqual(len(self.rig.ami.calls), 10, "no escalation after a staff close")

    def test_failure_does_not_stop_watching(self):
        self.rig.sync.fail_next = 1
        self.rig.clock.advance(5)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.registry.set_neighbours("87650003", [])
        self.rig.clock.advance(5)
        self.assertEqual(self.index.lookup("87650003").neighbours, ())
        self.assertNotIn("03/8659187650003", self.rig.ami.family("swb_ring"))


def test_clock_loop_stops():
    clock = task.Clock()

    class Index:
        calls = 0

        def refresh(self):
            Index.calls += 1
            return defer.succeed([])

    watcher = RegistryWatcher(Index(), clock=clock, interval=2)
    watcher.start()
    for _ in range(3):
        clock.advance(2)
    watcher.stop()
    clock.advance(10)
    assert Index.calls == 3


class SlowIndex:
    """An index whose refreshes the test finishes by hand."""

    def __init__(self):
        self.refreshes = []

    def refresh(self):
        d = defer.Deferred()
        self.refreshes.append(d)
        return d


class PokeTests(SynchronousTestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.index = SlowIndex()
        self.watcher = RegistryWatcher(self.index, interval=5, clock=self.clock)

    def test_a_poke_looks_at_once_and_one_during_a_round_makes_one_more(self):
        self.watcher.poke("registry")
        self.assertEqual(self.index.refreshes, [], "not started: not watching")
        self.watcher.start()
        self.addCleanup(self.watcher.stop)
        self.watcher.poke("registry")
        self.assertEqual(len(self.index.refreshes), 1)
        self.watcher.poke("registry")
        self.watcher.poke("alarms")
        self.clock.advance(5)          # the periodic look, during the round too
        self.assertEqual(len(self.index.refreshes), 1)
        self.index.refreshes[0].callback([])
        self.assertEqual(len(self.index.refreshes), 2, "one more round, not three")
        self.index.refreshes[1].callback([])
        self.assertEqual(len(self.index.refreshes), 2)
        self.clock.advance(5)
        self.assertEqual(len(self.index.refreshes), 3)
