"""
Text messages: SIP MESSAGE through AMI MessageSend byte for byte, the
sender's retries on a task.Clock, and the alarm's texts to the duty officer.
"""

import base64
from datetime import datetime
from zoneinfo import ZoneInfo

from twisted.internet import defer, task
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from alarm import config as alarm_config
from alarm.changes import AlarmChange, AlarmChanges
from alarm.index import HouseholdSnapshot
from alarm.state import ActiveAlarm
from alarm.texts import DutyTexts
from switchboard import yamlconf
from switchboard.dialing import Dialer
from switchboard.numbers import NumberPlan
from switchboard.texting import (
    ITextChannel,
    SipMessageChannel,
    TextResult,
    TextSender,
    fit,
    read_settings,
)
from tests.test_ami_support import started

PLAN = NumberPlan("CN", "591")
DIALER = Dialer(PLAN, {"default": "PJSIP/{number}"})
SHANGHAI = ZoneInfo("Asia/Shanghai")


class SipMessageTests(SynchronousTestCase):
    def setUp(self):
        self.client, self.reactor, self.ast = started()
        self.channel = SipMessageChannel(self.client, DIALER, sender='"Alarm" <sip:alarm@lab>')

    def test_interface(self):
        self.assertTrue(verifyObject(ITextChannel, self.channel))

    def test_message_send_exact_bytes_and_accepted(self):
        body = "【紧急求助】华林花园\r\nAction: Hangup"
        d = self.channel.send("+8659187650190", body)
        encoded = base64.b64encode(body.encode()).decode()
        self.assertEqual(self.ast.written(), (
            "Action: MessageSend\r\nActionID: t-2\r\nDestination: pjsip:87650190\r\n"
            f'From: "Alarm" <sip:alarm@lab>\r\nBase64Body: {encoded}\r\n\r\n').encode())
        self.assertNoResult(d)
        self.ast.respond("t-2", "Message: Message successfully sent")
        self.assertEqual(self.successResultOf(d),
                         TextResult("+8659187650190", True, "taken by Asterisk for sending"))

    def test_an_explicit_channel_is_its_endpoint(self):
        self.channel.send("PJSIP/duty-office", "x")
        self.assertIn(b"Destination: pjsip:duty-office\r\n", self.ast.written())

    def test_refused_and_no_link_are_not_sent_never_a_failure(self):
        d = self.channel.send("+8659187650190", "x")
        self.ast.respond("t-2", "Message: Message technology not found.", status="Error")
        result = self.successResultOf(d)
        self.assertEqual((result.sent, result.detail), (False, "Message technology not found."))
        self.ast.close()
        result = self.successResultOf(self.channel.send("+8659187650190", "x"))
        self.assertFalse(result.sent)
        self.assertIn("not connected", result.detail)

    def test_fit_cuts_on_a_character_boundary(self):
        text = "求" * 500  # 1500 bytes
        cut = fit(text)
        self.assertLessEqual(len(cut.encode()), 1300)
        self.assertTrue(cut.endswith("…"))
        self.assertEqual(set(cut[:-1]), {"求"})
        self.assertEqual(fit("short"), "short")
        self.channel.send("+8659187650190", text)
        sent = self.ast.written().split(b"Base64Body: ")[1].split(b"\r\n")[0]
        self.assertEqual(base64.b64decode(sent).decode(), cut)


class FlakyChannel:
    name = "flaky"

    def __init__(self, fail_times):
        self.fail_times = fail_times
        self.sent = []

    def send(self, to, body):
        self.sent.append((to, body))
        if len(self.sent) <= self.fail_times:
            return defer.succeed(TextResult(to, False, "no link"))
        return defer.succeed(TextResult(to, True, "ok"))


class SenderTests(SynchronousTestCase):
    def test_retried_doubling_then_sent(self):
        clock = task.Clock()
        channel = FlakyChannel(2)
        sender = TextSender(channel, clock, retries=3, retry_after=5)
        d = sender.send("+8659187650190", "x")
        self.assertEqual(len(channel.sent), 1)
        clock.advance(4.9)
        self.assertEqual(len(channel.sent), 1)
        clock.advance(0.1)
        self.assertEqual(len(channel.sent), 2)
        self.assertNoResult(d)
        clock.advance(10)
        self.assertTrue(self.successResultOf(d).sent)
        self.assertEqual((len(channel.sent), sender.waiting), (3, 0))

    def test_given_up_after_the_last_try(self):
        clock = task.Clock()
        channel = FlakyChannel(99)
        sender = TextSender(channel, clock, retries=2, retry_after=1)
        d = sender.send("+8659187650190", "x")
        clock.pump([1, 2, 4, 8])
        self.assertFalse(self.successResultOf(d).sent)
        self.assertEqual(len(channel.sent), 3)

    def test_a_backlog_is_bounded(self):
        clock = task.Clock()
        sender = TextSender(FlakyChannel(99), clock, retries=5, retry_after=60, limit=2)
        sender.send("a", "x")
        sender.send("b", "x")
        third = self.successResultOf(sender.send("c", "x"))
        self.assertFalse(third.sent)
        self.assertIn("waiting", third.detail)
        sender.stop()
        self.assertEqual(clock.getDelayedCalls(), [])


class RecordingSender:
    def __init__(self):
        self.sent = []

    def send(self, to, body):
        self.sent.append((to, body))
        return defer.succeed(TextResult(to, True, "ok"))


ALARM_YAML = """\
escalation:
  stages:
    - {name: 值班员, after: 60, phones: ["87650190"]}
    - {name: 物业保安, after: 120, phones: ["87650191"]}
notify: {text: ["87650190", "PJSIP/duty-office"], when: [opened, escalated, confirmed, ended]}
"""


def household(notes="hard of hearing"):
    return HouseholdSnapshot(1, 1, "华林花园", "3", "1", "101", notes, ("+8659187650001",),
                             ("+8659187650002",), residents="陈梅")


class DutyTextsTests(SynchronousTestCase):
    def setUp(self):
        self.config = alarm_config.loads(ALARM_YAML, PLAN)
        self.sender = RecordingSender()
        self.changes = AlarmChanges()
        self.told = []
        self.clock = task.Clock()
        self.texts = DutyTexts(lambda: self.config, self.sender, self.changes, SHANGHAI,
                               self.clock)
        self.changes.subscribe(self.texts)
        self.changes.subscribe(self.told.append)
        self.at = datetime(2026, 12, 3, 3, 7, tzinfo=SHANGHAI).timestamp()
        self.alarm = ActiveAlarm(keys=(), household=household(), caller_raw="87650001",
                                 caller_number="+8659187650001", address="", opened=self.at)
        self.alarm.id = 42

    def tell(self, kind, **kw):
        self.changes.tell(AlarmChange(42, self.alarm, kind, self.at, **kw))
        self.clock.advance(0)

    def test_sent_after_the_turn_that_told_the_change(self):
        # The alarm's Originates, written in the turn that opened it, go
        # first on the AMI session; its texts follow in the next turn.
        self.changes.tell(AlarmChange(42, self.alarm, "opened", self.at))
        self.assertEqual(self.sender.sent, [])
        self.clock.advance(0)
        self.assertEqual([to for to, _ in self.sender.sent],
                         ["+8659187650190", "PJSIP/duty-office"])

    def test_opened_says_who_where_and_when_in_the_community_zone(self):
        self.tell("opened")
        self.assertEqual([to for to, _ in self.sender.sent],
                         ["+8659187650190", "PJSIP/duty-office"])
        body = self.sender.sent[0][1]
        self.assertIn("03:07", body)
        self.assertIn(household().address, body)
        self.assertIn("陈梅", body)
        self.assertIn("87650001", body)
        self.assertIn("警报42", body)
        self.assertNotIn("hard of hearing", body)  # notes only with notes: true
        texted = [c for c in self.told if c.kind == "texted"]
        self.assertEqual([(c.number, c.detail) for c in texted],
                         [("+8659187650190", "opened: sent (ok)"),
                          ("PJSIP/duty-office", "opened: sent (ok)")])

    def test_notes_when_asked(self):
        self.config = alarm_config.loads(ALARM_YAML.replace("when:", "notes: true, when:"), PLAN)
        self.tell("opened")
        self.assertIn("备注：hard of hearing", self.sender.sent[0][1])

    def test_escalated_names_the_stage_rung(self):
        self.alarm.stages_rung.update({0, 1})
        self.tell("escalated", detail="物业保安: nobody confirmed within 120 s")
        self.assertIn("已呼叫：物业保安", self.sender.sent[0][1])

    def test_confirmed_and_ended_but_not_each_ring(self):
        self.tell("ringing", number="+8659187650002")
        self.tell("busy", number="+8659187650002")
        self.assertEqual(self.sender.sent, [])
        self.tell("confirmed", number="+8659187650002")
        self.assertIn("+8659187650002 已按 1", self.sender.sent[-1][1])
        self.tell("closed", detail="caller and responders have left")
        self.assertIn("已结束：caller and responders have left", self.sender.sent[-1][1])

    def test_only_the_events_chosen_and_nobody_without_phones(self):
        self.config = alarm_config.loads(ALARM_YAML.replace(
            "when: [opened, escalated, confirmed, ended]", "when: [escalated]"), PLAN)
        self.tell("opened")
        self.assertEqual(self.sender.sent, [])
        self.config = alarm_config.loads(ALARM_YAML.split("notify")[0], PLAN)
        self.tell("escalated")
        self.assertEqual(self.sender.sent, [])

    def test_a_hostile_caller_id_is_one_short_line(self):
        self.alarm.household = None
        self.alarm.caller_raw = "evil\r\nAction: Hangup\u202e" + "9" * 100
        self.tell("opened")
        body = self.sender.sent[0][1]
        self.assertIn("未登记的号码 evilAction: Hangup999", body)
        self.assertNotIn("\n", body)
        self.assertNotIn("\u202e", body)

    def test_an_alarm_handed_to_the_dialplan_is_texted_too(self):
        self.changes.tell(AlarmChange(43, None, "opened", self.at,
                                      detail="#9 from Hualin Garden, building 3"))
        self.clock.advance(0)
        body = self.sender.sent[0][1]
        self.assertIn("#9 from Hualin Garden, building 3", body)
        self.assertIn("电话交换机正在直接呼叫邻居", body)


class SettingsTests(SynchronousTestCase):
    def read(self, text):
        check = yamlconf.Checker()
        data = check.mapping(yamlconf.loads(text, "switchboard.yaml"), "", allowed={"texting"})
        return read_settings(check, data), check.problems

    def test_defaults_and_problems_located(self):
        settings, problems = self.read("texting: {}\n")
        self.assertEqual((settings.address, problems), ("pjsip:{number}", []))
        settings, problems = self.read(
            "texting:\n  via: carrier-pigeon\n  address: 'sip:x'\n  retries: 50\n")
        self.assertEqual([(p.location.line, p.key) for p in problems],
                         [(2, "texting.via"), (3, "texting.address"), (4, "texting.retries")])
        self.assertEqual((settings.via, settings.address, settings.retries),
                         ("sip", "pjsip:{number}", 3))

    def test_notify_problems_located(self):
        text = ALARM_YAML.replace(
            'notify: {text: ["87650190", "PJSIP/duty-office"], when: [opened, escalated, '
            'confirmed, ended]}',
            "notify:\n  text: [abc]\n  when: [opened, bogus]\n  on: [opened]\n")
        with self.assertRaises(yamlconf.ConfigError) as raised:
            alarm_config.loads(text, PLAN, path="alarm.yaml")
        self.assertEqual([(p.location.line, p.key) for p in raised.exception.problems],
                         [(6, "notify.text[0]"), (7, "notify.when[1]"), (8, "notify.True")])
