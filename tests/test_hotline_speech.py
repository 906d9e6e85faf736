"""
Hotline prompts written as text: how routing.yaml takes them, the language
of a call, what the handler plays (the rendering, else the recording or the
stock fallback), and the store rendering them once a routing is in force.
The renderer is the real L{Speech} with an engine the test finishes.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest
from twisted.internet import defer, task
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from switchboard.hotline import HotlineHandler
from switchboard.routing.model import HotlinePrompt
from switchboard.routing.store import RoutingStore
from switchboard.speech import Speech
from switchboard.yamlconf import ConfigError
from tests.test_hotline_support import DIALER, PLAN, ROUTING, SHANGHAI, FakeSession, Recorder, \
    Store, routing, seconds
from tests.test_speech_render import FakeEngine, synchronously

MENU_TEXT = "居委会请按1，卫生服务中心请按2。"
SPOKEN = ROUTING.replace(
    "hotline: {numbers: [\"12345\"], greeting: hello, menu: main, operator: operator}",
    "hotline:\n"
    "  numbers: [\"12345\", {number: 0591-87650000, language: en}]\n"
    "  greeting: {say: 您好，这里是榕荫社区服务热线。}\n"
    "  sorry: {say: 暂时无人接听，请稍后再拨。}\n"
    "  menu: main\n"
    "  operator: operator\n",
).replace("    prompt: main-menu\n", f"    prompt: {{say: \"{MENU_TEXT}\"}}\n"
          ).replace("    prompt: sub-menu\n",
                    "    prompt: {sound: sub-menu, say: 物业请按1。}\n"
                    "    invalid_prompt: {say: 没有这个选项。}\n"
                    ).replace("sound: health-closed}",
                              "sound: {say: 已经下班。急症请拨打幺二零。, fallback: vm-nobodyavail}}")


def problems(text):
    with pytest.raises(ConfigError) as e:
        routing(text, "r.yaml")
    return [str(p) for p in e.value.problems]


# routing.yaml


def test_text_prompts_and_their_defaults():
    r = routing(SPOKEN)
    assert r.hotline.greeting == HotlinePrompt(text="您好，这里是榕荫社区服务热线。", voice="zh")
    # The sorry and invalid prompts keep their stock sounds as fallbacks; a menu beeps.
    assert r.hotline.sorry == HotlinePrompt(text="暂时无人接听，请稍后再拨。", voice="zh",
                                            fallback="please-try-call-later")
    assert r.menus["main"].prompt == HotlinePrompt(text=MENU_TEXT, voice="zh", fallback="beep")
    sub = r.menus["sub"]
    assert sub.prompt == HotlinePrompt(sound="sub-menu", text="物业请按1。", voice="zh",
                                       fallback="beep")
    assert sub.invalid_prompt.fallback == "pm-invalid-option"
    assert r.menus["main"].invalid_prompt == HotlinePrompt(sound="pm-invalid-option")
    assert r.destinations["health_closed"].sound.fallback == "vm-nobodyavail"
    assert r.hotline.language == "zh"
    assert r.hotline.language_of("12345") == "zh"
    assert r.hotline.language_of("0591-87650000", "+8659187650000") == "en"
    assert r.menus["main"].prompt.where == "routing.yaml:16:13: menus.main.prompt"
    assert len(r.texts()) == 6


def test_a_folded_text_is_one_line_without_spaces_between_chinese():
    r = routing(ROUTING.replace("    prompt: main-menu\n",
                                "    prompt:\n      say: >-\n        居委会请按1，\n"
                                "        卫生服务中心请按2。 Press 9 for English.\n"))
    assert r.menus["main"].prompt.text == "居委会请按1，卫生服务中心请按2。Press 9 for English."


def test_the_hotline_language_is_the_voice_of_texts_naming_none():
    r = routing(SPOKEN.replace("  menu: main\n", "  menu: main\n  language: en\n")
                .replace("{say: 物业请按1。}", "{say: 物业请按1。, voice: zh}"))
    assert r.hotline.language == "en"
    assert r.menus["main"].prompt.voice == "en"
    assert r.menus["sub"].invalid_prompt.voice == "en"


def test_bad_prompts_are_located():
    text = ROUTING.replace("greeting: hello,", "greeting: {},").replace(
        "    prompt: main-menu\n", "    prompt: {say: 3, voice: 中文, fallback: beep.wav, "
                                  "tone: x}\n").replace("    prompt: sub-menu\n",
                                                         "    prompt: [a]\n")
    assert problems(text) == [
        "r.yaml:1:41: hotline.greeting: a prompt needs a sound or text to say "
        "(a sound name such as hotline/welcome, or text: {say: \"您好，这里是社区服务热线。\"} "
        "(with sound: for a recording that wins, fallback: for the stock sound played until "
        "the text is rendered))",
        "r.yaml:10:19: menus.main.prompt.say: must be text, not the number 3",
        "r.yaml:10:29: menus.main.prompt.voice: '中文' is not a language "
        "(a language code such as zh or en)",
        "r.yaml:10:43: menus.main.prompt.fallback: sound 'beep.wav' has a file extension "
        "(write 'beep': Asterisk picks the format)",
        "r.yaml:10:53: menus.main.prompt.tone: unknown key (allowed: fallback, say, sound, voice)",
        "r.yaml:15:13: menus.sub.prompt: must be a sound name or text to say, not a list "
        "(a sound name such as hotline/welcome, or text: {say: \"您好，这里是社区服务热线。\"} "
        "(with sound: for a recording that wins, fallback: for the stock sound played until "
        "the text is rendered))",
    ]


def test_bad_languages_are_located():
    text = ROUTING.replace('numbers: ["12345"]', 'numbers: [{number: "12345", language: EN}, '
                           '{language: zh}], language: 1')
    assert problems(text) == [
        "r.yaml:1:49: hotline.numbers[0].language: 'EN' is not a language "
        "(a language code such as zh or en)",
        "r.yaml:1:54: hotline.numbers[1]: missing required key 'number'",
        "r.yaml:1:81: hotline.language: must be text, not the number 1",
    ]


# The handler


class HandlerSpeechTests(SynchronousTestCase):
    def setUp(self):
        self.sounds = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.sounds, True)
        self.engine = FakeEngine()
        self.speech = Speech(self.sounds, engine=self.engine, reactor=task.Clock(),
                             blocking=synchronously)
        self.routing = routing(SPOKEN)

    def serve(self, session, speech="mine"):
        clock = task.Clock()
        clock.advance(seconds("2026-10-08 10:00"))
        self.log = Recorder()
        handler = HotlineHandler(Store(self.routing), DIALER, self.log, SHANGHAI, clock=clock,
                                 speech=self.speech if speech == "mine" else speech)
        return handler(session)

    def render(self, text):
        d = self.speech.render(text)
        self.engine.finish()
        return self.successResultOf(d)

    def test_rendered_prompts_are_played(self):
        greeting = self.render("您好，这里是榕荫社区服务热线。")
        menu = self.render(MENU_TEXT)
        closed = self.render("已经下班。急症请拨打幺二零。")
        session = FakeSession(get_data=["1"])
        self.successResultOf(self.serve(session))  # 21:30 would be closed; 10:00 rings
        self.assertEqual(session.commands[:4], [
            ("answer",),
            ("set_variable", "CHANNEL(language)", "zh"),
            ("stream_file", greeting, "0123456789*#"),
            ("get_data", menu, 5000, 1),
        ])
        self.assertTrue(greeting.startswith("switchboard-tts/") and greeting != menu != closed)
        self.assertIn(f'menu main (主菜单): prompt say "{MENU_TEXT}" (zh), else beep',
                      self.log.calls[0].path)

    def test_nothing_rendered_plays_the_fallbacks(self):
        session = FakeSession(get_data=["", "", ""], variables={"DIALSTATUS": ["BUSY"] * 5})
        self.successResultOf(self.serve(session))
        self.assertEqual(session.commands[2], ("get_data", "beep", 5000, 1))  # no greeting
        self.assertEqual(session.named("stream_file")[-1],
                         ("stream_file", "please-try-call-later", ""))

    def test_a_recording_wins_over_the_rendered_text(self):
        self.render("物业请按1。")
        session = FakeSession(get_data=["3", "9", ""])
        self.successResultOf(self.serve(session))
        self.assertEqual({c[1] for c in session.named("get_data")[1:]}, {"sub-menu"})
        # The invalid prompt of menu sub: text only, not rendered: its stock sound.
        self.assertIn(("stream_file", "pm-invalid-option", "0123456789*#"), session.commands)

    def test_without_speech_the_fallbacks_play(self):
        session = FakeSession(get_data=["2"], env={"extension": "87650000"})
        self.successResultOf(self.serve(session, speech=None))
        self.assertEqual(session.commands[1], ("set_variable", "CHANNEL(language)", "en"))
        self.assertEqual(session.commands[2], ("get_data", "beep", 5000, 1))

    def test_a_voicemail_greeting_of_its_own_replaces_asterisks_english_one(self):
        self.routing = routing(SPOKEN.replace(
            "  voicemail: {type: voicemail, label: 留言箱, mailbox: 100@switchboard}",
            "  voicemail: {type: voicemail, label: 留言箱, mailbox: 100@switchboard,\n"
            "              greeting: {say: 现在没有人接听，请在提示音后留言。}}"))
        greeting = self.render("现在没有人接听，请在提示音后留言。")
        session = FakeSession(get_data=["1"], variables={"DIALSTATUS": ["BUSY"] * 5})
        self.successResultOf(self.serve(session))
        vm = [i for i, c in enumerate(session.commands) if c[:2] == ("exec_", "VoiceMail")]
        assert vm, session.commands
        # The community's greeting, then VoiceMail with only its beep (s).
        self.assertEqual(session.commands[vm[0] - 1], ("stream_file", greeting, ""))
        self.assertEqual(session.commands[vm[0]], ("exec_", "VoiceMail", "100@switchboard", "s"))

    def test_without_a_greeting_voicemail_plays_its_own(self):
        session = FakeSession(get_data=["1"], variables={"DIALSTATUS": ["BUSY"] * 5})
        self.successResultOf(self.serve(session))
        self.assertIn(("exec_", "VoiceMail", "100@switchboard", "u"), session.commands)

    def test_a_broken_lookup_plays_the_fallback(self):
        class Broken:
            def play_list(self, prompt):
                raise OSError("sounds folder gone")

        session = FakeSession(get_data=["1"])
        self.successResultOf(self.serve(session, speech=Broken()))
        self.assertEqual(session.commands[2], ("get_data", "beep", 5000, 1))
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 2)  # greeting, menu


# The store


def finish(engine, fail_last=False):
    """Finish every render as the engine is asked for it (a few run at a time)."""
    done = 0
    while done < len(engine.calls):
        if not engine.calls[done][-1].called:
            if fail_last and done == 5:
                engine.fail(done)
            else:
                engine.finish(done)
        done += 1


class StoreRenderingTests(SynchronousTestCase):
    def setUp(self):
        self.folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.folder, True)
        self.path = os.path.join(self.folder, "routing.yaml")
        with open(self.path, "w", encoding="utf-8") as f:
            f.write(SPOKEN)
        self.engine = FakeEngine()
        self.speech = Speech(os.path.join(self.folder, "sounds"), engine=self.engine,
                             reactor=task.Clock(), blocking=synchronously)

    def test_a_load_swaps_in_at_once_then_renders_every_text_once(self):
        store = RoutingStore(self.path, PLAN, speech=self.speech)
        with capturedLogs() as events:
            routing = store.load()
            self.assertIs(store.current, routing)  # in force before any rendering
            self.assertNoResult(store.rendering)
            finish(self.engine, fail_last=True)
            self.assertEqual(len(self.engine.calls), 6)  # each distinct text once
            results = self.successResultOf(store.rendering)
        self.assertEqual(len(results), 6)
        menu = routing.menus["main"].prompt
        self.assertEqual(self.speech.play_list(menu), [results[(MENU_TEXT, "zh")]])
        lines = [formatEvent(e) for e in events]
        self.assertIn(f"routing {self.path}: 5 of 6 text prompt(s) rendered", lines)
        warned = [line for line in lines if "text not rendered" in line]
        self.assertEqual(len(warned), 1)
        self.assertRegex(warned[0], rf"^routing {self.path}: {self.path}:\d+:\d+: \S+: text "
                                    r"not rendered \(espeak-ng failed \(exit 1\): no voice\); "
                                    r"callers hear \S+$")

    def test_without_an_engine_the_routing_still_serves(self):
        speech = Speech(os.path.join(self.folder, "sounds"), engine=FakeEngine(version=None),
                        reactor=task.Clock(), blocking=synchronously)
        store = RoutingStore(self.path, PLAN, speech=speech)
        with capturedLogs() as events:
            store.load()
        self.assertIsNotNone(store.current)
        self.assertEqual(len(self.successResultOf(store.rendering)), 6)
        lines = [formatEvent(e) for e in events]
        self.assertIn(f"routing {self.path}: 0 of 6 text prompt(s) rendered", lines)
        self.assertTrue(any("menus.main.prompt: text not rendered (cannot speak text: "
                            "fake-engine is not installed); callers hear beep" in line
                            for line in lines), lines)

    def test_a_reload_renders_only_what_changed(self):
        store = RoutingStore(self.path, PLAN, speech=self.speech)
        store.load()
        finish(self.engine)
        with open(self.path, "w", encoding="utf-8") as f:
            f.write(SPOKEN.replace(MENU_TEXT, "居委会请按1。"))
        store.load()
        finish(self.engine)
        self.assertEqual(len(self.engine.calls), 7)
        self.assertEqual(len(self.successResultOf(store.rendering)), 6)


# switchboard.yaml


def test_speech_settings(tmp_path):
    from switchboard import settings
    path = tmp_path / "s.yaml"
    path.write_text("speech: {sounds_dir: sounds, subdir: tts, voice: en, rate: 16000}\n")
    got = settings.load(str(path), environ={}).speech
    assert got == settings.SpeechSettings(sounds_dir=str(tmp_path / "sounds"), subdir="tts",
                                          voice="en", rate=16000)
    assert settings.load(str(tmp_path / "s.yaml"), environ={}).speech.subdir == "tts"
    path.write_text("speech: {rate: 44100, subdir: a/b, colour: red}\n")
    with pytest.raises(ConfigError) as e:
        settings.load(str(path), environ={})
    assert [str(p).split(": ", 1)[1] for p in e.value.problems] == [
        "speech.colour: unknown key (allowed: rate, sounds_dir, subdir, voice)",
        "speech.rate: 44100 Hz is not played as signed linear (8000 or 16000)",
        "speech.subdir: 'a/b' is not one folder name (e.g. switchboard-tts)",
    ]
