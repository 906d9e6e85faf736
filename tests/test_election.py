"""The elector of singleton duties: on a task.Clock, then two on one real PostgreSQL."""

from __future__ import annotations

import time

import pytest
from twisted.internet import defer, task
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from switchboard.election import (
    AlwaysLeader,
    DedicatedThread,
    Elector,
    ILock,
    PostgresAdvisoryLock,
    for_database,
    lock_key,
)
from switchboard.storage import Database
from tests import databases


@implementer(ILock)
class FakeLock:
    """Answers each question with the next Deferred it is given (or at once)."""

    def __init__(self):
        self.asked: list = []      # ("acquire" | "held", Deferred)
        self.released = 0

    def _ask(self, what):
        d = defer.Deferred()
        self.asked.append((what, d))
        return d

    def acquire(self):
        return self._ask("acquire")

    def held(self):
        return self._ask("held")

    def release(self):
        self.released += 1
        return defer.succeed(None)

    def close(self):
        self.closed = True

    def answer(self, value):
        what, d = self.asked[-1]
        d.callback(value)
        return what


class ElectorTests(SynchronousTestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.lock = FakeLock()
        self.elector = Elector(self.lock, self.clock, every=1.0, timeout=2.0)
        self.heard = []
        self.elector.listeners.append(self.heard.append)
        self.elector.start()

    def test_the_lock_taken_leads_and_is_checked_every_second(self):
        self.assertEqual(self.lock.answer(True), "acquire")
        self.assertEqual((self.elector.leading, self.heard), (True, [True]))
        self.clock.advance(1.0)
        self.assertEqual(self.lock.answer(True), "held")
        self.assertEqual(self.heard, [True])  # told once

    def test_the_lock_held_elsewhere_is_asked_for_again_until_free(self):
        self.lock.answer(False)
        self.clock.advance(1.0)
        self.assertEqual(self.lock.answer(False), "acquire")
        self.assertFalse(self.elector.leading)
        self.clock.advance(1.0)
        self.lock.answer(True)
        self.assertEqual(self.heard, [True])

    def test_a_lost_connection_steps_down_then_asks_again(self):
        self.lock.answer(True)
        self.clock.advance(1.0)
        self.assertEqual(self.lock.answer(False), "held")
        self.assertEqual(self.heard, [True, False])
        self.clock.advance(1.0)
        self.assertEqual(self.lock.asked[-1][0], "acquire")

    def test_a_check_that_fails_steps_down(self):
        self.lock.answer(True)
        self.clock.advance(1.0)
        self.lock.asked[-1][1].errback(RuntimeError("server closed the connection"))
        self.assertEqual(self.heard, [True, False])
        self.flushLoggedErrors(RuntimeError)

    def test_a_check_unanswered_within_the_timeout_steps_down_and_lets_go(self):
        self.lock.answer(True)
        self.clock.advance(1.0)          # the check is asked, and hangs
        self.clock.advance(1.9)
        self.assertTrue(self.elector.leading)
        self.assertEqual(len(self.lock.asked), 2)  # no second question while one hangs
        self.clock.advance(0.1)
        self.assertEqual((self.heard, self.lock.released), ([True, False], 1))
        self.clock.advance(5.0)
        self.assertEqual(len(self.lock.asked), 2)  # nothing piled up behind the stuck one
        self.lock.asked[1][1].callback(True)       # the stale answer changes nothing
        self.assertFalse(self.elector.leading)
        self.clock.advance(1.0)
        self.assertEqual(self.lock.asked[-1][0], "acquire")

    def test_stop_steps_down_and_lets_go(self):
        self.lock.answer(True)
        self.elector.stop()
        self.assertEqual((self.heard, self.lock.released, self.lock.closed),
                         ([True, False], 1, True))
        self.clock.advance(5)
        self.assertEqual(len(self.lock.asked), 1)

    def test_a_failing_listener_costs_the_others_nothing(self):
        def bad(_):
            raise ValueError("bug")
        self.elector.listeners.insert(0, bad)
        self.lock.answer(True)
        self.assertEqual(self.heard, [True])
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)


class AlwaysLeaderTests(SynchronousTestCase):
    def test_alone_on_sqlite_leads_at_once(self):
        clock = task.Clock()
        elector = Elector(AlwaysLeader(), clock)
        elector.start()
        self.assertTrue(elector.leading)
        clock.advance(10)
        self.assertTrue(elector.leading)

    def test_both_locks_provide_ilock(self):
        verifyObject(ILock, AlwaysLeader())
        verifyObject(ILock, PostgresAdvisoryLock(None, "x", DedicatedThread(task.Clock(), "x")))

    def test_keys_are_stable_and_positive(self):
        self.assertEqual(lock_key("alarm"), lock_key("alarm"))
        self.assertNotEqual(lock_key("alarm"), lock_key("campaigns"))
        self.assertTrue(0 < lock_key("alarm") < 2 ** 63)


@pytest.mark.database
class TwoInstancesTests(TestCase):
    """Two electors on one real PostgreSQL (the second pass): kill one, the other leads."""

    timeout = 30

    def setUp(self):
        if not databases.ON_POSTGRES:
            raise self.skipTest("on SQLite one instance is always the leader (test above); "
                                "this runs in the PostgreSQL pass")
        import tempfile
        self.db = Database(databases.url(tempfile.mkdtemp(), "election"))
        self.addCleanup(self.db.close)

    def wait(self, predicate, within):
        from twisted.internet import reactor
        deadline = time.monotonic() + within
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("timed out")
            yield task.deferLater(reactor, 0.05, lambda: None)

    @defer.inlineCallbacks
    def test_the_leaders_connection_killed_the_other_takes_over(self):
        from twisted.internet import reactor
        first = for_database(self.db, "test singleton duties", reactor)
        second = for_database(self.db, "test singleton duties", reactor)
        self.addCleanup(second.stop)
        self.addCleanup(first.stop)
        first.start()
        yield from self.wait(lambda: first.leading, 5)
        second.start()
        yield task.deferLater(reactor, 2.5, lambda: None)  # two tries at least
        self.assertEqual((first.leading, second.leading), (True, False))
        # The leader's connection ends (its server killed, its host gone).
        with self.db.engine.connect() as connection:
            killed = connection.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'"
                " AND granted AND objid = %d" % (lock_key("test singleton duties") & 0xFFFFFFFF)
            ).scalars().all()
        self.assertEqual(killed, [True])
        started = time.monotonic()
        yield from self.wait(lambda: second.leading, 5)
        took = time.monotonic() - started
        yield from self.wait(lambda: not first.leading, 5)
        print(f"\nthe second instance led {took:.2f} s after the first's connection ended")
        self.assertLess(took, 2.5)
        yield task.deferLater(reactor, 1.5, lambda: None)
        self.assertEqual((first.leading, second.leading), (False, True))  # not back and forth


class LeaderOnlyAstDBTests(SynchronousTestCase):
    """AstDB is written by the leading instance only."""

    def test_writes_only_while_leading(self):
        from alarm.singletons import LeaderOnlyAstDB

        class Sync:
            def __init__(self):
                self.done = []

            def resync(self, force=False):
                self.done.append("resync")
                return defer.succeed(None)

            def apply(self, changes):
                self.done.append(("apply", changes))
                return defer.succeed(None)

            def duty_changed(self, config):
                self.done.append("duty")
                return defer.succeed(None)

        lock, sync = FakeLock(), Sync()
        elector = Elector(lock, task.Clock())
        gated = LeaderOnlyAstDB(sync, elector)
        elector.start()
        lock.answer(False)
        for d in (gated.resync(), gated.apply(["x"]), gated.duty_changed(None)):
            self.successResultOf(d)
        self.assertEqual(sync.done, [])
        elector.clock.advance(1.0)
        lock.answer(True)
        gated.resync(), gated.apply(["x"]), gated.duty_changed(None)
        self.assertEqual(sync.done, ["resync", ("apply", ["x"]), "duty"])
