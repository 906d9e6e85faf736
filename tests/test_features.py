"""
Features as plug-ins: each installed feature is checked against the
interfaces (IFeature, IFeatureService) and the core finds them through the
entry-point group, naming none.
"""

from __future__ import annotations

from tests import databases
import os
from importlib.metadata import EntryPoint

import pytest
from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock
from zope.interface import classImplements
from zope.interface.verify import verifyObject

from switchboard import features
from switchboard import settings as settings_module
from switchboard.features import Core, FeatureError, IFeature, IFeatureService
from switchboard.yamlconf import ConfigError

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(PROJECT, "config", "switchboard.yaml")


class RecordingAMI:
    """What AlarmFeature asks of the AMI client, doing nothing."""

    connected = False

    def __init__(self):
        self.patterns = []

    def subscribe(self, pattern, callback):
        self.patterns.append(pattern)

    def __getattr__(self, name):  # originate, hangup, channel_state...
        return lambda *args, **kwargs: defer.succeed(None)


def test_the_features_are_installed_by_name():
    assert [f.name for f in features.installed()] == ["alarm", "board", "broadcast", "callback",
                                                      "hotline"]


@pytest.mark.database
@pytest.mark.parametrize("feature", features.installed(), ids=lambda f: f.name)
def test_each_feature_provides_ifeature_and_its_service_ifeatureservice(feature, tmp_path):
    assert verifyObject(IFeature, feature)
    settings = settings_module.load(CONFIG)
    from switchboard.storage import Database
    database = Database(databases.url(tmp_path, "db"))
    core = Core(settings=settings, database=database, ami=RecordingAMI(),
                reactor=MemoryReactorClock())
    service = feature.make_service(core)
    assert verifyObject(IFeatureService, service)
    assert set(service.handlers) == set(feature.agi_scripts)
    database.close()


@pytest.mark.database
def test_the_server_serves_every_features_scripts_and_asks_for_their_events(tmp_path):
    from dataclasses import replace
    from switchboard.service import build
    settings = replace(settings_module.load(CONFIG), database=databases.url(tmp_path, "db"))
    server = build(settings, MemoryReactorClock())
    assert set(server.handlers) == {"hotline", "alarm", "alarm-responder", "callback", "broadcast"}
    assert server.ami_events == ("Hangup", "Newchannel", "OriginateResponse")
    server.database.close()


@pytest.mark.database
def test_astdb_is_kept_on_a_session_of_its_own_so_originates_never_wait_behind_it(tmp_path):
    # Asterisk runs one session's actions one after another: on the main
    # link, an AstDB read-back (4 s for 20,000 households) would hold every
    # neighbour's Originate behind it.
    from dataclasses import replace
    from switchboard.service import build
    settings = replace(settings_module.load(CONFIG), database=databases.url(tmp_path, "db"))
    server = build(settings, MemoryReactorClock())
    alarm = next(f for f in server.features if type(f).__name__ == "AlarmFeature")
    assert server.bulk_ami is not server.ami
    assert (server.bulk_ami._link.events, server.bulk_ami._link.only_events) == ("off", ())
    assert alarm.astdb.ami is server.bulk_ami
    assert alarm.coordinator.engine.placer.inner.client is server.ami  # through the trunk
    resyncs = []
    alarm.astdb.resync = lambda force=False: resyncs.append("resync")
    alarm.index.loaded = True
    alarm.ami_connected()            # the main link: not AstDB's
    assert resyncs == []
    server.bulk_ami.linkUp(None)     # AstDB's own session logged in
    assert resyncs == ["resync"]
    server.database.close()


def _entry_points(monkeypatch, *values):
    points = [EntryPoint(name, value, features.GROUP) for name, value in values]
    monkeypatch.setattr(features, "entry_points", lambda group: points)


def test_a_feature_that_cannot_be_imported_is_an_error_not_a_skip(monkeypatch):
    _entry_points(monkeypatch, ("hotline", "switchboard.hotline.plugin:feature"),
                  ("broken", "tests.no_such_module_here:feature"))
    with pytest.raises(ImportError):
        features.installed()


def test_two_features_serving_one_script_are_refused(monkeypatch):
    _entry_points(monkeypatch, ("hotline", "switchboard.hotline.plugin:feature"),
                  ("twin", "tests.test_features:TWIN"))
    with pytest.raises(FeatureError, match="'hotline' is declared by features 'hotline' and"):
        features.installed()


def test_an_object_that_is_not_a_feature_is_refused(monkeypatch):
    _entry_points(monkeypatch, ("notafeature", "tests.test_features:RecordingAMI"))
    with pytest.raises(FeatureError, match="does not provide IFeature"):
        features.installed()


class _Twin:
    name = "twin"
    agi_scripts = ("hotline",)
    ami_events = ()
    migrations = None
    settings_keys = ()
    dialplan_contexts = ()

    def read_settings(self, data, check, resolve):
        return None

    def add_commands(self, subparsers):
        pass

    def make_service(self, core):
        raise AssertionError("not built")


classImplements(_Twin, IFeature)
TWIN = _Twin()


def test_each_feature_reads_its_own_keys_of_the_same_file(tmp_path):
    settings = settings_module.load(CONFIG)
    assert settings.section("hotline").routing == os.path.join(PROJECT, "config", "routing.yaml")
    assert settings.section("alarm").alarm == os.path.join(PROJECT, "config", "alarm.yaml")
    assert settings.routing == settings.section("hotline").routing  # as before
    assert settings.section("callback").prompt.startswith("您的回电请求")
    path = tmp_path / "s.yaml"
    path.write_text("callback: {prompt: 7}\nnonsense: 1\n")
    with pytest.raises(ConfigError) as refused:
        settings_module.load(str(path))
    text = str(refused.value)
    assert "callback.prompt" in text and "s.yaml:1:" in text and "nonsense" in text


def test_without_a_feature_its_keys_are_refused(tmp_path):
    from alarm.plugin import feature as alarm
    path = tmp_path / "s.yaml"
    path.write_text("routing: r.yaml\n")
    with pytest.raises(ConfigError, match="routing"):
        settings_module.load(str(path), features=[alarm])
    path.write_text("timezone: Asia/Shanghai\n")
    assert settings_module.load(str(path), features=[]).sections == {}


def test_the_dialplan_must_have_the_contexts_the_features_declare(tmp_path):
    from alarm.plugin import feature as alarm
    from switchboard.dialplan_check import check
    path = tmp_path / "partial.conf"
    path.write_text("[switchboard-hotline]\nexten => _X.,1,Hangup()\n")
    assert check(str(path), features=[]) == []
    problems = check(str(path), features=[alarm])
    assert len(problems) == len(alarm.dialplan_contexts)
    assert all("(feature alarm)" in p for p in problems)


def test_the_command_has_every_features_commands():
    from switchboard.cli import build_parser
    commands = build_parser()._subparsers._group_actions[0].choices
    assert {"check", "route", "calls", "households", "neighbours", "alarms",
            "callbacks", "staff", "db", "say", "run"} <= set(commands)
