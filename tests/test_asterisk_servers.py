"""
Several Asterisk servers: the configuration (C{asterisks:}), which server a
FastAGI session came from, an alarm's legs on its caller's server, AstDB on
each. Fakes and a task.Clock; the lab's two Asterisks are in
tests/e2e/test_two_asterisks.py.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from alarm.coordinator import AlarmCoordinator, HandedToDialplan
from alarm.recorder import AlarmRecorder
from alarm.servers import EveryAstDB
from switchboard import settings as settings_module
from switchboard.ami.servers import AsteriskServer, AsteriskServers
from switchboard.dialing import Dialer
from switchboard.yamlconf import ConfigError

from tests.test_alarm_support import (
    DIALER,
    DUTY,
    PLAN,
    FakeAMI,
    Rig,
    add_household,
    alarm_row,
    household,
)


def load(tmp_path, text):
    path = tmp_path / "switchboard.yaml"
    path.write_text(text)
    os.chmod(path, 0o600)
    return settings_module.load(str(path), environ={"SWITCHBOARD_AMI_SECRET": "s3"}, features=[])


# The configuration ------------------------------------------------------------------

def test_without_asterisks_the_one_server_is_ami(tmp_path):
    settings = load(tmp_path, "ami: {host: 10.0.0.5, port: 5039}\n")
    assert settings.asterisks == ()
    (only,) = settings.servers
    assert (only.name, only.ami.host, only.ami.port, only.ami.secret) == \
        ("default", "10.0.0.5", 5039, "s3")


def test_each_server_takes_what_it_leaves_out_from_ami(tmp_path):
    settings = load(tmp_path, """\
ami: {username: sw, port: 5038}
numbers: {region: CN, area_code: "591"}
trunks: {default: "PJSIP/{number}", mobile: "PJSIP/{number}@gsm"}
asterisks:
  - {name: a, host: 10.0.0.1}
  - {name: b, host: 10.0.0.2, port: 6038, trunks: {default: "PJSIP/{number}@to-a"}}
""")
    a, b = settings.servers
    assert (a.name, a.ami.host, a.ami.port, a.ami.username, a.ami.secret) == \
        ("a", "10.0.0.1", 5038, "sw", "s3")
    assert (b.name, b.ami.host, b.ami.port) == ("b", "10.0.0.2", 6038)
    # b's own trunk over the core's; the core's others kept.
    assert settings.dialer_for(b).dial_string("+8659187650002", "default") == \
        "PJSIP/87650002@to-a"
    assert settings.dialer_for(b).dial_string("+8659187650002", "mobile") == \
        "PJSIP/87650002@gsm"
    assert settings.dialer_for(a).dial_string("+8659187650002", "default") == "PJSIP/87650002"


def test_bad_servers_are_named_with_their_place(tmp_path):
    with pytest.raises(ConfigError) as e:
        load(tmp_path, """\
asterisks:
  - {name: a, host: 10.0.0.1}
  - {name: a, host: 10.0.0.2}
  - {host: 10.0.0.3}
  - {name: "b c", hots: 10.0.0.4, trunks: {default: "PJSIP/x"}}
""")
    text = str(e.value)
    assert "asterisks[1].name" in text and "listed twice" in text
    assert "asterisks[2]" in text and "missing required key 'name'" in text
    assert "asterisks[3].name" in text and "not a server name" in text
    assert "asterisks[3].hots" in text and "unknown key" in text
    assert "asterisks[3].trunks.default" in text and "{number}" in text
    assert "switchboard.yaml:3:" in text  # the second a's line


def test_an_empty_list_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="asterisks.*must be a list"):
        load(tmp_path, "asterisks: []\n")


# Which server a session came from ------------------------------------------------------

def servers(*names, hosts=()):
    hosts = list(hosts) + [""] * len(names)
    return AsteriskServers([AsteriskServer(n, FakeAMI(), None, host=h)
                            for n, h in zip(names, hosts)])


def session(query=None, host="127.0.0.1"):
    return SimpleNamespace(query=query or {}, peer=SimpleNamespace(host=host))


def test_a_session_names_its_asterisk_in_its_query():
    two = servers("a", "b")
    assert two.for_session(session({"asterisk": "b"})).name == "b"
    assert two.for_session(session({"asterisk": "a"})).name == "a"


def test_a_session_naming_no_known_server_goes_by_its_address_else_to_the_main_one():
    two = servers("a", "b", hosts=("10.0.0.1", "10.0.0.2"))
    assert two.for_session(session({"asterisk": "zz"}, host="10.0.0.2")).name == "b"
    assert two.for_session(session({}, host="10.0.0.2")).name == "b"
    # Loopback tells nothing (every local Asterisk connects from it).
    assert two.for_session(session({}, host="127.0.0.1")).name == "a"
    assert two.for_session(session({"asterisk": ""}, host="10.9.9.9")).name == "a"


def test_with_one_server_every_session_is_its():
    assert servers("only").for_session(session({"asterisk": "elsewhere"})).name == "only"


def test_room_size_adds_up_the_linked_servers_and_kick_reaches_each():
    two = servers("a", "b")
    a, b = (s.ami for s in two)
    a.room_size = lambda room: defer.succeed(0)
    b.room_size = lambda room: defer.succeed(2)
    sent = []
    for s in two:
        s.ami.send_action = lambda name, headers, n=s.name: sent.append((n, name)) or \
            defer.succeed(None)
    results = []
    two.room_size("alarm-7").addCallback(results.append)
    assert results == [2]
    b.connected = False
    two.room_size("alarm-7").addCallback(results.append)
    assert results == [2, 0]
    two.kick("alarm-7")
    assert sent == [("a", "ConfbridgeKick")]
    a.connected = False
    failures = []
    two.room_size("alarm-7").addErrback(failures.append)
    assert len(failures) == 1


# An alarm's legs on its caller's server ---------------------------------------------------

@pytest.mark.database
class AlarmOnItsCallersServerTests(SynchronousTestCase):
    def setUp(self):
        import tempfile
        self.rig = Rig(tempfile.mkdtemp())
        add_household(self.rig.db, 1)
        add_household(self.rig.db, 2)
        self.a, self.b = self.rig.ami, FakeAMI()
        self.coordinator = AlarmCoordinator(
            DIALER, self.a, self.rig.recorder, self.rig.config, self.rig.clock,
            hotline_number="12345", placers={"a": self.a, "b": self.b},
            dialers={"a": DIALER, "b": Dialer(PLAN, {"default": "PJSIP/{number}@to-a"})})

    def test_the_legs_are_placed_on_the_callers_server_with_its_trunks(self):
        alarm = self.successResultOf(self.coordinator.raise_alarm("87650001", household(1, 3),
                                                                  asterisk="b"))
        self.assertEqual(self.a.calls, [])
        self.assertEqual([c.channel for c in self.b.calls],
                         [f"PJSIP/8765000{n}@to-a" for n in (2, 3, 4)])
        # Hung up where they live: a cancelled alarm's legs on b.
        self.successResultOf(self.coordinator.cancel(alarm.id))
        self.assertEqual(len(self.b.hangups), 3)
        self.assertEqual(self.a.hangups, [])

    def test_a_caller_on_the_main_server_rings_from_it(self):
        self.successResultOf(self.coordinator.raise_alarm("87650001", household(1, 2),
                                                          asterisk="a"))
        self.assertEqual([c.channel for c in self.a.calls], ["PJSIP/87650002", "PJSIP/87650003"])
        self.assertEqual(self.b.calls, [])

    def test_no_link_to_the_callers_server_is_the_native_ring_all_whatever_the_others(self):
        self.b.connected = False
        self.failureResultOf(self.coordinator.raise_alarm("87650001", household(1, 2),
                                                          asterisk="b"), HandedToDialplan)
        self.assertEqual((self.a.calls, self.b.calls), ([], []))
        # The other server's callers are served as ever.
        self.successResultOf(self.coordinator.raise_alarm("87650003", household(2, 1, own=3),
                                                          asterisk="a"))
        self.assertEqual(len(self.a.calls), 1)

    def test_after_a_restart_the_alarm_rings_from_its_callers_server_again(self):
        alarm = self.successResultOf(self.coordinator.raise_alarm("87650001", household(1, 1),
                                                                  asterisk="b"))
        self.assertEqual(alarm_row(self.rig.db, alarm.id).asterisk, "b")
        self.coordinator.stop()
        a, b = FakeAMI(), FakeAMI()
        again = AlarmCoordinator(
            DIALER, a, AlarmRecorder(self.rig.sync, clock=self.rig.clock), self.rig.config,
            self.rig.clock, hotline_number="12345", placers={"a": a, "b": b},
            dialers={"a": DIALER, "b": Dialer(PLAN, {"default": "PJSIP/{number}@to-a"})})
        (recovered,) = self.successResultOf(again.recover_open_alarms())
        self.assertEqual(recovered.asterisk, "b")
        self.assertEqual(a.calls, [])
        self.assertEqual([c.channel for c in b.calls], [f"PJSIP/{DUTY[-8:]}@to-a"])

    def test_the_safety_net_asks_the_alarms_own_server(self):
        alarm = self.successResultOf(self.coordinator.raise_alarm("87650001", household(1, 1),
                                                                  asterisk="b"))
        self.assertTrue(self.coordinator.can_place_calls(alarm))
        self.b.connected = False
        self.assertFalse(self.coordinator.can_place_calls(alarm))
        self.assertTrue(self.coordinator.can_place_calls())


# AstDB on each ---------------------------------------------------------------------------

class FakeSync:
    def __init__(self, connected=True, fail=False):
        self.ami = SimpleNamespace(connected=connected)
        self.fail = fail
        self.asked: list = []
        self.stale = False

    def _answer(self, what):
        self.asked.append(what)
        return defer.fail(RuntimeError("AstDB down")) if self.fail else defer.succeed(1)

    def resync(self, force=False):
        return self._answer("resync")

    def apply(self, changes):
        return self._answer("apply")

    def duty_changed(self, config):
        return self._answer("duty")


def test_every_astdb_asks_each_and_one_failing_stops_no_other():
    a, b = FakeSync(fail=True), FakeSync()
    every = EveryAstDB({"a": a, "b": b})
    done = []
    every.apply(["change"]).addCallback(done.append)
    every.duty_changed(None)
    assert a.asked == b.asked == ["apply", "duty"]
    assert done  # a's failure was logged, not passed on
    b.stale = True
    assert every.stale
    assert every.ami is a.ami  # the main server's state for the board


def test_every_astdb_resyncs_the_linked_servers_only():
    a, b = FakeSync(), FakeSync(connected=False)
    every = EveryAstDB({"a": a, "b": b})
    every.resync()
    assert (a.asked, b.asked) == (["resync"], [])
    every.resync_one("b")
    assert b.asked == ["resync"]


# The #9 caller's handler ----------------------------------------------------------------

@pytest.mark.database
class CallerHandlerTests(SynchronousTestCase):
    def setUp(self):
        import tempfile
        from alarm.handlers import AlarmCallerHandler
        from tests.test_alarm_handlers import FakeIndex
        self.rig = Rig(tempfile.mkdtemp())
        add_household(self.rig.db, 1)
        self.home = household(1, 2)
        self.a, self.b = self.rig.ami, FakeAMI()
        self.coordinator = AlarmCoordinator(
            DIALER, self.a, self.rig.recorder, self.rig.config, self.rig.clock,
            hotline_number="12345", placers={"a": self.a, "b": self.b})
        self.handler = AlarmCallerHandler(
            FakeIndex(self.home), self.coordinator, self.rig.config, PLAN,
            servers=AsteriskServers([AsteriskServer("a", self.a, self.a),
                                     AsteriskServer("b", self.b, self.b)]))

    def call(self, query):
        from tests.support.agi import FakeSession
        session = FakeSession({"callerid": "87650001", "channel": "PJSIP/87650001-00000001"},
                              hangup_after=6)
        session.query = query
        self.handler(session)
        return session

    def test_the_session_that_names_b_rings_from_b(self):
        self.call({"asterisk": "b"})
        self.assertEqual((len(self.a.calls), len(self.b.calls)), (0, 2))

    def test_a_session_naming_nothing_rings_from_the_main_server(self):
        self.call({})
        self.assertEqual((len(self.a.calls), len(self.b.calls)), (2, 0))


# Seen from outside ---------------------------------------------------------------------

def test_each_servers_link_is_a_metric():
    from switchboard.observe.metrics import Metrics
    from tests.test_observe import value
    two = servers("a", "b")
    two.get("b").ami.connected = False
    metrics = Metrics()
    metrics.watch_asterisks(two)
    assert value(metrics, "switchboard_asterisk_ami_up", asterisk="a") == 1
    assert value(metrics, "switchboard_asterisk_ami_up", asterisk="b") == 0
