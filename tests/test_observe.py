"""
/metrics and /healthz (switchboard/observe): the exposition after driving
the real parts (the alarm engine, the call log, the write-behind, the AMI
client, the FastAGI factory, the routing store), on clocks and in memory;
and once over a real socket on 127.0.0.1.
"""

from __future__ import annotations

import pytest
import json
import os
import shutil
import tempfile
import textwrap
from datetime import datetime, timezone

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import defer, task
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.test.requesthelper import DummyRequest

from switchboard.calllog import Call, CallLog
from switchboard.listeners import Listeners
from switchboard.observe import alarms as kinds
from switchboard.observe.health import Health
from switchboard.observe.lag import ReactorLag
from switchboard.observe.metrics import Metrics
from switchboard.observe.service import ObserveService, attach
from switchboard.observe.web import HealthPage, MetricsPage, root
from switchboard.settings import HTTPSettings

from tests.test_alarm_support import Rig, SyncDatabase, add_household, database, household


def samples(metrics: Metrics) -> dict:
    """C{{(name, ((label, value), ...)): value}} of everything exposed, parsed back."""
    found = {}
    for family in text_string_to_metric_families(metrics.exposition().decode("utf-8")):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def value(metrics: Metrics, name: str, **labels) -> float:
    return samples(metrics)[(name, tuple(sorted(labels.items())))]


def render(page, path=b""):
    """What C{page} answers to a GET: C{(code, headers, body)}."""
    request = DummyRequest([path])
    request.method = b"GET"
    body = page.render(request)
    return (request.responseCode or 200, request.responseHeaders, body)


@pytest.mark.database
class AlarmMetricsTests(SynchronousTestCase):
    """The real alarm engine's timeline, counted: rings, confirmations, legs, endings."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.rig = Rig(self.tmp)
        add_household(self.rig.db, 1)
        self.metrics = Metrics()
        self.metrics.watch_alarms(self.rig.recorder)
        self.metrics.watch_writer("alarm", self.rig.recorder.writer)

    def test_an_alarm_from_raised_to_closed(self):
        coordinator, ami = self.rig.coordinator, self.rig.ami
        alarm = self.successResultOf(coordinator.raise_alarm("87650001", household(1, 3)))
        self.assertEqual(value(self.metrics, "switchboard_alarms_raised_total"), 1)
        self.assertEqual(value(self.metrics, "switchboard_alarms_open"), 1)
        self.assertEqual(value(self.metrics, "switchboard_alarm_legs_placed_total"), 3)
        # The three legs went out as the alarm opened: one first ring, at once.
        self.assertEqual(value(self.metrics, "switchboard_alarm_first_ring_seconds_count"), 1)
        self.assertEqual(value(self.metrics, "switchboard_alarm_first_ring_seconds_bucket",
                               le="0.005"), 1)

        busy, coming, silent = ami.calls
        self.rig.later(5)
        busy.finish("busy")
        self.rig.later(7)
        coming.finish("answered")
        self.successResultOf(coordinator.answered(alarm.id, coming.channel_id))
        self.assertTrue(self.successResultOf(coordinator.confirm(alarm.id, coming.channel_id)))
        # Pressed 1 twelve seconds after the #9.
        self.assertEqual(value(self.metrics, "switchboard_alarm_first_confirmation_seconds_sum"),
                         12)
        self.assertEqual(value(self.metrics, "switchboard_alarm_first_confirmation_seconds_bucket",
                               le="10.0"), 0)
        self.assertEqual(value(self.metrics, "switchboard_alarm_first_confirmation_seconds_bucket",
                               le="15.0"), 1)
        self.assertEqual(value(self.metrics, "switchboard_alarm_legs_total", outcome="busy"), 1)
        self.assertEqual(value(self.metrics, "switchboard_alarm_legs_total", outcome="confirmed"),
                         1)

        self.successResultOf(coordinator.close(alarm.id))
        self.assertEqual(value(self.metrics, "switchboard_alarms_ended_total", outcome="closed"),
                         1)
        # The phone still ringing was hung up: a cancelled leg.
        self.assertEqual(value(self.metrics, "switchboard_alarm_legs_total", outcome="cancelled"),
                         1)
        self.assertEqual(value(self.metrics, "switchboard_alarms_open"), 0)
        # Its timeline went to the database behind: written, nothing waiting.
        self.successResultOf(self.rig.recorder.flush())
        self.assertEqual(value(self.metrics, "switchboard_journal_pending_records",
                               journal="alarm"), 0)
        self.assertGreater(value(self.metrics, "switchboard_database_write_seconds_count",
                                 journal="alarm"), 0)

    def test_an_alarm_without_an_ami_link_is_counted_native(self):
        self.rig.ami.connected = False
        self.failureResultOf(self.rig.coordinator.raise_alarm("87650001", household(1, 3)))
        self.assertEqual(value(self.metrics, "switchboard_alarms_raised_total"), 1)
        self.assertEqual(value(self.metrics, "switchboard_alarms_ended_total", outcome="native"),
                         1)
        self.assertEqual(value(self.metrics, "switchboard_alarm_legs_placed_total"), 0)
        self.assertEqual(value(self.metrics, "switchboard_alarm_first_ring_seconds_count"), 0)

    def test_escalation_is_counted(self):
        self.successResultOf(self.rig.coordinator.raise_alarm("87659999", None))
        self.assertEqual(value(self.metrics, "switchboard_alarm_escalations_total"), 1)


@pytest.mark.database
class AlarmTimingTests(SynchronousTestCase):
    """The timings from the timeline's times, whatever order the legs come in."""

    def setUp(self):
        self.metrics = Metrics()
        self.recorder = type("Recorder", (), {"listeners": Listeners()})()
        self.metrics.watch_alarms(self.recorder)

    def test_first_ring_and_first_confirmation_once_per_alarm(self):
        entry = self.recorder.listeners
        entry(7, "opened", 100.0, None)
        entry(8, "opened", 101.0, None)
        entry(7, "ringing", 100.02, "leg-a")
        entry(7, "ringing", 100.5, "leg-b")
        entry(8, "ringing", 101.25, "leg-c")
        entry(7, "confirmed", 131.0, "leg-b")
        entry(7, "confirmed", 140.0, "leg-a")     # a second neighbour coming
        entry(7, "escalated", 160.0, None)
        self.assertAlmostEqual(value(self.metrics, "switchboard_alarm_first_ring_seconds_sum"),
                               0.27)
        self.assertEqual(value(self.metrics, "switchboard_alarm_first_ring_seconds_count"), 2)
        self.assertEqual(value(self.metrics, "switchboard_alarm_first_confirmation_seconds_sum"),
                         31)
        self.assertEqual(value(self.metrics, "switchboard_alarm_first_confirmation_seconds_count"),
                         1)
        self.assertEqual(value(self.metrics, "switchboard_alarm_legs_total", outcome="confirmed"),
                         2)

    def test_a_recovered_alarm_is_open_without_timings(self):
        entry = self.recorder.listeners
        entry(3, "recovered", 10.0, None)
        entry(3, "ringing", 11.0, "leg")
        self.assertEqual(value(self.metrics, "switchboard_alarms_open"), 1)
        self.assertEqual(value(self.metrics, "switchboard_alarm_first_ring_seconds_count"), 0)
        entry(3, "cancelled", 12.0, None)
        self.assertEqual(value(self.metrics, "switchboard_alarms_open"), 0)
        self.assertEqual(value(self.metrics, "switchboard_alarms_ended_total",
                               outcome="cancelled"), 1)

    def test_an_alarm_the_journal_refused(self):
        recorder = Rig(tempfile.mkdtemp()).recorder
        self.metrics.watch_alarms(recorder)

        def full(*args, **kwargs):
            raise OSError(28, "No space left on device")

        recorder.journal.append = full
        self.failureResultOf(recorder.open_alarm(at=5.0, caller_raw="87650001",
                                                 caller_number=None, household_id=None,
                                                 address=""))
        self.assertEqual(value(self.metrics, "switchboard_alarms_not_recorded_total"), 1)
        self.flushLoggedErrors(OSError)

    def test_the_kinds_are_the_alarms(self):
        from alarm import models, state
        self.assertEqual(
            (kinds.RINGING, kinds.CONFIRMED, kinds.LEG_OUTCOMES, set(kinds.ENDED)),
            (state.RINGING, state.LEG_CONFIRMED,
             (state.LEG_CONFIRMED, state.DECLINED, state.UNCONFIRMED, state.BUSY,
              state.NO_ANSWER, state.FAILED, state.LEG_CANCELLED), set(models.ENDED)))


@pytest.mark.database
class CallsAndWritesTests(SynchronousTestCase):
    def setUp(self):
        import switchboard.calllog  # noqa: F401  (declares hotline_calls)
        self.tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.db = SyncDatabase(database(self.tmp))
        self.clock = task.Clock()
        self.log = CallLog(self.db, clock=self.clock)
        self.successResultOf(self.log.start())
        self.metrics = Metrics()
        self.metrics.watch_calls(self.log)
        self.metrics.watch_writer("calls", self.log.writer)

    def call(self, outcome):
        self.log.record(Call(started=datetime.now(timezone.utc), caller="+8659187650001",
                             outcome=outcome))

    def test_calls_by_outcome(self):
        self.call("voicemail")
        self.call("answered")
        self.call("answered")
        self.assertEqual(value(self.metrics, "switchboard_hotline_calls_total",
                               outcome="answered"), 2)
        self.assertEqual(value(self.metrics, "switchboard_hotline_calls_total",
                               outcome="voicemail"), 1)
        self.assertEqual(value(self.metrics, "switchboard_hotline_calls_total", outcome="busy"),
                         0)

    def test_a_refusing_database_shows_in_failures_pending_and_health(self):
        self.db.fail_next = 2
        self.call("answered")
        self.assertEqual(value(self.metrics, "switchboard_database_write_failures_total",
                               journal="calls"), 1)
        self.assertEqual(value(self.metrics, "switchboard_database_failures_in_a_row",
                               journal="calls"), 1)
        self.assertEqual(value(self.metrics, "switchboard_journal_pending_records",
                               journal="calls"), 1)
        lag = ReactorLag(self.clock)
        lag.start()
        self.addCleanup(lag.stop)
        ready, body = Health(lambda: True, lag, writers=self.metrics.readings.writers).check()
        self.assertTrue(ready)  # a #9 is served from the journal meanwhile
        self.assertEqual((body["database"], body["journal_pending"]),
                         ("refusing writes", {"calls": 1}))
        self.clock.advance(0.5)
        self.clock.advance(1.0)  # retried twice: the second one commits
        self.assertEqual(value(self.metrics, "switchboard_database_failures_in_a_row",
                               journal="calls"), 0)
        self.assertEqual(value(self.metrics, "switchboard_journal_pending_records",
                               journal="calls"), 0)
        self.assertEqual(Health(lambda: True, lag, writers=self.metrics.readings.writers)
                         .check()[1]["database"], "ok")


class WriteLatencyTests(SynchronousTestCase):
    def test_the_time_the_database_took(self):
        from switchboard.journal import Journal, WriteBehind
        clock = task.Clock()
        answers = []

        class Slow:
            def run(self, work):
                d = defer.Deferred()
                answers.append(d)
                return d

        writer = WriteBehind(Journal(None, "alarm"), Slow(), lambda c, r: None, clock=clock)
        metrics = Metrics()
        metrics.watch_writer("alarm", writer)
        writer.start()
        answers.pop().callback((0, None))
        writer.add({"op": "x"})
        clock.advance(0.03)
        answers.pop().callback(None)
        self.assertAlmostEqual(value(metrics, "switchboard_database_write_seconds_sum",
                                     journal="alarm"), 0.03)
        self.assertEqual(value(metrics, "switchboard_database_write_seconds_bucket",
                               journal="alarm", le="0.025"), 0)
        self.assertEqual(value(metrics, "switchboard_database_write_seconds_bucket",
                               journal="alarm", le="0.05"), 1)


class AMIAndFastAGITests(SynchronousTestCase):
    def test_the_ami_link_up_down_and_reconnects(self):
        from tests.test_ami_support import connect, make_client
        client, reactor = make_client()
        metrics = Metrics()
        metrics.watch_ami(client)
        client.start()
        self.assertEqual(value(metrics, "switchboard_ami_up"), 0)
        asterisk = connect(client, reactor)
        self.assertEqual(value(metrics, "switchboard_ami_up"), 1)
        asterisk.close()
        self.assertEqual(value(metrics, "switchboard_ami_up"), 0)
        self.assertEqual(value(metrics, "switchboard_ami_disconnects_total"), 1)
        reactor.advance(5)
        connect(client, reactor)
        self.assertEqual((value(metrics, "switchboard_ami_connects_total"),
                          value(metrics, "switchboard_ami_reconnects_total"),
                          value(metrics, "switchboard_ami_up")), (2, 1, 1))
        client.stop()

    def test_fastagi_sessions_in_flight_and_refused(self):
        from tests.test_agi_support import Connection, environment, ipv4
        clock = task.Clock()
        running = Connection({"hotline": lambda session: defer.Deferred()}, clock=clock,
                             key="k")
        factory = running.factory
        metrics = Metrics()
        metrics.watch_fastagi(factory, lambda: True)
        running.receive(environment("hotline?key=k"))
        self.assertEqual(value(metrics, "switchboard_fastagi_sessions"), 1)
        # From a host not allowed; then without the key.
        outsider = factory.buildProtocol(ipv4("10.0.0.9"))
        from twisted.internet.testing import StringTransport
        outsider.makeConnection(StringTransport(peerAddress=ipv4("10.0.0.9")))
        keyless = factory.buildProtocol(ipv4("127.0.0.1"))
        transport = StringTransport(peerAddress=ipv4("127.0.0.1"))
        keyless.makeConnection(transport)
        keyless.dataReceived(environment("hotline"))
        self.assertEqual(value(metrics, "switchboard_fastagi_refused_total", reason="allowlist"),
                         1)
        self.assertEqual(value(metrics, "switchboard_fastagi_refused_total", reason="key"), 1)
        self.assertEqual(value(metrics, "switchboard_fastagi_refused_total", reason="limit"), 0)
        self.assertEqual(value(metrics, "switchboard_fastagi_listening"), 1)


class RoutingTests(SynchronousTestCase):
    def test_loads_and_refusals(self):
        from switchboard.routing import RoutingStore
        from switchboard.routing.parsing import InProcessParser
        from switchboard.yamlconf import ConfigError
        from tests.test_hotline_support import PLAN, ROUTING
        folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, folder, True)
        path = os.path.join(folder, "routing.yaml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(textwrap.dedent(ROUTING))
        store = RoutingStore(path, PLAN, trunks=["default", "outside"], parser=InProcessParser())
        metrics = Metrics()
        metrics.watch_routing(store)
        store.load()
        with open(path, "w", encoding="utf-8") as f:
            f.write("hotline: [\n")
        self.assertRaises(ConfigError, store.load)
        self.assertEqual(value(metrics, "switchboard_routing_loads_total", result="in_force"), 1)
        self.assertEqual(value(metrics, "switchboard_routing_loads_total", result="refused"), 1)
        self.assertEqual(value(metrics, "switchboard_routing_refused"), 1)


class LagTests(SynchronousTestCase):
    def test_how_late_the_reactor_ran_the_timer(self):
        clock = task.Clock()
        metrics = Metrics()
        lag = ReactorLag(clock, metrics.reactor_lag.observe, interval=0.5)
        lag.start()
        clock.advance(0.5)
        self.assertEqual(lag.last, 0)
        clock.advance(1.7)  # held 1.2 s past the timer due at 1.0
        self.assertAlmostEqual(lag.last, 1.2)
        clock.advance(0.3)  # the next beat (2.5) on time again
        self.assertAlmostEqual(lag.last, 0)
        self.assertEqual(value(metrics, "switchboard_reactor_lag_seconds_count"), 3)
        self.assertEqual(value(metrics, "switchboard_reactor_lag_seconds_bucket", le="1.0"), 2)
        self.assertEqual(value(metrics, "switchboard_reactor_lag_seconds_bucket", le="2.5"), 3)
        lag.stop()


class PagesTests(SynchronousTestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.lag = ReactorLag(self.clock)
        self.listening = True
        self.ami = type("AMI", (), {"connected": False})()
        self.metrics = Metrics()
        self.health = Health(lambda: self.listening, self.lag, self.ami)

    def test_metrics_page(self):
        self.metrics.calls.labels("answered").inc()
        code, headers, body = render(MetricsPage(self.metrics))
        self.assertEqual(code, 200)
        self.assertTrue(headers.getRawHeaders(b"content-type")[0].startswith(b"text/plain"))
        self.assertIn(b'switchboard_hotline_calls_total{outcome="answered"} 1.0\n', body)

    def test_healthz_ready_and_not(self):
        page = HealthPage(self.health)
        code, _, body = render(page)
        self.assertEqual(code, 503)  # the lag monitor has not started: not turning
        self.lag.start()
        code, headers, body = render(page)
        self.assertEqual(code, 200)
        self.assertEqual(headers.getRawHeaders(b"content-type"), [b"application/json"])
        said = json.loads(body)
        self.assertEqual((said["status"], said["fastagi"], said["ami"], said["database"]),
                         ("ok", "listening", "disconnected", "ok"))
        self.listening = False
        code, _, body = render(page)
        self.assertEqual(code, 503)
        self.assertEqual(json.loads(body)["problems"], ["the FastAGI port is not open"])
        self.lag.stop()

    def test_only_metrics_and_healthz(self):
        top = root(self.metrics, self.health)
        self.assertIsInstance(top.getChildWithDefault(b"metrics", DummyRequest([])),
                              MetricsPage)
        self.assertIsInstance(top.getChildWithDefault(b"healthz", DummyRequest([])),
                              HealthPage)
        code, _, _ = render(top.getChildWithDefault(b"admin", DummyRequest([])))
        self.assertEqual(code, 404)


def _server(tmp, reactor, http=HTTPSettings(port=0)):
    from dataclasses import replace

    from switchboard.service import SwitchboardService
    from tests.test_service import FakeAMI, settings

    class AMI(FakeAMI):
        connected = False

        def on_disconnect(self, callback):
            pass

    s = replace(settings(tmp), http=http)
    return SwitchboardService(s, reactor=reactor, ami=AMI())


@pytest.mark.database
class ServiceTests(SynchronousTestCase):
    """The HTTP port comes with the server, on loopback by default."""

    def test_listens_on_the_configured_port_and_stops(self):
        from pathlib import Path
        reactor = MemoryReactorClock()
        tmp = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, tmp, True)
        server = _server(tmp, reactor, HTTPSettings())
        ObserveService(server, server.settings.http).setServiceParent(server)
        server.startService()
        http = [entry for entry in reactor.tcpServers if entry[0] == 8573]
        self.assertEqual([(port, interface) for port, _, _, interface in http],
                         [(8573, "127.0.0.1")])
        self.successResultOf(defer.maybeDeferred(server.stopService))

    def test_disabled(self):
        from pathlib import Path
        reactor = MemoryReactorClock()
        tmp = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, tmp, True)
        server = _server(tmp, reactor, HTTPSettings(enabled=False))
        ObserveService(server, server.settings.http).setServiceParent(server)
        server.startService()
        self.assertEqual([p for p, _, _, _ in reactor.tcpServers], [4599])
        server.stopService()

    def test_attach_finds_the_parts_the_features_hold(self):
        from pathlib import Path
        from switchboard.hotline.feature import HotlineFeature
        from switchboard.storage import Database
        from tests.test_hotline_support import ROUTING
        reactor = MemoryReactorClock()
        tmp = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, tmp, True)
        server = _server(tmp, reactor)
        (tmp / "r.yaml").write_text(textwrap.dedent(ROUTING), encoding="utf-8")
        feature = HotlineFeature(server.settings, Database(server.settings.database),
                                 reactor=reactor, speech=None)
        server.add_feature(feature)
        metrics = Metrics()
        before = len(feature.call_log.listeners)   # the board's desk listens too
        attach(metrics, server)
        self.assertEqual(metrics.readings.routing, [feature.store])
        self.assertEqual(metrics.readings.writers, {"calls": feature.call_log.writer})
        self.assertEqual(len(feature.call_log.listeners), before + 1)


@pytest.mark.database
class RealPortTests(TestCase):
    """Over a real socket on 127.0.0.1 (an ephemeral port): what Prometheus and curl see."""

    @defer.inlineCallbacks
    def test_scrape_and_health_over_http(self):
        from pathlib import Path
        from twisted.internet import reactor
        from twisted.web.client import Agent, readBody
        tmp = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, tmp, True)
        server = _server(tmp, reactor)
        observe = ObserveService(server, server.settings.http, reactor=reactor)
        observe.startService()
        self.addCleanup(observe.stopService)
        port = observe.port.getHost().port
        agent = Agent(reactor)

        response = yield agent.request(b"GET", b"http://127.0.0.1:%d/healthz" % port)
        body = json.loads((yield readBody(response)))
        # The server itself was not started: no FastAGI port.
        self.assertEqual((response.code, body["status"], body["fastagi"]),
                         (503, "unavailable", "closed"))

        server.port = object()   # as if the FastAGI port were open
        response = yield agent.request(b"GET", b"http://127.0.0.1:%d/healthz" % port)
        self.assertEqual(response.code, 200)
        yield readBody(response)

        response = yield agent.request(b"GET", b"http://127.0.0.1:%d/metrics" % port)
        text = (yield readBody(response)).decode()
        self.assertEqual(response.code, 200)
        self.assertIn("switchboard_fastagi_listening 1.0", text)
        self.assertIn("switchboard_ami_up 0.0", text)
        self.assertIn("# TYPE switchboard_reactor_lag_seconds histogram", text)
        self.assertTrue(all(line.startswith(("#", "switchboard_"))
                            for line in text.splitlines() if line))
        agent._pool.closeCachedConnections()


class SettingsTests(SynchronousTestCase):
    """C{http:} in switchboard.yaml: on by default on loopback; checked and located."""

    def load(self, text):
        from switchboard import settings
        folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, folder, True)
        path = os.path.join(folder, "switchboard.yaml")
        with open(path, "w", encoding="utf-8") as f:
            f.write("routing: routing.yaml\nalarm: alarm.yaml\n" + text)
        return settings.load(path, environ={})

    def test_default_on_loopback(self):
        self.assertEqual(self.load("").http, HTTPSettings(True, "127.0.0.1", 8573))

    def test_given(self):
        self.assertEqual(self.load("http: {listen: '::1', port: 9100}\n").http,
                         HTTPSettings(True, "::1", 9100))
        self.assertFalse(self.load("http: {enabled: false}\n").http.enabled)

    def test_refused_with_where(self):
        from switchboard.yamlconf import ConfigError
        with self.assertRaises(ConfigError) as caught:
            self.load("http:\n  port: 70000\n  enabled: yes please\n  tls: on\n")
        text = str(caught.exception)
        self.assertIn("switchboard.yaml:4:9: http.port: 70000 is not a TCP port", text)
        self.assertIn("http.enabled: must be", text)
        self.assertIn("tls", text)
