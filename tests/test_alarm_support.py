"""
Helpers for the alarm tests (no tests here): a real SQLite database run
synchronously, a fake of the AMI client, the shared fake FastAGI session
(L{tests.support.agi}), and ready-made configurations and households.
"""

from __future__ import annotations

from twisted.internet import defer, task
from twisted.python.failure import Failure

import alarm.models  # noqa: F401  (declares the tables)
from switchboard.community import models as community
from alarm.config import AlarmConfig, Stage
from alarm.index import HouseholdSnapshot
from alarm.recorder import AlarmRecorder
from switchboard.ringgroup.testing import FakeCallPlacer
from switchboard.dialing import Dialer
from switchboard.numbers import NumberPlan
from switchboard.storage import Base, Database
from tests import databases
from tests.support.agi import FakeSession  # noqa: F401  (the alarm tests' session)

PLAN = NumberPlan("CN", "591")
DIALER = Dialer(PLAN, {"default": "PJSIP/{number}"})
DUTY = "+8659187650190"
SECURITY = "+8659187650191"
OUTSIDE = "+8659187650199"


def number(n: int) -> str:
    """The E.164 number of lab phone 8765NNNN."""
    return f"+86591876{50000 + n:05d}"


def database(tmp_path) -> Database:
    db = Database(databases.url(tmp_path, "alarm"))
    Base.metadata.create_all(db.engine)
    return db


class SyncDatabase:
    """
    L{Database.run} done at once on the calling thread: C{run} returns an
    already fired Deferred, or a held one (C{hold = True}) that L{release}
    fires. C{fail_next} makes that many calls fail before touching the data.
    """

    def __init__(self, db: Database):
        self.db = db
        self.hold = False
        self.held: list = []
        self.fail_next = 0
        self.calls = 0

    def run(self, work):
        self.calls += 1
        if self.fail_next:
            self.fail_next -= 1
            return defer.fail(RuntimeError("database is locked"))
        if self.hold:
            d = defer.Deferred()
            self.held.append((work, d))
            return d
        return self._do(work)

    def _do(self, work):
        try:
            with self.db.sessions.begin() as session:
                return defer.succeed(work(session))
        except Exception:
            return defer.fail(Failure())

    def release(self):
        """Run the oldest held work and fire its Deferred."""
        work, d = self.held.pop(0)
        self._do(work).chainDeferred(d)

    def session(self):
        return self.db.session()

    @property
    def sessions(self):
        return self.db.sessions


class FakeAMI(FakeCallPlacer):
    """
    The parts of C{AMIClient} the alarm uses, recording what is asked: the
    calls of a verified L{FakeCallPlacer}, ConfBridge kicks and AstDB.
    """

    def __init__(self):
        super().__init__()
        self.kicks: list = []
        self.actions: list = []
        self.db_result = None        # makes the Deferred each db write returns, if set
        self.astdb: dict = {}

    def kick(self, room):
        self.kicks.append(room)
        return defer.succeed(None)

    def _db(self, *action):
        self.actions.append(action)
        if self.db_result is not None:
            d = self.db_result()
            d.addCallback(lambda _: self._store(action))
            return d
        self._store(action)
        return defer.succeed(True)

    def _store(self, action):
        kind, family = action[:2]
        if kind == "put":
            self.astdb[(family, action[2])] = action[3]
        elif kind == "del":
            self.astdb.pop((family, action[2]), None)
        elif kind == "deltree":
            for key in [k for k in self.astdb if k[0] == family]:
                del self.astdb[key]
        return True

    def db_put(self, family, key, value):
        return self._db("put", family, key, value)

    def db_tree(self, family, each, key=None):
        self.actions.append(("tree", family) if key is None else ("tree", family, key))
        entries = [(k[1], v) for k, v in self.astdb.items() if k[0] == family
                   and (key is None or k[1].startswith(key + "/"))]
        for key, value in entries:
            each(key, value)
        return defer.succeed(len(entries))

    def db_get(self, family, key):
        self.actions.append(("get", family, key))
        return defer.succeed(self.astdb.get((family, key)))

    def db_del(self, family, key):
        return self._db("del", family, key)

    def db_deltree(self, family, key=None):
        return self._db("deltree", family)  # the whole family: all the alarm deletes

    def family(self, family="swb_alarm"):
        """What AstDB holds in C{family}: key -> value."""
        return {k: v for (f, k), v in self.astdb.items() if f == family}

    def to(self, target):
        """The calls made to the E.164 C{target}."""
        dial = DIALER.dial_string(target)
        return [c for c in self.calls if c.channel == dial]


def config(**overrides) -> AlarmConfig:
    values = dict(
        stages=(Stage("duty officer", 60.0, (DUTY,)),
                Stage("property security", 120.0, (SECURITY,)),
                Stage("outside", 180.0, (OUTSIDE,))),
        ring_timeout=30.0, confirm_within=45.0, retry_unanswered=1, retry_after=10.0,
        repeat_every=0.0, originate_retry=2.0)
    values.update(overrides)
    return AlarmConfig(**values)


def household(hid=1, neighbours=10, *, own=1, building="3", unit="1", room="101",
              notes="") -> HouseholdSnapshot:
    """A snapshot of household C{hid} calling from lab phone C{own}."""
    mine = (number(own),)
    ring = tuple(number(own + i) for i in range(1, neighbours + 1))
    return HouseholdSnapshot(hid, 1, "Hualin Garden", building, unit, room, notes, mine, ring)


def add_household(db, hid=1, own=1):
    """A row for household C{hid} (alarms refer to it)."""
    with db.sessions.begin() as session:
        session.add(community.Household(id=hid, building="3", unit="1", room="101"))


def timeline(db, alarm_id=None):
    """The (kind, number, detail) of every event recorded, in order."""
    from sqlalchemy import select
    from alarm.models import AlarmEvent
    with db.session() as session:
        q = select(AlarmEvent).order_by(AlarmEvent.id)
        if alarm_id is not None:
            q = q.where(AlarmEvent.alarm_id == alarm_id)
        return [(e.kind, e.number, e.detail) for e in session.execute(q).scalars()]


def alarm_row(db, alarm_id):
    with db.session() as session:
        return session.get(alarm.models.Alarm, alarm_id)


class Rig:
    """A coordinator on a real (synchronous) database, a fake AMI and a clock."""

    def __init__(self, tmp_path, **config_overrides):
        from alarm.coordinator import AlarmCoordinator
        self.clock = task.Clock()
        self.clock.advance(1_700_000_000)
        self.db = database(tmp_path)
        self.sync = SyncDatabase(self.db)
        from switchboard.journal import Journal
        self.journal_folder = f"{tmp_path}/journal"
        self.recorder = AlarmRecorder(self.sync, Journal(self.journal_folder, "alarm"),
                                      clock=self.clock)
        self.recorder.start()  # synchronous here: the journal replayed, the highest id read
        self.ami = FakeAMI()
        self.config = config(**config_overrides)
        self.coordinator = AlarmCoordinator(DIALER, self.ami, self.recorder, self.config,
                                            self.clock, hotline_number="12345",
                                            kick=self.ami.kick)

    def later(self, seconds):
        self.clock.advance(seconds)
