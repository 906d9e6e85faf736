"""
Start-up of the alarm with the real feature and service: the FastAGI port
opens before the caller index has loaded, and a #9 during the load still
finds its household (from the database).
"""

import os
from dataclasses import replace

import pytest
from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock

from switchboard.community import csvfile
from alarm.feature import AlarmFeature
from switchboard.community.registry import Registry
from switchboard.service import SwitchboardService

from tests.test_alarm_support import PLAN, FakeAMI, FakeSession, SyncDatabase, database
from tests.test_service import settings

pytestmark = pytest.mark.database

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class LoadHeldDatabase(SyncDatabase):
    """Everything at once, but the caller index's load, which waits for L{release_load}."""

    def __init__(self, db):
        super().__init__(db)
        self.loads = []

    def run(self, work):
        if work.__qualname__.startswith("CallerIndex._load."):
            d = defer.Deferred()
            self.loads.append((work, d))
            return d
        return super().run(work)

    def release_load(self):
        work, d = self.loads.pop(0)
        self._do(work).chainDeferred(d)


class ServerAMI(FakeAMI):
    """L{FakeAMI} with what the service and the feature's wiring also use."""

    def __init__(self):
        super().__init__()
        self.connect_callbacks = []

    def on_connect(self, callback):
        self.connect_callbacks.append(callback)

    def start(self):
        pass

    def stop(self):
        return defer.succeed(None)

    def subscribe(self, pattern, callback):
        pass

    def when_connected(self):
        return defer.succeed(None)

    def room_size(self, room):
        return defer.succeed(0)

    def send_action(self, name, headers=None, **kwargs):
        return defer.succeed(None)


@pytest.fixture
def server(tmp_path):
    db = database(tmp_path)
    csvfile.import_csv(Registry(db, PLAN), os.path.join(PROJECT, "config", "households.csv"))
    sync = LoadHeldDatabase(db)
    reactor, ami = MemoryReactorClock(), ServerAMI()
    config = replace(settings(tmp_path, alarm=os.path.join(PROJECT, "config", "alarm.yaml")),
                     journal=str(tmp_path / "journal"))
    feature = AlarmFeature(config, sync, ami, reactor=reactor)
    service = SwitchboardService(config, reactor=reactor, database=sync, ami=ami)
    service.add_feature(feature)
    started = []
    service.startService().addBoth(started.append)
    assert started == [None]
    assert sync.loads == []  # the load starts once the port is open
    reactor.advance(0)
    yield service, feature, sync, reactor, ami
    service.stopService()


def alarm_of(feature, callerid):
    session = FakeSession({"callerid": callerid, "channel": f"PJSIP/{callerid}-00000001"})
    feature.handlers["alarm"](session)
    return feature.coordinator.alarm(session.variables["SWITCHBOARD_ALARM"])


def test_the_port_opens_before_the_index_has_loaded(server):
    service, feature, sync, reactor, ami = server
    assert len(sync.loads) == 1 and not feature.index.loaded
    [(port, _, _, _)] = reactor.tcpServers
    assert port == 4599
    assert feature.watcher._loop is None  # the registry watcher waits for the load
    sync.release_load()
    assert feature.index.loaded and len(feature.index) == 12
    assert feature.watcher._loop is not None and feature.watcher._loop.running


def test_a_9_during_the_load_finds_its_household(server):
    service, feature, sync, reactor, ami = server
    during = alarm_of(feature, "059187650003")
    assert not feature.index.loaded
    assert during.household is not None
    assert during.household.address == "Hualin Garden, building 3, unit 1, room 201"
    assert len(ami.calls) == len(during.household.neighbours) == 10
    sync.release_load()
    loaded = feature.index.lookup("059187650003")
    assert (during.household.id, during.household.neighbours) == (loaded.id, loaded.neighbours)


def test_an_unregistered_caller_during_the_load_is_unregistered(server):
    service, feature, sync, reactor, ami = server
    assert alarm_of(feature, "87659999").household is None


def test_astdb_is_resynchronised_only_from_the_loaded_index(server):
    service, feature, sync, reactor, ami = server
    for callback in ami.connect_callbacks:
        callback(ami)
    # An empty index would have AstDB's households deleted: not before the load.
    assert ("get", "swb_ring", "duty") not in ami.actions
    sync.release_load()
    assert ("get", "swb_ring", "duty") in ami.actions


def test_a_failed_load_is_tried_again(server):
    service, feature, sync, reactor, ami = server
    sync.loads.pop(0)[1].errback(RuntimeError("database is locked"))
    assert not feature.index.loaded and sync.loads == []
    assert alarm_of(feature, "87650001").household.id == 1  # meanwhile, from the database
    reactor.advance(feature.load_retry)
    sync.release_load()
    assert feature.index.loaded
    assert feature.watcher._loop.running
