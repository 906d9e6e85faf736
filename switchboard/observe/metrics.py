"""
The server's metrics, in one L{CollectorRegistry} per server (tests make
as many as they like, none shared).

Two kinds of source. What happens is counted as it happens, through the
listeners and callbacks the parts already offer: the AMI client's
C{on_connect}/C{on_disconnect}, the call log's and the alarm recorder's
C{listeners}, each write-behind's C{listeners}. What is, is read when
Prometheus scrapes (L{_Readings}): the AMI link, FastAGI sessions and
refusals, the routing in force and its refusals, the records waiting for
the database. Nothing here is on a call's path but a few dictionary
updates.
"""

from __future__ import annotations

from collections import OrderedDict

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from switchboard.calllog import OUTCOMES as CALL_OUTCOMES
from switchboard.observe import alarms as kinds

# A "_created" series beside each counter and histogram doubles the page
# for nothing Prometheus needs (it is the client's process-wide setting).
prometheus_client.disable_created_metrics()

PREFIX = "switchboard_"

#: Seconds from a #9 to its first leg placed: milliseconds when all is well.
FIRST_RING_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: Seconds from a #9 to a neighbour's 1: the ring time is 30 s by default.
CONFIRMATION_BUCKETS = (5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0,
                        600.0)
#: One write-behind transaction (SQLite commits with synchronous=FULL: ~0.2 ms).
WRITE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                 5.0)
#: How late the reactor ran a timer: every call waits as long.
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

#: Alarms whose first ring and confirmation are awaited, at most.
TRACKED_ALARMS = 10000


class Metrics:
    """
    The metrics of one server. L{watch_ami}, L{watch_fastagi},
    L{watch_routing}, L{watch_calls}, L{watch_alarms} and L{watch_writer}
    connect the parts; L{exposition} is the text Prometheus reads.
    """

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry

        def counter(name, text, labels=()):
            return Counter(PREFIX + name, text, labels, registry=r)

        def histogram(name, text, buckets, labels=()):
            return Histogram(PREFIX + name, text, labels, buckets=buckets, registry=r)

        self.calls = counter("hotline_calls", "Hotline calls ended, by outcome.", ["outcome"])
        self.alarms_raised = counter("alarms_raised", "#9 alarms opened (on record).")
        self.alarms_not_recorded = counter(
            "alarms_not_recorded", "#9 alarms the journal could not take (the dialplan rang "
                                   "natively).")
        self.alarms_ended = counter(
            "alarms_ended", "Alarms ended, by outcome: closed, cancelled, native (handed to "
                            "the dialplan: no AMI link).", ["outcome"])
        self.escalations = counter("alarm_escalations", "Escalation stages rung.")
        self.legs_placed = counter("alarm_legs_placed", "Alarm calls placed (each attempt).")
        self.legs = counter("alarm_legs", "Alarm calls ended, by outcome.", ["outcome"])
        self.first_ring = histogram(
            "alarm_first_ring_seconds", "Seconds from a #9 raised to its first call placed.",
            FIRST_RING_BUCKETS)
        self.first_confirmation = histogram(
            "alarm_first_confirmation_seconds",
            "Seconds from a #9 raised to the first responder pressing 1.", CONFIRMATION_BUCKETS)
        self.ami_connects = counter("ami_connects", "AMI logins.")
        self.ami_reconnects = counter("ami_reconnects", "AMI logins after the first.")
        self.ami_disconnects = counter("ami_disconnects", "Logged-in AMI links lost.")
        self.write_seconds = histogram(
            "database_write_seconds", "Seconds a write-behind transaction took, committed or "
                                      "not, by journal.", WRITE_BUCKETS, ["journal"])
        self.write_failures = counter(
            "database_write_failures", "Write-behind transactions the database refused (the "
                                       "records stay in the journal), by journal.", ["journal"])
        self.reactor_lag = histogram(
            "reactor_lag_seconds", "How late the reactor ran a timer due every half second.",
            LAG_BUCKETS)
        # Every known outcome from zero: rate() and alerts see the first one.
        for outcome in CALL_OUTCOMES:
            if outcome != "in progress":
                self.calls.labels(outcome)
        for outcome in kinds.ENDED:
            self.alarms_ended.labels(outcome)
        for outcome in kinds.LEG_OUTCOMES:
            self.legs.labels(outcome)
        self.readings = _Readings()
        r.register(self.readings)
        self._alarms = _AlarmTimes(self)
        self._logins = 0

    # Sources ------------------------------------------------------------------

    def watch_ami(self, ami) -> None:
        """The AMI client: its link (read at scrape time), logins and losses."""
        self.readings.ami = ami
        ami.on_connect(self._ami_connected)
        ami.on_disconnect(lambda _: self.ami_disconnects.inc())

    def watch_asterisks(self, servers) -> None:
        """Several Asterisk servers (L{switchboard.ami.servers.AsteriskServers}): each link."""
        self.readings.asterisks = servers

    def _ami_connected(self, _):
        if self._logins:
            self.ami_reconnects.inc()
        self._logins += 1
        self.ami_connects.inc()

    def watch_fastagi(self, factory, listening=None) -> None:
        """The FastAGI factory (its sessions and refusals); C{listening()}: port open?"""
        self.readings.fastagi = factory
        self.readings.listening = listening

    def watch_routing(self, store) -> None:
        """A L{RoutingStore}: the routing in force, files refused."""
        self.readings.routing.append(store)

    def watch_loads(self, record) -> None:
        """
        The L{switchboard.reloads.LoadRecord} of a configuration file other
        than the routing (which has its own metrics): C{alarm} for alarm.yaml.
        """
        self.readings.loads[record.what] = record

    def watch_registry(self, watcher) -> None:
        """The households registry's watcher (its C{refreshes} by result)."""
        self.readings.registry.append(watcher)

    def watch_astdb(self, sync) -> None:
        """An AstDB copy kept in step (its C{stale})."""
        self.readings.astdb.append(sync)

    def watch_voicemail(self, watcher) -> None:
        """What turns voicemails into requests (its C{recorded})."""
        self.readings.voicemail.append(watcher)

    def watch_calls(self, call_log) -> None:
        """A L{CallLog}: each ended call by outcome."""
        call_log.listeners.add(lambda call: self.calls.labels(call.outcome or "failed").inc())

    def watch_alarms(self, recorder) -> None:
        """An L{AlarmRecorder}: the alarms' timelines."""
        recorder.listeners.add(self._alarms.entry)
        self.readings.alarms = self.open_alarms

    def watch_writer(self, name: str, writer) -> None:
        """A L{WriteBehind} named C{name}: its writes, and the records it holds."""
        self.readings.writers[name] = writer
        seconds = self.write_seconds.labels(name)
        failures = self.write_failures.labels(name)

        def written(took, _records, committed):
            seconds.observe(max(0.0, took))
            if not committed:
                failures.inc()

        writer.listeners.add(written)

    # Reading ------------------------------------------------------------------

    def exposition(self) -> bytes:
        """Everything, in Prometheus' text format."""
        return generate_latest(self.registry)

    def open_alarms(self) -> int:
        return len(self._alarms.open)


class _AlarmTimes:
    """
    Counts and timings from the alarms' timelines (L{AlarmRecorder}'s
    listeners): when each alarm opened, whether it has rung and been
    confirmed yet. Alarms taken up after a restart count as open, without
    timings (their opening was before this process).
    """

    def __init__(self, metrics: Metrics):
        self.metrics = metrics
        self.opened: OrderedDict = OrderedDict()   # alarm id -> opened at, until first confirmed
        self.rung: set = set()
        self.open: set = set()

    def entry(self, alarm_id, kind, at, leg) -> None:
        m = self.metrics
        if leg is not None:
            if kind == kinds.RINGING:
                m.legs_placed.inc()
                if alarm_id in self.opened and alarm_id not in self.rung:
                    self.rung.add(alarm_id)
                    m.first_ring.observe(max(0.0, at - self.opened[alarm_id]))
            elif kind in kinds.LEG_OUTCOMES:
                m.legs.labels(kind).inc()
                if kind == kinds.CONFIRMED and alarm_id in self.opened:
                    m.first_confirmation.observe(max(0.0, at - self.opened.pop(alarm_id)))
                    self.rung.discard(alarm_id)
            return
        if kind == kinds.OPENED:
            m.alarms_raised.inc()
            self.open.add(alarm_id)
            self.opened[alarm_id] = at
            while len(self.opened) > TRACKED_ALARMS:
                self.rung.discard(self.opened.popitem(last=False)[0])
        elif kind == kinds.RECOVERED:
            self.open.add(alarm_id)
        elif kind == kinds.ESCALATED:
            m.escalations.inc()
        elif kind in kinds.ENDED:
            m.alarms_ended.labels(kind).inc()
            self.open.discard(alarm_id)
            self.opened.pop(alarm_id, None)
            self.rung.discard(alarm_id)
        elif kind == kinds.NOT_RECORDED:
            m.alarms_not_recorded.inc()


class _Readings:
    """What is read when Prometheus scrapes: state the parts keep anyway."""

    def __init__(self):
        self.ami = None
        self.asterisks = None
        self.fastagi = None
        self.listening = None
        self.routing: list = []
        self.writers: dict = {}
        self.alarms = None
        self.loads: dict = {}
        self.registry: list = []
        self.astdb: list = []
        self.voicemail: list = []

    def describe(self):
        return []  # families vary with what is watched: collected at each scrape

    def collect(self):
        if self.ami is not None:
            yield _gauge("ami_up", "1 when the AMI link is up and logged in.",
                         1 if self.ami.connected else 0)
        if self.asterisks is not None:
            up = GaugeMetricFamily(PREFIX + "asterisk_ami_up", "1 when the AMI link to that "
                                   "Asterisk server is up and logged in.", labels=["asterisk"])
            for server in self.asterisks:
                up.add_metric([server.name], 1 if server.ami.connected else 0)
            yield up
        if self.fastagi is not None:
            if self.listening is not None:
                yield _gauge("fastagi_listening", "1 when the FastAGI port is open.",
                             1 if self.listening() else 0)
            yield _gauge("fastagi_sessions", "FastAGI connections open now (calls in "
                                             "progress).", self.fastagi.sessions)
            refused = CounterMetricFamily(
                PREFIX + "fastagi_refused", "FastAGI connections refused, by reason: "
                "allowlist, limit, environment, key, evicted.", labels=["reason"])
            for reason in ("allowlist", "limit", "environment", "key", "evicted"):
                refused.add_metric([reason], self.fastagi.refused.get(reason, 0))
            yield refused
        if self.routing:
            loads = CounterMetricFamily(
                PREFIX + "routing_loads", "Routing files read, by result: in_force (a new "
                "routing swapped in), refused (the last good one kept).", labels=["result"])
            loads.add_metric(["in_force"], sum(s.generation for s in self.routing))
            loads.add_metric(["refused"], sum(s.refusals for s in self.routing))
            yield loads
            yield _gauge("routing_refused", "1 when the last routing file read was refused.",
                         1 if any(s.last_error is not None for s in self.routing) else 0)
        if self.writers:
            pending = GaugeMetricFamily(
                PREFIX + "journal_pending_records", "Records journaled and not yet in the "
                "database, by journal.", labels=["journal"])
            failing = GaugeMetricFamily(
                PREFIX + "database_failures_in_a_row", "Write-behind transactions refused "
                "since the last commit, by journal (0: the database takes writes).",
                labels=["journal"])
            for name, writer in sorted(self.writers.items()):
                pending.add_metric([name], writer.pending())
                failing.add_metric([name], writer.failures)
            yield pending
            yield failing
        for what, record in sorted(self.loads.items()):
            loads = CounterMetricFamily(
                PREFIX + f"{what}_file_loads", f"Loads of the {what} file, by result: in_force "
                "(put in force; the first load counts), refused (errors: the last good one "
                "serves), unchanged (read again, same bytes).", labels=["result"])
            for result, n in sorted(record.counts.items()):
                loads.add_metric([result], n)
            yield loads
            yield _gauge(f"{what}_file_refused", f"1 when the last {what} file read was "
                         "refused.", 1 if record.last_error is not None else 0)
        if self.registry:
            refreshes = CounterMetricFamily(
                PREFIX + "alarm_registry_refreshes", "Looks at the households registry, by "
                "result: changed (households taken in), unchanged, failed.", labels=["result"])
            for result in ("changed", "unchanged", "failed"):
                refreshes.add_metric([result], sum(w.refreshes[result] for w in self.registry))
            yield refreshes
        if self.astdb:
            yield _gauge("astdb_in_step", "1 when AstDB's copy of the registry (the native "
                         "fallback's) was last found in step.",
                         0 if any(s.stale for s in self.astdb) else 1)
        if self.voicemail:
            voicemails = CounterMetricFamily(
                PREFIX + "voicemail_requests", "Voicemails left at the offices taken in as "
                "requests to call back.")
            voicemails.add_metric([], sum(w.recorded for w in self.voicemail))
            yield voicemails
        if self.alarms is not None:
            yield _gauge("alarms_open", "Alarms open now (raised or taken up after a "
                                        "restart, not ended).", self.alarms())


def _gauge(name, text, value):
    return GaugeMetricFamily(PREFIX + name, text, value=value)
