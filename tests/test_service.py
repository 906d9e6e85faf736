"""The service's wiring, with a memory reactor and stand-in features and AMI."""

import gc

from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock

from switchboard.service import SwitchboardService, settle_memory
from switchboard.settings import AGISettings, AMISettings, Settings
from switchboard.numbers import NumberPlan


class FakeAMI:
    def __init__(self):
        self.started = self.stopped = False
        self.connect_callbacks = []

    def on_connect(self, callback):
        self.connect_callbacks.append(callback)

    def start(self):
        self.started = True

    def stop(self):
        self.stopped = True
        return defer.succeed(None)


class Feature:
    def __init__(self, name, events, watched=()):
        self.name, self.events, self.watched = name, events, watched
        self.handlers = {name: lambda session: None}

    def start(self):
        self.events.append(("start", self.name))

    def stop(self):
        self.events.append(("stop", self.name))

    def reload(self, path):
        self.events.append(("reload", self.name, path))

    def ami_connected(self):
        self.events.append(("ami", self.name))


def settings(tmp_path):
    return Settings(path=str(tmp_path / "s.yaml"), agi=AGISettings(port=4599),
                    ami=AMISettings(), database=f"sqlite:///{tmp_path}/db.sqlite",
                    numbers=NumberPlan("CN", "591"), timezone="Asia/Shanghai",
                    trunks={"default": "PJSIP/{number}"}, routing=str(tmp_path / "r.yaml"),
                    alarm=str(tmp_path / "a.yaml"), hotline_number="12345")


def test_features_start_before_the_port_opens_and_stop_in_reverse(tmp_path):
    reactor, ami, events = MemoryReactorClock(), FakeAMI(), []
    server = SwitchboardService(settings(tmp_path), reactor=reactor, ami=ami,
                                settle=lambda: events.append(("settle", reactor.tcpServers[:])))
    server.add_feature(Feature("hotline", events, watched=("r.yaml",)))
    server.add_feature(Feature("alarm", events, watched=("a.yaml",)))
    server.startService()
    # Memory is settled once everything is loaded, before any call can come.
    assert events == [("start", "hotline"), ("start", "alarm"), ("settle", [])]
    [(port, factory, _, interface)] = reactor.tcpServers
    assert (port, interface) == (4599, "127.0.0.1")
    assert sorted(factory.handlers) == ["alarm", "hotline"]
    assert ami.started

    for callback in ami.connect_callbacks:
        callback(ami)
    assert events[-2:] == [("ami", "hotline"), ("ami", "alarm")]

    server.reload("a.yaml")
    assert events[-1] == ("reload", "alarm", "a.yaml")
    server.reload()
    assert events[-2:] == [("reload", "hotline", None), ("reload", "alarm", None)]

    server.stopService()
    assert events[-2:] == [("stop", "alarm"), ("stop", "hotline")]
    assert ami.stopped


def test_settled_memory_is_left_out_of_collections():
    class Loaded:
        """Something start-up loaded."""

    loaded = Loaded()
    try:
        settle_memory()
        assert gc.get_freeze_count() > 0
        assert not any(o is loaded for o in gc.get_objects())
    finally:
        gc.unfreeze()
    assert any(o is loaded for o in gc.get_objects())


def test_the_ami_login_asks_only_for_call_events(tmp_path):
    """Newexten, VarSet, AGIExec, RTCP... for every call would cost more than the calls."""
    from tests.test_ami_support import BANNER, accept

    reactor = MemoryReactorClock()
    server = SwitchboardService(settings(tmp_path), reactor=reactor)
    server.ami.start()
    asterisk = accept(reactor)
    asterisk.says(BANNER)
    login = asterisk.written().decode()
    assert login.startswith("Action: Login\r\n") and "\r\nEvents: call\r\n" in login
    server.ami.stop()


def test_the_events_the_alarm_reads_are_among_those_asked_for(tmp_path):
    import os
    from dataclasses import replace

    from alarm.feature import AlarmFeature
    from switchboard.service import AMI_EVENT_NAMES

    class RecordingAMI:
        connected = False

        def __init__(self):
            self.patterns = []

        def subscribe(self, pattern, callback):
            self.patterns.append(pattern)

        def __getattr__(self, name):  # originate, hangup, channel_state...
            return lambda *args, **kwargs: defer.succeed(None)

    project = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ami = RecordingAMI()
    AlarmFeature(replace(settings(tmp_path), alarm=os.path.join(project, "config", "alarm.yaml")),
                 None, ami, reactor=MemoryReactorClock())
    assert ami.patterns and set(ami.patterns) <= set(AMI_EVENT_NAMES)
