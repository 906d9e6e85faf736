"""
The status for the duty board's health lights and `switchboard status`
(switchboard.observe.status), the routing at a glance
(switchboard.routing.glance), and the metrics added with them.
"""

from __future__ import annotations

import json
import textwrap
from datetime import datetime
from types import SimpleNamespace

import pytest

from twisted.internet import task
from twisted.web.test.requesthelper import DummyRequest

from switchboard.observe import cli as status_cli
from switchboard.observe.metrics import Metrics
from switchboard.observe.status import Status
from switchboard.observe.web import root
from switchboard.reloads import LoadRecord
from switchboard.routing.glance import glance, mailbox_labels, next_change, state_at
from switchboard.routing.store import RoutingStore
from switchboard.yamlconf import ConfigError
from tests.test_hotline_support import PLAN, SHANGHAI, routing

HOURS = """\
hotline: {numbers: ["12345"], menu: main, operator: operator}
timezone: Asia/Shanghai
holidays: [{date: 2026-10-01, to: 2026-10-07, name: 国庆节}]
defaults: {overflow: [box]}
menus:
  main: {prompt: beep, options: {1: committee, 2: night, 3: clinic}}
destinations:
  committee: {type: department, label: 居委会, phones: [87650001],
              hours: {mon-fri: ["08:30-12:00", "14:30-17:30"]}, closed: box}
  night: {type: department, label: 夜间值班, phones: [87650029],
          hours: {daily: ["20:00-08:00"], holidays: weekly}}
  clinic: {type: department, label: 卫生服务中心, phones: [87650011],
           hours: {daily: ["08:00-12:00"], holidays: ["08:30-11:30"]}}
  operator: {type: operator, phones: [87650100]}
  box: {type: voicemail, label: 居委会留言箱, mailbox: "200"}
"""


def at(text):
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=SHANGHAI)


def by_name(entries):
    return {e["name"]: e for e in entries}


def test_each_department_now_and_when_that_changes():
    r = routing(HOURS)
    now = by_name(glance(r, at("2026-12-03 12:30")))  # a Thursday, lunch
    assert (now["committee"]["state"], now["committee"]["next_change"],
            now["committee"]["next_state"]) == ("closed", "2026-12-03T14:30:00+08:00", "open")
    assert now["committee"]["closed_to"] == "居委会留言箱"
    assert (now["night"]["state"], now["night"]["next_change"]) == (
        "closed", "2026-12-03T20:00:00+08:00")
    assert now["operator"]["state"] == "open" and now["operator"]["next_change"] is None
    assert set(now) == {"committee", "night", "clinic", "operator"}  # no voicemail, no menu
    assert mailbox_labels(r) == {"200@default": "居委会留言箱"}
    late = by_name(glance(r, at("2026-12-04 23:00")))  # Friday night: open past midnight
    assert (late["night"]["state"], late["night"]["next_change"]) == (
        "open", "2026-12-05T08:00:00+08:00")
    assert late["committee"]["next_change"] == "2026-12-07T08:30:00+08:00"  # Monday


def test_a_holiday_is_said_and_the_next_opening_is_after_it():
    r = routing(HOURS)
    now = by_name(glance(r, at("2026-10-02 10:00")))
    assert now["committee"]["state"] == "holiday"
    assert now["committee"]["next_change"] == "2026-10-08T08:30:00+08:00"
    assert now["clinic"]["state"] == "open"  # holiday hours
    assert now["clinic"]["next_change"] == "2026-10-02T11:30:00+08:00"
    assert now["clinic"]["next_state"] == "holiday"
    assert now["night"]["state"] == "closed"  # works through holidays: plain closed
    clinic = r.destinations["clinic"]
    assert state_at(clinic, at("2026-10-02 11:30"), r.calendar)[0] == "holiday"
    assert next_change(clinic, at("2026-10-02 11:30"), r.calendar)[0] == at("2026-10-03 08:30")


class AMI:
    connected = False

    def __init__(self):
        self.up, self.down = [], []

    def on_connect(self, f):
        self.up.append(f)

    def on_disconnect(self, f):
        self.down.append(f)


class Writer:
    def __init__(self, pending=0, failures=0):
        self._pending, self.failures = pending, failures

    def pending(self):
        return self._pending


class Sync:
    stale = True
    synced_at = failed_at = failure = None
    resync = None


def _store(tmp_path, clock, text=HOURS):
    path = tmp_path / "routing.yaml"
    path.write_text(text, encoding="utf-8")
    store = RoutingStore(str(path), PLAN, reactor=clock)
    store.load()
    return store, path


def test_the_lights_follow_the_parts(tmp_path):
    clock = task.Clock()
    clock.advance(at("2026-12-03 12:30").timestamp())
    status = Status(clock, SHANGHAI)
    ami, sync, writer = AMI(), Sync(), Writer(pending=3)
    status.watch_ami(ami)
    status.watch_astdb(sync)
    status.watch_writer("calls", writer)
    store, path = _store(tmp_path, clock)
    status.watch_routing(store)
    shot = status.snapshot()
    assert shot["lights"] == {"ami": "failing", "astdb": "unknown", "database": "ok",
                              "config": "ok"}
    assert shot["database"]["queued"] == 3
    assert [d["name"] for d in shot["departments"]] == ["committee", "night", "clinic",
                                                         "operator"]
    clock.advance(60)
    ami.connected = True
    for f in ami.up:
        f(None)
    sync.stale, sync.synced_at = False, clock.seconds()
    shot = status.snapshot()
    assert shot["ami"]["state"] == "connected" and shot["ami"]["since"] == \
        "2026-12-03T12:31:00+08:00"
    assert (shot["lights"]["ami"], shot["lights"]["astdb"]) == ("ok", "ok")
    assert shot["astdb"]["last_sync"] == "2026-12-03T12:31:00+08:00"
    clock.advance(60)
    sync.stale, sync.failed_at, sync.failure = True, clock.seconds(), "AMI link lost"
    writer.failures = 2
    assert status.snapshot()["lights"]["astdb"] == "failing"
    assert status.snapshot()["astdb"]["failure"] == "AMI link lost"
    assert status.snapshot()["lights"]["database"] == "failing"
    json.dumps(status.snapshot())  # plain values only


def test_the_glance_is_worked_out_again_only_when_something_changes(tmp_path, monkeypatch):
    from switchboard.observe import status as status_module
    clock = task.Clock()
    clock.advance(at("2026-12-03 12:30").timestamp())
    status = Status(clock, SHANGHAI)
    store, path = _store(tmp_path, clock)
    status.watch_routing(store)
    worked = []
    real = status_module.glance
    monkeypatch.setattr(status_module, "glance",
                        lambda routing, local: worked.append(local) or real(routing, local))
    first = status.snapshot()["departments"]
    clock.advance(60 * 60)  # 13:30: nothing opens or closes before 14:30
    assert status.snapshot()["departments"] == first and len(worked) == 1
    clock.advance(60 * 60)  # 14:30: the committee opens
    assert by_name(status.snapshot()["departments"])["committee"]["state"] == "open"
    assert len(worked) == 2
    path.write_text(HOURS.replace("居委会", "社区居委会"), encoding="utf-8")
    store.load()  # another routing: worked out again at once
    assert by_name(status.snapshot()["departments"])["committee"]["label"] == "社区居委会"
    assert len(worked) == 3


def test_a_refused_routing_file_is_shown_with_its_located_errors(tmp_path):
    clock = task.Clock()
    clock.advance(at("2026-12-03 09:00").timestamp())
    status = Status(clock, SHANGHAI)
    store, path = _store(tmp_path, clock)
    status.watch_routing(store)
    clock.advance(30)
    path.write_text(HOURS.replace("options: {1: committee", "options: {1: nobody"),
                    encoding="utf-8")
    try:
        store.load()
    except ConfigError:
        pass
    [routing_file] = status.snapshot()["files"]
    assert routing_file["what"] == "routing" and routing_file["refused"] is True
    assert routing_file["last_reload"] == "2026-12-03T09:00:00+08:00"
    assert routing_file["last_refused"] == "2026-12-03T09:00:30+08:00"
    [error] = routing_file["errors"]
    assert (error["file"], error["line"], error["column"]) == (str(path), 6, 37)
    assert "unknown destination 'nobody'" in error["message"]
    assert status.snapshot()["lights"]["config"] == "failing"
    assert status.snapshot()["departments"]  # the last good routing still serves
    path.write_text(HOURS, encoding="utf-8")
    store.load()
    assert status.snapshot()["lights"]["config"] == "ok"
    assert status.snapshot()["files"][0]["loads"] == {"in_force": 1, "refused": 1,
                                                      "unchanged": 1}


def test_status_json_is_served_as_a_leaf_of_its_own():
    clock = task.Clock()
    status = Status(clock)
    page = root(Metrics(), None, status).children[b"status.json"]
    request = DummyRequest([b""])
    body = json.loads(page.render_GET(request))
    assert body["lights"]["ami"] == "unknown"
    assert request.responseHeaders.getRawHeaders(b"content-type") == [
        b"application/json; charset=utf-8"]
    assert b"status.json" not in root(Metrics(), None).children


def test_the_alarm_file_and_registry_reloads_are_metrics():
    metrics = Metrics()
    record = LoadRecord("alarm", task.Clock())
    metrics.watch_loads(record)
    record.note("in_force", "alarm.yaml")
    record.note("refused", "alarm.yaml", ConfigError([]))
    metrics.watch_registry(SimpleNamespace(refreshes={"changed": 2, "unchanged": 5,
                                                      "failed": 1}))
    sync = Sync()
    metrics.watch_astdb(sync)
    metrics.watch_voicemail(SimpleNamespace(recorded=3))
    text = metrics.exposition().decode()
    assert "switchboard_voicemail_requests_total 3.0" in text
    assert 'switchboard_alarm_file_loads_total{result="in_force"} 1.0' in text
    assert 'switchboard_alarm_file_loads_total{result="refused"} 1.0' in text
    assert "switchboard_alarm_file_refused 1.0" in text
    assert 'switchboard_alarm_registry_refreshes_total{result="changed"} 2.0' in text
    assert "switchboard_astdb_in_step 0.0" in text
    sync.stale = False
    assert "switchboard_astdb_in_step 1.0" in metrics.exposition().decode()


def test_switchboard_status_prints_the_lights_and_fails_when_one_is_red(tmp_path, monkeypatch):
    clock = task.Clock()
    clock.advance(at("2026-12-03 12:30").timestamp())
    status = Status(clock, SHANGHAI)
    status.watch_ami(AMI())
    store, _ = _store(tmp_path, clock)
    status.watch_routing(store)
    out = []
    context = SimpleNamespace(settings=SimpleNamespace(http=SimpleNamespace(
        enabled=True, listen="127.0.0.1", port=1)), stdout=SimpleNamespace(
        write=out.append, flush=lambda: None))
    monkeypatch.setattr(status_cli, "fetch", lambda http: json.loads(json.dumps(
        status.snapshot())))
    assert status_cli.status_command(SimpleNamespace(json=False), context) == 1  # AMI down
    text = "".join(out)
    assert "FAIL AMI       disconnected" in text
    assert "closed   居委会; open from 2026-12-03T14:30:00+08:00" in text
    monkeypatch.undo()
    out.clear()
    assert status_cli.status_command(SimpleNamespace(json=False), context) == 1
    assert "is it running?" in "".join(out)


@pytest.mark.database
def test_the_service_wires_the_status_to_the_parts(tmp_path):
    from switchboard.observe.service import attach
    from switchboard.hotline.feature import HotlineFeature
    from tests.test_hotline_support import ROUTING
    from tests.test_observe import _server
    from twisted.internet.testing import MemoryReactorClock
    from switchboard.storage import Database
    reactor = MemoryReactorClock()
    server = _server(tmp_path, reactor)
    (tmp_path / "r.yaml").write_text(textwrap.dedent(ROUTING), encoding="utf-8")
    feature = HotlineFeature(server.settings, Database(server.settings.database),
                             reactor=reactor, speech=None)
    server.add_feature(feature)
    status = Status(reactor)
    attach(Metrics(), server, status)
    assert status.routing == [feature.store] and status.loads == [feature.store.loads]
    assert status.writers == {"calls": feature.call_log.writer}
    assert status.ami is not None


def test_each_asterisk_server_has_its_line_and_one_down_turns_the_ami_light_red():
    clock = task.Clock()
    clock.advance(at("2026-12-03 12:30").timestamp())
    status = Status(clock, SHANGHAI)
    a, b = AMI(), AMI()
    a.connected = b.connected = True
    status.watch_ami(a)
    status.watch_asterisks([SimpleNamespace(name="a", ami=a), SimpleNamespace(name="b", ami=b)])
    snapshot = status.snapshot()
    assert snapshot["lights"]["ami"] == "ok"
    assert [(s["name"], s["state"]) for s in snapshot["ami"]["asterisks"]] == \
        [("a", "connected"), ("b", "connected")]
    b.connected = False
    snapshot = status.snapshot()
    assert snapshot["lights"]["ami"] == "failing"
    lines = status_cli.render(json.loads(json.dumps(snapshot)))
    assert lines[1].startswith("FAIL AMI       1 of 2 disconnected"), lines
    assert any(line.startswith("FAIL   b") and "disconnected" in line for line in lines), lines
    assert any(line.startswith("OK     a") and "connected" in line for line in lines), lines
