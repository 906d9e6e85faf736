"""
The alarm's parts put together the way the server wires them, against fakes
of Asterisk: registry -> caller index -> #9 handler -> coordinator -> AMI
originates -> responder handler -> timeline; AstDB kept in step.
"""

import pytest
import os
import tempfile

from twisted.internet import defer, task
from twisted.trial.unittest import SynchronousTestCase

from alarm import config as alarm_config
from switchboard.community import csvfile
from alarm.astdb import AstDBSync
from alarm.coordinator import AlarmCoordinator
from alarm.handlers import AlarmCallerHandler, ResponderHandler
from alarm.index import CallerIndex
from alarm.monitor import RegistryWatcher
from alarm.recorder import AlarmRecorder
from switchboard.community.registry import Registry

from tests.test_alarm_support import (
    DIALER,
    PLAN,
    FakeAMI,
    FakeSession,
    SyncDatabase,
    alarm_row,
    database,
    timeline,
)

pytestmark = pytest.mark.database

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Server:
    """What the service builds for the alarm (see the wiring notes in the report)."""

    def __init__(self, db, ami, clock):
        sync = SyncDatabase(db)
        self.config = alarm_config.load(os.path.join(PROJECT, "config", "alarm.yaml"), PLAN,
                                        DIALER.trunks)
        self.index = CallerIndex(sync, PLAN, max_neighbours=self.config.max_neighbours)
        self.recorder = AlarmRecorder(sync, clock=clock)
        self.coordinator = AlarmCoordinator(DIALER, ami, self.recorder, self.config, clock,
                                            hotline_number="12345", kick=ami.kick)
        self.astdb = AstDBSync(ami, self.index, DIALER, self.config, clock=clock, rate=1e9,
                               run_in_thread=lambda f, *a: defer.maybeDeferred(f, *a))
        self.watcher = RegistryWatcher(self.index, self.astdb, self.coordinator, self.recorder,
                                       clock=clock)
        self.handlers = {
            "alarm": AlarmCallerHandler(self.index, self.coordinator, self.config, PLAN),
            "alarm-responder": ResponderHandler(self.coordinator, self.config, clock=clock),
        }

    @defer.inlineCallbacks
    def start(self):
        yield self.index.load()
        yield self.coordinator.recover_open_alarms(self.index)
        self.watcher.start()


class FlowTests(SynchronousTestCase):
    def setUp(self):
        self.db = database(tempfile.mkdtemp())
        csvfile.import_csv(Registry(self.db, PLAN),
                           os.path.join(PROJECT, "config", "households.csv"))
        self.clock = task.Clock()
        self.clock.advance(1_700_000_000)
        self.ami = FakeAMI()
        self.server = Server(self.db, self.ami, self.clock)
        self.successResultOf(self.server.start())
        self.successResultOf(self.server.astdb.resync())
        self.addCleanup(self.server.watcher.stop)

    def test_neighbour_comes(self):
        caller = FakeSession({"callerid": "059187650001", "channel": "PJSIP/87650001-00000001"})
        # The caller is in the room while the neighbours answer: hold ConfBridge.
        finish_room = defer.Deferred()
        caller.exec_ = lambda app, *args: (caller.commands.append(("exec_", app) + args),
                                           finish_room)[1]
        handled = self.server.handlers["alarm"](caller)
        self.assertEqual([c.channel for c in self.ami.calls],
                         [f"PJSIP/8765{n:04d}" for n in range(2, 12)])
        alarm_id = int(caller.variables["SWITCHBOARD_ALARM"])
        for i, call in enumerate(self.ami.calls):
            self.server.coordinator.note_channel(call.channel_id, f"{call.channel}-{i:08x}")
        # 87650003 cannot come, 87650005 comes.
        self.clock.advance(8)
        no = self.ami.calls[1]
        no.finish("answered")
        self.successResultOf(self.server.handlers["alarm-responder"](FakeSession(
            {"channel": f"{no.channel}-00000001"}, keys=["2"],
            variables={"SWITCHBOARD_ALARM": str(alarm_id), "SWITCHBOARD_LEG": no.channel_id})))
        self.clock.advance(4)
        yes = self.ami.calls[3]
        yes.finish("answered")
        responder = FakeSession({"channel": f"{yes.channel}-00000003"}, keys=["1"],
                                variables={"SWITCHBOARD_ALARM": str(alarm_id),
                                           "SWITCHBOARD_LEG": yes.channel_id})
        self.successResultOf(self.server.handlers["alarm-responder"](responder))
        self.assertIn(("exec_", "ConfBridge", f"alarm-{alarm_id}", "alarm_bridge",
                       "alarm_responder"), responder.commands)
        # The others ring on until their timeout; no escalation after a confirmation.
        self.clock.advance(18)
        for call in self.ami.calls:
            if not call.deferred.called:
                call.finish("no-answer")
        self.clock.advance(600)
        self.assertEqual(len(self.ami.calls), 10)
        # The caller leaves (hangs up) after the neighbour has been with them.
        caller.variables["CONFBRIDGE_RESULT"] = "HANGUP"
        finish_room.callback(0)
        self.successResultOf(handled)
        row = alarm_row(self.db, alarm_id)
        self.assertEqual((row.status, row.outcome), ("closed", "caller and responders have left"))
        kinds = [(k, n) for k, n, _ in timeline(self.db, alarm_id)]
        self.assertEqual(kinds[:11], [("opened", "059187650001")]
                         + [("ringing", f"+8659187650{n:03d}") for n in range(2, 12)])
        self.assertIn(("declined", "+8659187650003"), kinds)
        self.assertIn(("confirmed", "+8659187650005"), kinds)
        self.assertEqual(kinds[-1], ("closed", None))
        # The native fallback's copy was there all along.
        self.assertEqual(self.ami.family("swb_ring")["01/8659187650001"],
                         "&".join(f"PJSIP/8765{n:04d}" for n in range(2, 12)))

    def test_restart_in_the_middle(self):
        caller = FakeSession({"callerid": "87650012"})
        caller.exec_ = lambda app, *args: defer.Deferred()  # in the room when the server dies
        self.server.handlers["alarm"](caller)
        alarm_id = int(caller.variables["SWITCHBOARD_ALARM"])
        self.assertEqual(len(self.ami.calls), 3)
        self.server.coordinator.stop()
        self.server.watcher.stop()
        # A new server process on the same database.
        ami = FakeAMI()
        server = Server(self.db, ami, self.clock)
        self.successResultOf(server.start())
        self.addCleanup(server.watcher.stop)
        self.assertEqual([c.channel for c in ami.calls], ["PJSIP/87650190"])
        self.assertEqual(ami.calls[0].variables["SWITCHBOARD_ROOM"], f"alarm-{alarm_id}")
        duty = ami.calls[0]
        duty.finish("answered")
        responder = FakeSession({}, keys=["1"], variables={"SWITCHBOARD_ALARM": str(alarm_id),
                                                           "SWITCHBOARD_LEG": duty.channel_id})
        self.successResultOf(server.handlers["alarm-responder"](responder))
        # The duty officer hears where: building 3, unit 2, room 302.
        self.assertEqual(responder.named("say_digits"),
                         [("say_digits", "3", "12"), ("say_digits", "2", "12"), ("say_digits", "302", "12")])
        self.assertEqual(alarm_row(self.db, alarm_id).status, "confirmed")
        self.assertIn("recovered", [k for k, _, _ in timeline(self.db, alarm_id)])
