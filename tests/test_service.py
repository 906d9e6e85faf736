"""The service's wiring, with a memory reactor and stand-in features and AMI."""

from tests import databases
import pytest
import gc

from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock

from switchboard.service import SwitchboardService, settle_memory
from switchboard.settings import AGISettings, AMISettings, Settings, SpeechSettings
from switchboard.numbers import NumberPlan

pytestmark = pytest.mark.database


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


def settings(tmp_path, *, alarm=None):
    from alarm.plugin import AlarmSettings
    from board.plugin import BoardSettings
    from broadcast.config import BroadcastSettings
    from callback.plugin import CallbackSettings
    from switchboard.hotline.plugin import HotlineSettings
    return Settings(path=str(tmp_path / "s.yaml"), agi=AGISettings(port=4599, key="test-key"),
                    ami=AMISettings(), database=databases.url(tmp_path, "db"),
                    numbers=NumberPlan("CN", "591"), timezone="Asia/Shanghai",
                    trunks={"default": "PJSIP/{number}"}, hotline_number="12345",
                    speech=SpeechSettings(sounds_dir=str(tmp_path / "sounds")),
                    sections={"hotline": HotlineSettings(routing=str(tmp_path / "r.yaml")),
                              "alarm": AlarmSettings(alarm=alarm or str(tmp_path / "a.yaml")),
                              "callback": CallbackSettings(),
                              "broadcast": BroadcastSettings(), "board": BoardSettings()})


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

    from alarm.feature import AlarmFeature
    from alarm.plugin import feature as alarm
    from switchboard.service import ami_event_names
    from tests.test_features import RecordingAMI

    project = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ami = RecordingAMI()
    AlarmFeature(settings(tmp_path, alarm=os.path.join(project, "config", "alarm.yaml")),
                 None, ami, reactor=MemoryReactorClock())
    assert ami.patterns and set(ami.patterns) <= set(alarm.ami_events)
    assert set(alarm.ami_events) <= set(ami_event_names())


def test_without_a_fastagi_key_the_server_refuses_to_start(tmp_path):
    import dataclasses
    base = settings(tmp_path)
    reactor = MemoryReactorClock()
    bare = dataclasses.replace(base, agi=AGISettings(port=4599))
    d = defer.maybeDeferred(SwitchboardService(bare, reactor=reactor, ami=FakeAMI()).startService)
    failures = []
    d.addErrback(failures.append)
    assert "no FastAGI key" in failures[0].getErrorMessage()
    assert reactor.tcpServers == []
    insecure = dataclasses.replace(base, agi=AGISettings(port=4599, insecure=True))
    SwitchboardService(insecure, reactor=reactor, ami=FakeAMI()).startService()
    [(_, factory, _, _)] = reactor.tcpServers
    assert factory._key is None


def test_the_factory_gets_the_key_and_the_listener_a_burst_sized_backlog(tmp_path):
    reactor = MemoryReactorClock()
    server = SwitchboardService(settings(tmp_path), reactor=reactor, ami=FakeAMI())
    server.startService()
    [(_, factory, backlog, _)] = reactor.tcpServers
    assert backlog == 1024
    assert factory._key == b"test-key"


def test_the_key_comes_from_the_environment_a_key_file_or_the_file(tmp_path, monkeypatch):
    from switchboard import settings as settings_module
    from switchboard.yamlconf import ConfigError
    monkeypatch.delenv("SWITCHBOARD_AGI_KEY", raising=False)
    (tmp_path / "agi.key").write_text("from-the-key-file\n")
    path = tmp_path / "s.yaml"
    path.write_text("agi: {key_file: agi.key, key: from-the-yaml, backlog: 2048}\n")
    agi = settings_module.load(str(path)).agi
    assert (agi.key, agi.backlog) == ("from-the-key-file", 2048)
    assert "from-the-key-file" not in repr(agi)
    monkeypatch.setenv("SWITCHBOARD_AGI_KEY", "from-the-environment")
    assert settings_module.load(str(path)).agi.key == "from-the-environment"
    monkeypatch.delenv("SWITCHBOARD_AGI_KEY")
    path.write_text("agi: {key_file: missing.key}\n")
    try:
        settings_module.load(str(path))
    except ConfigError as e:
        assert "agi.key_file" in str(e) and "missing.key" in str(e)
    else:
        raise AssertionError("a missing key file was accepted")


def test_each_asterisk_gets_an_events_link_and_a_bulk_session(tmp_path):
    import dataclasses
    from switchboard.settings import AsteriskSettings
    base = settings(tmp_path)
    two = dataclasses.replace(base, trunks={"default": "PJSIP/{number}"}, asterisks=(
        AsteriskSettings("a", AMISettings(host="10.0.0.1")),
        AsteriskSettings("b", AMISettings(host="10.0.0.2", port=6038),
                         trunks={"default": "PJSIP/{number}@to-a"})))
    reactor = MemoryReactorClock()
    server = SwitchboardService(two, reactor=reactor)
    assert [s.name for s in server.asterisks] == ["a", "b"]
    assert server.asterisks.main.ami is server.ami
    b = server.asterisks.get("b")
    assert b.ami is not b.bulk_ami and b.host == "10.0.0.2"
    assert b.dialer.dial_string("+8659187650002", "default") == "PJSIP/87650002@to-a"
    server.startService()
    try:
        # Two sessions to each: the events link and the bulk one.
        hosts = sorted((host, port) for host, port, *_ in reactor.tcpClients)
        assert hosts == [("10.0.0.1", 5038)] * 2 + [("10.0.0.2", 6038)] * 2
    finally:
        server.stopService()
