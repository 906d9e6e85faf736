"""The speech renderer: cache, atomic files, one render per text, problems, the engine."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import wave

from twisted.internet import defer, reactor, task
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from switchboard.speech import Prompt, Speech, SpeechUnavailable
from switchboard.speech.engine import VOICES, EngineError, EspeakEngine, run_child
from tests.test_routing_parsing import SpawnWithClock

ANNOUNCEMENT = "紧急求助！华林花园三号楼一单元幺零幺室，陈梅需要帮助。能马上过去请按1，去不了请按2。"


def synchronously(f, *args):
    """Run a blocking step at once (fsync, rename): tests need no threads."""
    return defer.maybeDeferred(f, *args)


class FakeEngine:
    """An engine whose renders the test finishes: writes part, then all, or fails."""

    name = "fake"
    voices = VOICES

    def __init__(self, version="fake 1.0"):
        self.version = version
        self.missing = None if version else "fake-engine is not installed"
        self.calls = []  # (text, voice key, path, rate, container, Deferred)

    def probe(self):
        return self.version

    def render(self, text, voice, path, *, rate, container="raw"):
        d = defer.Deferred()
        with open(path, "wb") as f:
            f.write(b"\x01\x00" * 10)  # a partial file, as a real engine leaves midway
        self.calls.append((text, voice.key, path, rate, container, d))
        return d

    def finish(self, index=-1, size=1600):
        _, _, path, _, _, d = self.calls[index]
        with open(path, "wb") as f:
            f.write(b"\x00\x01" * size)
        d.callback(path)

    def fail(self, index=-1, why="espeak-ng failed (exit 1): no voice"):
        self.calls[index][-1].errback(EngineError(why))


class SpeechTests(TestCase):
    def setUp(self):
        self.sounds = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.sounds, True)
        self.engine = FakeEngine()
        self.speech = self.make()

    def make(self, engine=None, **kwargs):
        return Speech(self.sounds, engine=engine or self.engine, reactor=task.Clock(),
                      blocking=synchronously, **kwargs)

    def folder(self):
        path = os.path.join(self.sounds, "switchboard-tts")
        return sorted(os.listdir(path)) if os.path.isdir(path) else []

    def test_miss_renders_once_then_hits(self):
        self.assertIsNone(self.speech.sound_name(ANNOUNCEMENT))
        d = self.speech.render(ANNOUNCEMENT)
        self.assertEqual(len(self.engine.calls), 1)
        text, voice, _, rate, container, _ = self.engine.calls[0]
        self.assertEqual((voice, rate, container), ("zh", 8000, "raw"))
        self.assertIn("一", text)  # 请按1 is said as 请按一 by the Mandarin voice
        self.engine.finish()
        name = self.successResultOf(d)
        self.assertRegex(name, r"^switchboard-tts/[0-9a-f]{32}$")
        self.assertEqual(self.folder(), [name.split("/")[1] + ".sln"])
        self.assertEqual(self.speech.sound_name(ANNOUNCEMENT), name)
        # A hit, here and in a new Speech on the same folder (a restart): no engine.
        self.assertEqual(self.successResultOf(self.speech.render(ANNOUNCEMENT)), name)
        again = self.make()
        self.assertEqual(again.sound_name(ANNOUNCEMENT), name)
        self.assertEqual(self.successResultOf(again.render(ANNOUNCEMENT)), name)
        self.assertEqual(len(self.engine.calls), 1)

    def test_the_call_path_checks_and_hashes_a_text_once_but_looks_for_its_file_each_time(self):
        import switchboard.speech.render as render
        checked = []
        real = render.said
        self.patch(render, "said", lambda text, v: checked.append(text) or real(text, v))
        for _ in range(3):
            self.assertIsNone(self.speech.sound_name(ANNOUNCEMENT))   # not rendered yet
        self.assertIsNone(self.speech.sound_name("☎ 请按一"))          # cannot be said
        self.assertEqual(checked, [ANNOUNCEMENT])
        d = self.speech.render(ANNOUNCEMENT)
        self.engine.finish()
        name = self.successResultOf(d)
        self.assertEqual(self.speech.sound_name(ANNOUNCEMENT), name)  # the file, seen now
        os.unlink(self.speech.path(ANNOUNCEMENT))
        self.assertIsNone(self.speech.sound_name(ANNOUNCEMENT))       # and gone again

    def test_file_mode_is_a_parameter(self):
        d = self.speech.render(ANNOUNCEMENT)
        self.engine.finish()
        path = os.path.join(self.sounds, self.successResultOf(d) + ".sln")
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o640)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) & 0o007, 0)
        menus = self.make(mode=0o644)
        d = menus.render("您好，这里是华林社区服务热线。")
        self.engine.finish()
        path = os.path.join(self.sounds, self.successResultOf(d) + ".sln")
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o644)

    def test_a_private_folder_it_makes_is_said_to_need_asterisks_group(self):
        with self.assertLogs("switchboard.speech.render", "WARNING") as logged:
            d = self.speech.render(ANNOUNCEMENT)
            self.engine.finish()
            self.successResultOf(d)
        folder = os.path.join(self.sounds, "switchboard-tts")
        [line] = logged.output
        self.assertIn(f"made {folder} (mode 750", line)
        self.assertIn(f"chgrp asterisk {folder}; chmod 2750 {folder}", line)
        # Menus only (0644): a folder anyone may enter; nothing to say.
        shutil.rmtree(folder)
        with self.assertNoLogs("switchboard.speech.render", "WARNING"):
            d = self.make(mode=0o644).render("您好，这里是华林社区服务热线。")
            self.engine.finish()
            self.successResultOf(d)

    def test_group_for_asterisk(self):
        gid = 101 if os.geteuid() == 0 else os.getgid()  # root may give any group
        speech = self.make(group=gid)
        d = speech.render(ANNOUNCEMENT)
        self.engine.finish()
        path = os.path.join(self.sounds, self.successResultOf(d) + ".sln")
        self.assertEqual(os.stat(path).st_gid, gid)
        folder = os.stat(os.path.dirname(path))
        self.assertEqual((folder.st_gid, stat.S_IMODE(folder.st_mode)), (gid, 0o2750))
        with self.assertRaises(ValueError):
            self.make(group="no-such-group-here")

    def test_no_partial_file_is_ever_visible(self):
        d = self.speech.render(ANNOUNCEMENT)
        final = self.speech.path(ANNOUNCEMENT)
        # Midway: the engine has written part of a temporary file only.
        self.assertFalse(os.path.exists(final))
        self.assertIsNone(self.speech.sound_name(ANNOUNCEMENT))
        [partial] = self.folder()
        self.assertTrue(partial.startswith(".") and partial.endswith(".tmp"), partial)
        self.assertEqual(os.path.dirname(self.engine.calls[0][2]), os.path.dirname(final))
        self.engine.finish(size=4000)
        self.successResultOf(d)
        self.assertEqual(os.path.getsize(final), 8000)
        self.assertEqual(self.folder(), [os.path.basename(final)])

    def test_failed_render_leaves_nothing(self):
        d = self.speech.render(ANNOUNCEMENT)
        self.engine.fail()
        failure = self.failureResultOf(d, EngineError)
        self.assertIn("no voice", failure.getErrorMessage())
        self.assertEqual(self.folder(), [])
        self.assertIsNone(self.speech.sound_name(ANNOUNCEMENT))
        # Not remembered as failed: asked again, it is rendered again.
        d = self.speech.render(ANNOUNCEMENT)
        self.engine.finish()
        self.assertIsNotNone(self.successResultOf(d))
        self.assertEqual(len(self.engine.calls), 2)

    def test_same_text_at_once_renders_once(self):
        first = self.speech.render(ANNOUNCEMENT)
        second = self.speech.render(ANNOUNCEMENT, "zh")
        other = self.speech.render("您好")
        self.assertEqual(len(self.engine.calls), 2)
        self.engine.finish(0)
        self.assertEqual(self.successResultOf(first), self.successResultOf(second))
        self.engine.finish(1)
        self.assertNotEqual(self.successResultOf(other), self.successResultOf(first))

    def test_same_text_at_once_fails_for_all(self):
        first = self.speech.render(ANNOUNCEMENT)
        second = self.speech.render(ANNOUNCEMENT)
        self.engine.fail()
        self.failureResultOf(first, EngineError)
        self.failureResultOf(second, EngineError)

    def test_renders_a_few_at_a_time(self):
        ds = [self.speech.render(f"第{i}条通知") for i in range(5)]
        self.assertEqual(len(self.engine.calls), 2)  # concurrency=2
        self.engine.finish(0)
        self.assertEqual(len(self.engine.calls), 3)
        for i in range(1, 5):
            self.engine.finish(i)
        self.assertEqual(len({self.successResultOf(d) for d in ds}), 5)

    def test_name_depends_on_text_voice_engine_version_and_rate(self):
        base = self.speech.path(ANNOUNCEMENT)
        self.assertEqual(self.speech.path("  " + ANNOUNCEMENT + "\n"), base)
        self.assertNotEqual(self.speech.path(ANNOUNCEMENT + "。"), base)
        self.assertNotEqual(self.speech.path(ANNOUNCEMENT, "yue"), base)
        self.assertNotEqual(self.make(engine=FakeEngine("fake 1.1")).path(ANNOUNCEMENT), base)
        wide = self.make(rate=16000)
        self.assertNotEqual(wide.path(ANNOUNCEMENT)[:-6], base[:-4])
        self.assertTrue(wide.path(ANNOUNCEMENT).endswith(".sln16"))
        # The spoken form counts: "1" and "一" are said alike, and share a file.
        self.assertEqual(self.speech.path("请按1"), self.speech.path("请按一"))

    def test_engine_missing(self):
        speech = self.make(engine=FakeEngine(version=None))
        self.assertFalse(speech.available)
        self.assertIn("not installed", speech.unavailable_reason)
        failure = self.failureResultOf(speech.render(ANNOUNCEMENT), SpeechUnavailable)
        self.assertIn("fake-engine is not installed", failure.getErrorMessage())
        self.failureResultOf(speech.render_to(ANNOUNCEMENT, os.path.join(self.sounds, "a.wav")),
                             SpeechUnavailable)
        self.assertIsNone(speech.sound_name(ANNOUNCEMENT))
        self.assertEqual(speech.play_list(Prompt(text=ANNOUNCEMENT)), [])
        self.assertEqual(speech.play_list(Prompt(sound="vm-enter-num-to-call",
                                                 text=ANNOUNCEMENT)), ["vm-enter-num-to-call"])
        # problems() does not need the engine: check works without it.
        self.assertEqual(speech.problems(ANNOUNCEMENT), [])

    def test_play_list(self):
        self.assertEqual(self.speech.play_list(Prompt(sound="hello-world", text="你好")),
                         ["hello-world"])
        self.assertEqual(self.speech.play_list(Prompt(text="你好")), [])  # not rendered yet
        self.assertEqual(self.speech.play_list(Prompt()), [])
        d = self.speech.render("你好", "zh")
        self.engine.finish()
        self.assertEqual(self.speech.play_list(Prompt(text="你好", voice="zh")),
                         [self.successResultOf(d)])
        self.assertEqual(self.speech.play_list(Prompt(text="你好", voice="yue")), [])

    def test_problems(self):
        p = self.speech.problems
        self.assertEqual(p(ANNOUNCEMENT), [])
        self.assertEqual(p("您好，请按#号键（或*号键）；Wi-Fi密码：abc 123。\n再见！"), [])
        self.assertEqual(p("Hello, press 1.", "en"), [])
        [problem] = p("请按1\x07")
        self.assertEqual(problem, "voice 'zh' cannot speak '\\x07' (U+0007) at character 4 (it "
                                  "speaks Chinese characters, letters, digits and common punctuation)")
        [problem] = p("联系☎：110☎")  # each character named once, at its first place
        self.assertIn("“☎” (U+260E BLACK TELEPHONE) at character 3 (it speaks", problem)
        [problem] = p("안녕하세요, 감사합니다")  # one sentence, not one per character
        self.assertIn("at character 5 and 5 more", problem)
        self.assertTrue(p("50%"))  # the Mandarin voice says % in English
        [problem] = p("你好", "en")
        self.assertIn("voice 'en' cannot speak “你”", problem)
        [problem] = p("你好", "fr")
        self.assertEqual(problem, "unknown voice 'fr': known voices are en, yue, zh")
        self.assertEqual(p("  "), ["the text to say is empty"])
        self.assertEqual(p("好" * 240), [])
        [problem] = p("好" * 241)
        self.assertIn("241 characters long, more than 240", problem)
        self.assertEqual(self.speech.problems_at("你好\x00", "zh")[0][0], 2)

    def test_problems_refuse_render(self):
        failure = self.failureResultOf(self.speech.render("你好☎"), ValueError)
        self.assertIn("U+260E", failure.getErrorMessage())
        self.assertEqual(self.engine.calls, [])

    def test_render_all(self):
        d = self.speech.render_all([(ANNOUNCEMENT, None), ("你好", "zh"), ("你好☎", None),
                                    (ANNOUNCEMENT, None)])
        self.assertEqual(len(self.engine.calls), 2)
        self.engine.finish(0)
        self.engine.fail(1)
        results = self.successResultOf(d)
        self.assertEqual(set(results), {(ANNOUNCEMENT, None), ("你好", "zh"), ("你好☎", None)})
        self.assertEqual(results[(ANNOUNCEMENT, None)], self.speech.sound_name(ANNOUNCEMENT))
        self.assertIsInstance(results[("你好", "zh")], Failure)
        self.assertTrue(results[("你好☎", None)].check(ValueError))

    def test_render_to_a_wav_file(self):
        target = os.path.join(self.sounds, "listen.wav")
        d = self.speech.render_to(ANNOUNCEMENT, target)
        self.assertEqual(self.engine.calls[0][4], "wav")
        self.assertFalse(os.path.exists(target))
        self.engine.finish()
        self.assertEqual(self.successResultOf(d), target)
        self.assertTrue(os.path.exists(target))
        self.assertEqual(self.folder(), [])  # not cached among Asterisk's sounds

    def test_render_to_a_missing_folder(self):
        failure = self.failureResultOf(self.speech.render_to("你好", "/nonexistent/x.wav"),
                                       ValueError)
        self.assertIn("cannot write /nonexistent/x.wav", failure.getErrorMessage())
        self.assertEqual(self.engine.calls, [])

    def test_bad_construction(self):
        with self.assertRaises(ValueError):
            self.make(rate=11025)
        with self.assertRaises(ValueError):
            self.make(default_voice="fr")
        with self.assertRaises(ValueError):
            self.make(subdir="../etc")


class ChildTests(TestCase):
    """run_child and the engine's probe, with stand-in programs."""

    def setUp(self):
        self.folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.folder, True)

    def script(self, name, body):
        """A shell script standing in for a program."""
        path = os.path.join(self.folder, name)
        with open(path, "w") as f:
            f.write(f"#!/bin/sh\n{body}\n")
        os.chmod(path, 0o700)
        return path

    @defer.inlineCallbacks
    def test_output_and_exit_code(self):
        out, err, code = yield run_child(reactor, [self.script("c", "cat; echo oops >&2; exit 3")],
                                         stdin="你好".encode())
        self.assertEqual((out.decode(), err, code), ("你好", b"oops\n", 3))

    @defer.inlineCallbacks
    def test_hung_child_is_killed(self):
        spawner = SpawnWithClock()
        d = run_child(spawner, [self.script("hang", "exec sleep 600")], timeout=30)
        spawner.clock.advance(30)
        with self.assertRaises(EngineError) as caught:
            yield d
        self.assertIn("took longer than 30 s", str(caught.exception))

    def test_missing_program(self):
        engine = EspeakEngine(reactor, espeak=os.path.join(self.folder, "espeak-ng"))
        self.assertIsNone(engine.probe())
        self.assertIn("espeak-ng is not installed (Debian package espeak-ng", engine.missing)
        speech = Speech(self.folder, engine=engine)
        self.assertFalse(speech.available)
        self.assertIn("./dev setup", self.failureResultOf(speech.render("你好"),
                                                          SpeechUnavailable).getErrorMessage())

    @defer.inlineCallbacks
    def test_engine_that_fails_leaves_nothing(self):
        espeak = self.script("espeak-ng", 'case "$1" in --version) echo "eSpeak NG 9.9";; '
                                          '*) echo "voice not found" >&2; exit 1;; esac')
        engine = EspeakEngine(reactor, espeak=espeak)
        if engine.probe() is None:  # sox missing: the real-engine test reports it
            self.skipTest(engine.missing)
        speech = Speech(self.folder, engine=engine, subdir="tts")
        with self.assertRaises(EngineError) as caught:
            yield speech.render("你好")
        self.assertIn("espeak-ng failed (exit 1): voice not found", str(caught.exception))
        self.assertEqual(os.listdir(os.path.join(self.folder, "tts")), [])


def require_engine():
    """The real engine, or a failure under CI (SWITCHBOARD_REQUIRE_SPEECH=1), else a skip."""
    engine = EspeakEngine(reactor)
    if engine.probe() is None:
        message = f"SPEECH ENGINE UNAVAILABLE: {engine.missing}"
        if os.environ.get("SWITCHBOARD_REQUIRE_SPEECH") == "1":
            raise AssertionError(message + " (SWITCHBOARD_REQUIRE_SPEECH=1)")
        raise __import__("unittest").SkipTest(message)
    return engine


class RealEngineTests(TestCase):
    """espeak-ng and sox as installed by ./dev setup."""

    def setUp(self):
        self.folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.folder, True)
        self.speech = Speech(self.folder, engine=require_engine())

    @defer.inlineCallbacks
    def test_announcement_is_mandarin_audio_of_plausible_length(self):
        self.assertTrue(self.speech.available)
        name = yield self.speech.render(ANNOUNCEMENT)
        path = os.path.join(self.folder, name + ".sln")
        size = os.path.getsize(path)
        seconds = size / 2 / 8000  # 16-bit mono at 8 kHz
        # 43 characters at about 3.2 a second: 13.5 s measured; a voice reading
        # tone digits in English, or silence, would be far off.
        self.assertTrue(9 < seconds < 20, seconds)
        with open(path, "rb") as f:
            samples = memoryview(f.read()).cast("h")
        loud = sum(1 for s in samples[::8] if abs(s) > 1000)
        self.assertGreater(loud / (len(samples) / 8), 0.2)  # speech, not silence
        self.assertLess(max(abs(s) for s in samples), 32767)  # not clipped (-3 dBFS)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o640)
        self.assertEqual(self.speech.sound_name(ANNOUNCEMENT), name)

    @defer.inlineCallbacks
    def test_wav_for_staff(self):
        target = os.path.join(self.folder, "say.wav")
        yield self.speech.render_to("您好，这里是华林社区服务热线。", target)
        with wave.open(target) as w:
            self.assertEqual((w.getnchannels(), w.getsampwidth(), w.getframerate()), (1, 2, 8000))
            self.assertGreater(w.getnframes() / 8000, 2)

    def test_version_is_probed(self):
        self.assertRegex(self.speech.version, r"espeak-ng \d+\.\d+.*; sox")
