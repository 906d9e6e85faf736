"""
The alarm speaks: the announcement sentence (how numbers are read), prompts
written as text in alarm.yaml, rendering ahead of time (start-up, registry
changes) and what the caller and each neighbour hear.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile

import pytest
from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase
from twisted.logger import capturedLogs, formatEvent

from alarm import announcement, config
from switchboard.community import csvfile
from alarm.announcement import announcement as sentence
from alarm.handlers import AlarmCallerHandler, ResponderHandler
from alarm.index import CallerIndex, HouseholdSnapshot
from alarm.monitor import RegistryWatcher
from switchboard.community.registry import HouseholdData, Registry
from alarm.speaking import Announcer
from switchboard.speech import Speech
from switchboard.speech.engine import VOICES
from switchboard.speech.render import said
from switchboard.yamlconf import ConfigError

from tests.test_alarm_handlers import FakeIndex
from tests.test_alarm_support import PLAN, FakeSession, Rig, add_household, household, number

SAMPLE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "config", "households.csv")


# The sentence -------------------------------------------------------------------

@pytest.mark.parametrize("fields, expected", [
    # The example: building and unit counted, the room digit by digit with 幺.
    (dict(community="华林花园", building="3", unit="1", room="101", residents="陈梅"),
     "紧急求助！华林花园三号楼一单元幺零幺室，陈梅需要帮助。能马上过去请按一，去不了请按二。"),
    (dict(community="华林花园", building="3", unit="1", room="101", residents="陈梅",
          notes="行动不便，独居"),
     "紧急求助！华林花园三号楼一单元幺零幺室，陈梅需要帮助。请注意：行动不便，独居。"
     "能马上过去请按一，去不了请按二。"),
    # Staff wrote the words themselves: not doubled, still read as people say them.
    (dict(building="12号楼", unit="2单元", room="1203室", residents="王芳"),
     "紧急求助！十二号楼二单元幺二零三室，王芳需要帮助。能马上过去请按一，去不了请按二。"),
    (dict(building="20栋", room="501"),
     "紧急求助！二十栋五零幺室，有住户需要帮助。能马上过去请按一，去不了请按二。"),
    # Letters stay, digits are read.
    (dict(building="A", room="B101", residents="林涛; 林秀"),
     "紧急求助！A号楼B幺零幺室，林涛、林秀需要帮助。能马上过去请按一，去不了请按二。"),
    # Numbers in free text: short ones counted, long ones (phones) digit by digit.
    (dict(community="华林2期", room="8", notes="钥匙在87650002家。"),
     "紧急求助！华林二期八室，有住户需要帮助。请注意：钥匙在八七六五零零零二家。"
     "能马上过去请按一，去不了请按二。"),
    (dict(), "紧急求助！有住户需要帮助。能马上过去请按一，去不了请按二。"),
])
def test_the_sentence_a_neighbour_hears(fields, expected):
    assert sentence(**fields) == expected


@pytest.mark.parametrize("reader, value, expected", [
    (announcement.read_building, "3", "三号楼"),
    (announcement.read_building, "10", "十号楼"),
    (announcement.read_building, "11", "十一号楼"),
    (announcement.read_building, "3号楼", "三号楼"),
    (announcement.read_building, "东区", "东区"),
    (announcement.read_unit, "1", "一单元"),
    (announcement.read_unit, " 2 ", "二单元"),
    (announcement.read_room, "101", "幺零幺室"),
    (announcement.read_room, "1001", "幺零零幺室"),
    (announcement.read_room, "101室", "幺零幺室"),
    (announcement.read_room, "", ""),
    (announcement.read_residents, "陈梅、陈强", "陈梅、陈强"),
    (announcement.read_residents, "Lin Tao; Lin Xiu", "Lin Tao、Lin Xiu"),
])
def test_each_part_is_read_as_people_say_it(reader, value, expected):
    assert reader(value) == expected


def test_notes_are_left_out_of_the_second_candidate():
    h = household(1, 2, building="3", unit="1", room="101", notes="行动不便")
    full, bare = announcement.candidates(h)
    assert "行动不便" in full and "行动不便" not in bare
    assert announcement.candidates(household(1, 2)) == [announcement.for_household(household(1, 2))]


# alarm.yaml prompts as text --------------------------------------------------------

class FakeEngine:
    """Renders at once: 2 bytes a sample, 8000 samples (one second) a character."""

    name = "fake"
    voices = VOICES

    def __init__(self):
        self.texts = []

    def probe(self):
        return "fake 1.0"

    def render(self, text, voice, path, *, rate, container="raw"):
        self.texts.append(text)
        with open(path, "wb") as f:
            f.write(b"\x00\x01" * 8000 * len(text))
        return defer.succeed(path)


def heard(text):
    """What the engine is given for C{text} (the renderer's own reading of it)."""
    return said(text, VOICES["zh"])


def make_speech(folder, engine=None):
    from twisted.internet import task
    return Speech(folder, engine=engine or FakeEngine(), reactor=task.Clock(),
                  blocking=lambda f, *a: defer.maybeDeferred(f, *a))


ESCALATION = "escalation:\n  stages:\n    - {name: duty, after: 30, phones: [PJSIP/duty]}\n"


def load(text, speech=None):
    return config.loads(ESCALATION + text, PLAN, ("default",), "alarm.yaml", speech=speech)


def problems(text, speech=None):
    with pytest.raises(ConfigError) as e:
        load(text, speech)
    return [str(p) for p in e.value.problems]


def test_prompt_forms():
    c = load('prompts:\n'
             '  caller_hold: {say: "别着急，正在为您呼叫邻居，请不要挂机。"}\n'
             '  caller_cancelled: {sound: my-cancelled, say: "求助已取消。"}\n'
             '  responder_ask: [vm-press, digits/1]\n'
             '  responder_coming: auth-thankyou\n')
    p = c.prompts
    # Text: the stock sound of that step stays as the fallback.
    assert (p.caller_hold.text, p.caller_hold.sounds, p.caller_hold.recorded) == (
        "别着急，正在为您呼叫邻居，请不要挂机。", ("one-moment-please",), False)
    assert (p.caller_cancelled.sounds, p.caller_cancelled.recorded) == (("my-cancelled",), True)
    assert (p.responder_ask.sounds, p.responder_ask.text) == (("vm-press", "digits/1"), None)
    assert p.responder_coming.sounds == ("auth-thankyou",)
    assert p.texts() == ["别着急，正在为您呼叫邻居，请不要挂机。"]
    assert p.spoken
    assert not load("").prompts.spoken


def test_what_a_prompt_plays(tmp_path):
    speech = make_speech(str(tmp_path))
    c = load('prompts:\n  caller_hold: {say: "请稍等。"}\n'
             '  caller_cancelled: {sound: my-cancelled, say: "求助已取消。"}\n')
    hold, cancelled = c.prompts.caller_hold, c.prompts.caller_cancelled
    assert hold.play_list(speech) == ["one-moment-please"], "not rendered yet: stock"
    assert hold.play_list(None) == ["one-moment-please"], "no speech: stock"
    name = speech.render("请稍等。").result
    assert hold.play_list(speech) == [name]
    speech.render("求助已取消。")
    assert cancelled.play_list(speech) == ["my-cancelled"], "a recording wins"


def test_text_mistakes_are_located():
    assert problems('prompts:\n'
                    '  caller_hold: {say: ""}\n'
                    '  caller_cancelled: {say: 12}\n'
                    '  responder_ask: {sya: "请按一"}\n'
                    '  responder_coming: {}\n'
                    '  responder_declined: {say: "a\\nb"}\n'
                    f'  responder_intro: {{say: "{"长" * 501}"}}\n'
                    '  responder_location: {sound: "bad name", say: "地址"}\n') == [
        "alarm.yaml:5:22: prompts.caller_hold.say: must be the text to say "
        "(e.g. say: \"别着急，正在为您呼叫邻居，请不要挂机。\")",
        "alarm.yaml:6:27: prompts.caller_cancelled.say: must be the text to say "
        "(e.g. say: \"别着急，正在为您呼叫邻居，请不要挂机。\")",
        "alarm.yaml:7:19: prompts.responder_ask.sya: unknown key (did you mean 'say'?)",
        "alarm.yaml:8:21: prompts.responder_coming: is empty (say: TEXT or sound: NAME)",
        "alarm.yaml:9:29: prompts.responder_declined.say: has a control character "
        "(line breaks are not said) (write the prompt on one line)",
        "alarm.yaml:10:26: prompts.responder_intro.say: 501 characters, longer than 500 "
        "(a prompt is a sentence or two)",
        "alarm.yaml:11:31: prompts.responder_location.sound: 'bad name' is not a sound name "
        "(a name under the sounds folder without extension, e.g. digits/1)",
    ]


def test_text_the_engine_cannot_say_is_located(tmp_path):
    speech = make_speech(str(tmp_path))
    text = 'prompts:\n  caller_hold: {say: "请稍等☎"}\n  responder_ask: {say: "请按一"}\n'
    assert load(text).prompts.caller_hold.text == "请稍等☎", "no speech given: not checked"
    [problem] = problems(text, speech)
    assert problem.startswith("alarm.yaml:5:22: prompts.caller_hold.say: ")
    assert "“☎”" in problem and "character 4" in problem


def test_shipped_alarm_file_speaks_mandarin(tmp_path):
    shipped = os.path.join(os.path.dirname(SAMPLE), "alarm.yaml")
    c = config.load(shipped, PLAN, ["default"], speech=make_speech(str(tmp_path)))
    for name, prompt in c.prompts.items():
        assert prompt.text and not prompt.recorded, name
        assert any("\u4e00" <= ch <= "\u9fff" for ch in prompt.text), name
        assert prompt.sounds, f"{name} keeps a stock sound as its fallback"
    assert c.prompts.caller_hold.text.startswith("别着急")


# Rendering ahead of time -----------------------------------------------------------

def snapshot(hid=1, numbers=(1,), **kw):
    fields = dict(community="华林花园", building="3", unit="1", room="101", notes="",
                  residents="陈梅")
    fields.update(kw)
    return HouseholdSnapshot(hid, 1, fields["community"], fields["building"], fields["unit"],
                             fields["room"], fields["notes"], tuple(number(n) for n in numbers),
                             (number(2),), fields["residents"])


def synchronously(f, *a):
    return defer.maybeDeferred(f, *a)


class AnnouncerTests(SynchronousTestCase):
    def setUp(self):
        self.sounds = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.sounds, True)
        self.engine = FakeEngine()
        self.speech = make_speech(self.sounds, self.engine)
        self.announcer = Announcer(self.speech, blocking=synchronously)

    def test_start_up_renders_those_missing_once(self):
        homes = [snapshot(1), snapshot(2, room="102", residents="林涛")]
        self.assertEqual(self.successResultOf(self.announcer.prepare(homes)), 2)
        name = self.announcer.sound_for(homes[0])
        self.assertTrue(name.startswith("switchboard-tts/"))
        path = self.speech.path(announcement.for_household(homes[0]))
        self.assertEqual(name, "switchboard-tts/" + os.path.basename(path).split(".")[0])
        # It names a resident: not world-readable (the Speech's mode, 0640).
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o640)
        self.assertEqual(self.engine.texts,
                         [heard(announcement.for_household(h)) for h in homes])
        # A restart: all there, nothing rendered.
        self.assertEqual(self.successResultOf(self.announcer.prepare(homes)), 0)
        self.assertEqual(len(self.engine.texts), 2)

    def test_a_change_renders_the_new_sentence_and_deletes_the_old(self):
        old = snapshot(1)
        self.successResultOf(self.announcer.prepare([old]))
        old_path = self.speech.path(announcement.for_household(old))
        new = snapshot(1, residents="陈梅、陈强", notes="行动不便")
        self.assertEqual(self.successResultOf(self.announcer.changed([(old, new)])), 1)
        self.assertFalse(os.path.exists(old_path), "the old sentence names who lived there")
        self.assertIn("陈强", self.engine.texts[-1])
        self.assertIn("行动不便", self.engine.texts[-1])
        self.assertIsNotNone(self.announcer.sound_for(new))
        self.assertIsNone(self.announcer.sound_for(old))
        # Removed: its sentence goes too.
        self.successResultOf(self.announcer.changed([(new, None)]))
        self.assertEqual(os.listdir(os.path.join(self.sounds, "switchboard-tts")), [])

    def test_notes_that_cannot_be_said_are_left_out(self):
        h = snapshot(1, notes="☎ 87650002")
        self.successResultOf(self.announcer.prepare([h]))
        self.assertEqual(self.engine.texts,
                         [heard(announcement.for_household(h, with_notes=False))])
        self.assertIsNotNone(self.announcer.sound_for(h))

    def test_a_sentence_that_cannot_be_said_is_not_rendered(self):
        h = snapshot(1, residents="陈梅☎")
        self.assertEqual(self.successResultOf(self.announcer.prepare([h])), 0)
        self.assertEqual(self.engine.texts, [])
        self.assertIsNone(self.announcer.sound_for(h), "the stock prompts are played")

    def test_no_engine_renders_nothing_and_finds_nothing(self):
        class Missing(FakeEngine):
            def probe(self):
                self.missing = "fake is not installed"
                return None
        announcer = Announcer(make_speech(self.sounds, Missing()), blocking=synchronously)
        self.assertEqual(self.successResultOf(announcer.prepare([snapshot()])), 0)
        self.assertIsNone(announcer.sound_for(snapshot()))
        self.assertIsNone(Announcer(None).sound_for(snapshot()))

    def test_prompts_and_digits(self):
        c = load('prompts:\n  caller_hold: {say: "请稍等。"}\n')
        self.assertEqual(self.successResultOf(self.announcer.prepare_prompts(c)), 0)
        self.assertEqual(self.engine.texts, [heard(t) for t in (
            "请稍等。", "零", "幺", "二", "三", "四", "五", "六", "七", "八", "九")])
        names = self.announcer.digits("101")
        self.assertEqual(names, [self.speech.sound_name("幺"), self.speech.sound_name("零"),
                                 self.speech.sound_name("幺")])
        # Stock prompts only: nothing to say in Mandarin.
        self.engine.texts.clear()
        self.successResultOf(self.announcer.prepare_prompts(load("")))
        self.assertEqual(self.engine.texts, [])


    def native(self, name):
        return os.path.join(self.sounds, "switchboard-tts", name + ".sln")

    def test_each_landline_names_its_households_announcement_for_the_dialplan(self):
        from alarm.speaking import NATIVE_WHO
        chen = snapshot(1)
        lin = snapshot(2, numbers=(3, 4), room="102", residents="林涛")
        mute = snapshot(5, numbers=(5,), residents="陈梅☎")
        os.makedirs(os.path.join(self.sounds, "switchboard-tts"))
        # What an older registry left: a landline no longer registered, and
        # one whose household can no longer be said.
        for n in (number(9), number(5)):
            os.symlink("gone.sln", self.native(NATIVE_WHO + n.lstrip("+")))
        self.successResultOf(self.announcer.prepare([chen, lin, mute]))
        for home in (chen, lin):
            rendering = self.speech.path(announcement.for_household(home))
            for n in home.numbers:
                link = self.native(NATIVE_WHO + n.lstrip("+"))
                # A link in the same folder: Asterisk reads the one rendering through it.
                self.assertEqual(os.readlink(link), os.path.basename(rendering))
                with open(link, "rb") as via, open(rendering, "rb") as f:
                    self.assertEqual(via.read(), f.read())
        for n in (number(9), number(5)):
            self.assertFalse(os.path.lexists(self.native(NATIVE_WHO + n.lstrip("+"))))

    def test_a_change_moves_the_link_and_a_removal_deletes_it(self):
        from alarm.speaking import NATIVE_WHO
        old = snapshot(1)
        self.successResultOf(self.announcer.prepare([old]))
        link = self.native(NATIVE_WHO + number(1).lstrip("+"))
        new = snapshot(1, residents="陈梅、陈强")
        self.successResultOf(self.announcer.changed([(old, new)]))
        self.assertEqual(os.readlink(link),
                         os.path.basename(self.speech.path(announcement.for_household(new))))
        # The landline moves to another household: its link follows it.
        moved = snapshot(1, numbers=(7,), residents="陈梅、陈强")
        other = snapshot(2, room="102", residents="林涛")
        self.successResultOf(self.announcer.changed([(new, moved), (None, other)]))
        self.assertEqual(os.readlink(link),
                         os.path.basename(self.speech.path(announcement.for_household(other))))
        self.assertTrue(os.path.exists(self.native(NATIVE_WHO + number(7).lstrip("+"))))
        # Both leave: nothing of them is left, not even a name with their number.
        self.successResultOf(self.announcer.changed([(moved, None), (other, None)]))
        self.assertEqual(os.listdir(os.path.join(self.sounds, "switchboard-tts")), [])

    def test_a_change_made_during_start_up_is_linked_after_it(self):
        # Start-up works from the households listed when it began; a landline
        # that moves meanwhile must not be linked back to the household it left.
        from alarm.speaking import NATIVE_WHO
        held = []

        def later(f, *a):
            held.append((f, a, defer.Deferred()))
            return held[-1][2]

        announcer = Announcer(self.speech, blocking=later)
        chen = snapshot(1, numbers=(1, 3))
        lin = snapshot(2, numbers=(4,), room="102", residents="林涛")
        started = announcer.prepare([chen, lin])
        moved = [(chen, snapshot(1, numbers=(1,))),
                 (lin, snapshot(2, numbers=(3, 4), room="102", residents="林涛"))]
        changed = announcer.changed(moved)
        while held:
            f, args, d = held.pop(0)
            d.callback(f(*args))
        self.successResultOf(started)
        self.successResultOf(changed)
        self.assertEqual(os.readlink(self.native(NATIVE_WHO + number(3).lstrip("+"))),
                         os.path.basename(self.speech.path(announcement.for_household(lin))))

    def test_the_digits_get_fixed_names_for_the_dialplan(self):
        from alarm.speaking import NATIVE_DIGIT
        self.successResultOf(self.announcer.prepare_prompts(
            load('prompts:\n  caller_hold: {say: "请稍等。"}\n')))
        for digit, text in zip("0123456789", "零幺二三四五六七八九"):
            with open(self.native(NATIVE_DIGIT + digit), "rb") as f, \
                    open(self.speech.path(text), "rb") as rendered:
                self.assertEqual(f.read(), rendered.read(), digit)
            self.assertEqual(stat.S_IMODE(os.stat(self.native(NATIVE_DIGIT + digit)).st_mode),
                             0o640)

    def test_the_native_fallback_question_gets_a_fixed_name(self):
        from alarm.speaking import NATIVE_ASK
        c = load('prompts:\n  responder_intro: {say: "紧急求助！"}\n'
                 '  responder_ask: {say: "能马上过去请按一，去不了请按二。"}\n')
        self.successResultOf(self.announcer.prepare_prompts(c))
        path = os.path.join(self.sounds, "switchboard-tts", f"{NATIVE_ASK}.sln")
        with open(path, "rb") as f, open(self.speech.path(
                "紧急求助！能马上过去请按一，去不了请按二。"), "rb") as rendered:
            self.assertEqual(f.read(), rendered.read())
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o640)
        # A recorded question: the dialplan keeps its stock sounds.
        self.assertIsNone(Announcer.native_text(load(
            'prompts:\n  responder_intro: {say: "紧急求助！"}\n  responder_ask: [vm-press]\n')))


@pytest.mark.database
class WatcherTests(SynchronousTestCase):
    """A household changed with the CLI (another process) gets its sentence rendered."""

    def setUp(self):
        self.rig = Rig(tempfile.mkdtemp())
        self.sounds = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.sounds, True)
        self.registry = Registry(self.rig.db, PLAN)
        csvfile.import_csv(self.registry, SAMPLE)
        self.index = CallerIndex(self.rig.sync, PLAN)
        self.successResultOf(self.index.load())
        self.engine = FakeEngine()
        self.speech = make_speech(self.sounds, self.engine)
        self.announcer = Announcer(self.speech, blocking=synchronously)
        self.watcher = RegistryWatcher(self.index, clock=self.rig.clock, interval=5,
                                       announcer=self.announcer)
        self.watcher.start()
        self.addCleanup(self.watcher.stop)

    def test_added_and_changed_households_are_rendered(self):
        hid = self.registry.add(HouseholdData(numbers=[number(150)], community="华林花园",
                                              building="5", unit="2", room="301",
                                              residents="周敏", notes="独居"))
        self.assertEqual(self.engine.texts, [])
        self.rig.clock.advance(5)
        self.assertEqual(self.engine.texts, [heard(
            "紧急求助！华林花园五号楼二单元三零幺室，周敏需要帮助。请注意：独居。"
            "能马上过去请按一，去不了请按二。")])
        self.assertIsNotNone(self.announcer.sound_for(self.index.get(hid)))
        # Edited (an import of the same landline updates it).
        self.registry.store([HouseholdData(numbers=[number(150)], community="华林花园",
                                           building="5", unit="2", room="302",
                                           residents="周敏")])
        self.rig.clock.advance(5)
        self.assertIn("三零二室", self.engine.texts[-1])
        self.assertIsNotNone(self.announcer.sound_for(self.index.get(hid)))
        # The new sentence only, and the landline's link for the dialplan to it.
        folder = os.path.join(self.sounds, "switchboard-tts")
        link = "alarm-native-who-" + number(150).lstrip("+") + ".sln"
        rendered = os.path.basename(self.speech.path(
            self.announcer.text_for(self.index.get(hid))))
        self.assertEqual(sorted(os.listdir(folder)), sorted([rendered, link]))
        self.assertEqual(os.readlink(os.path.join(folder, link)), rendered)


# What the caller and the neighbours hear ----------------------------------------------

SPOKEN = """\
prompts:
  caller_hold: {say: "别着急，正在为您呼叫邻居。"}
  responder_intro: {say: "紧急求助！"}
  responder_unregistered: {say: "来电号码是"}
  responder_ask: {say: "能马上过去请按一，去不了请按二。"}
"""


@pytest.mark.database
class HeardTests(SynchronousTestCase):
    def setUp(self):
        self.rig = Rig(tempfile.mkdtemp())
        self.sounds = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.sounds, True)
        add_household(self.rig.db, 1)
        self.home = household(1, 10, building="3", unit="2", room="501")
        self.config = load(SPOKEN)
        self.engine = FakeEngine()
        self.speech = make_speech(self.sounds, self.engine)
        self.announcer = Announcer(self.speech, blocking=synchronously)
        self.responder = ResponderHandler(self.rig.coordinator, self.config, clock=self.rig.clock,
                                          announcer=self.announcer)

    def leg(self, alarm_caller, home, keys):
        self.successResultOf(self.rig.coordinator.raise_alarm(alarm_caller, home))
        call = self.rig.ami.calls[-1]
        call.finish("answered")
        return FakeSession({"channel": call.channel + "-0000000a"},
                           variables={"SWITCHBOARD_ALARM": call.variables["SWITCHBOARD_ALARM"],
                                      "SWITCHBOARD_LEG": call.channel_id}, keys=keys)

    def streamed(self, session):
        return [c[1] for c in session.commands if c[0] in ("stream_file", "stream_file_result")]

    def test_the_rendered_announcement_then_the_key(self):
        self.successResultOf(self.announcer.prepare([self.home]))
        rendered = self.announcer.sound_for(self.home)
        runs = len(self.engine.texts)
        session = self.leg("87650001", self.home, keys=["1"])
        self.successResultOf(self.responder(session))
        self.assertEqual(self.streamed(session)[0], rendered)
        self.assertNotIn("vm-theperson", self.streamed(session))
        self.assertEqual(session.named("say_digits"), [])
        self.assertEqual(session.named("wait_for_digit")[0][1], 5000, "asked in the sentence: the key")
        self.assertEqual(len(self.engine.texts), runs, "nothing rendered on the call")

    def test_an_announcement_asterisk_cannot_play_falls_back_to_the_stock_prompts(self):
        # The file is gone, or Asterisk's user may not read it (its group):
        # STREAM FILE answers result=-1 with the caller still there.
        self.successResultOf(self.announcer.prepare([self.home]))
        rendered = self.announcer.sound_for(self.home)
        session = self.leg("87650001", self.home, keys=["1"])
        session.unplayable = {rendered}
        with capturedLogs() as events:
            self.successResultOf(self.responder(session))
        self.assertEqual(self.streamed(session)[:4], [rendered, "beep", "beep", "vm-theperson"])
        self.assertEqual(session.named("say_digits")[0], ("say_digits", "3", "12"))
        self.assertTrue(self.rig.coordinator.alarm(1).confirmed)
        self.assertTrue([e for e in events if "could not play the announcement" in
                         formatEvent(e)])

    def test_not_rendered_yet_stock_prompts_and_digits(self):
        session = self.leg("87650001", self.home, keys=["2"])
        self.successResultOf(self.responder(session))
        self.assertEqual(self.streamed(session)[:3], ["beep", "beep", "vm-theperson"])
        self.assertEqual(session.named("say_digits"), [("say_digits", "3", "12"),
                                                          ("say_digits", "2", "12"),
                                                          ("say_digits", "501", "12")])
        self.assertEqual(self.engine.texts, [], "nothing rendered on the call")

    def test_unregistered_caller_hears_prompts_and_mandarin_digits_rendered_before(self):
        self.successResultOf(self.announcer.prepare_prompts(self.config))
        session = self.leg("13912345678", None, keys=["2"])
        runs = len(self.engine.texts)
        self.successResultOf(self.responder(session))
        heard = self.streamed(session)
        self.assertEqual(heard[0], self.speech.sound_name("紧急求助！"))
        self.assertEqual(heard[1], self.speech.sound_name("来电号码是"))
        self.assertEqual(heard[2:13], [self.speech.sound_name(announcement_digit)
                                       for announcement_digit in "幺三九幺二三四五六七八"])
        self.assertEqual(heard[13], self.speech.sound_name("能马上过去请按一，去不了请按二。"))
        self.assertEqual(session.named("say_digits"), [])
        self.assertEqual(len(self.engine.texts), runs, "nothing rendered on the call")

    def test_the_caller_on_hold_hears_the_rendered_prompt(self):
        self.successResultOf(self.announcer.prepare_prompts(self.config))
        caller = AlarmCallerHandler(FakeIndex(self.home), self.rig.coordinator, self.config, PLAN,
                                    announcer=self.announcer)
        session = FakeSession({"callerid": "87650001", "channel": "PJSIP/87650001-00000001"},
                              variables={"CONFBRIDGE_RESULT": "HANGUP"})
        self.successResultOf(caller(session))
        self.assertIn(self.speech.sound_name("别着急，正在为您呼叫邻居。"), self.streamed(session))
        self.assertNotIn("one-moment-please", self.streamed(session))
