"""
Text to sound files Asterisk plays.

A rendering is named by a hash of what makes its sound: the text, the
engine's voice, the engine's name and version, and the sample rate. It is
written where Asterisk reads sounds (C{<sounds_dir>/<subdir>/<hash>.sln}),
through a temporary file in the same folder that is fsynced and renamed, so
Asterisk never sees a partial file and a failed render leaves nothing. A
file already there is a cache hit: no engine runs. Rendering happens in
child processes (see L{switchboard.speech.engine}), a few at a time, never
on the reactor and never while a caller waits: the call path only asks
L{Speech.sound_name} / L{Speech.play_list}, which look and never render.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import unicodedata
import uuid

from twisted.internet import defer, threads
from twisted.python.failure import Failure

from switchboard.speech import chinese
from switchboard.speech.prompt import Prompt

log = logging.getLogger(__name__)

# A prompt is heard on the phone, start to end, before a key is pressed: past a
# minute or so a listener stops following. The Mandarin voice speaks about 3.2
# characters a second (espeak-ng -s 150), so 240 characters is about 75 seconds
# of speech (~1.2 MB at 8 kHz): longer text is almost surely a mistake, and the
# limit also bounds what one render costs.
MAX_CHARS = 240
# Prompts whose keys a Speech keeps for the call path (the prompts of the
# configuration are a few dozen; a new text past this starts it afresh).
_KEYS_KEPT = 1024

# What a voice speaks. Han: CJK ideographs (basic block and extension A),
# ASCII letters and digits, full-width digits and letters, common Chinese and
# ASCII punctuation and spaces. Latin: ASCII letters, digits and punctuation.
_PUNCTUATION = {"han": set(" ,.!?;:'\"()-&+#*"), "latin": set(" ,.!?;:'\"()-/%&+#*@")}
_PUNCTUATION_CJK = set("，。！？、；：“”‘’（）《》〈〉【】「」『』—–…·～　")
_WHITESPACE = set("\t\n\r")


class SpeechUnavailable(Exception):
    """No speech engine: it is not installed or does not run (the message says which)."""


def _allowed(ch: str, script: str) -> bool:
    if ch.isascii():
        return ch.isalnum() or ch in _PUNCTUATION[script] or ch in _WHITESPACE
    if script != "han":
        return False
    o = ord(ch)
    return (0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or ch in _PUNCTUATION_CJK
            or 0xFF10 <= o <= 0xFF19 or 0xFF21 <= o <= 0xFF3A or 0xFF41 <= o <= 0xFF5A
            or ch in "！，．：；？（）＃＊＆＋－")


def _describe(ch: str) -> str:
    name = unicodedata.name(ch, "")
    shown = repr(ch) if not ch.isprintable() else f"“{ch}”"
    return f"{shown} (U+{ord(ch):04X}{' ' + name if name else ''})"


def normalize(text: str) -> str:
    """The text as rendered and hashed: NFC, surrounding whitespace removed."""
    return unicodedata.normalize("NFC", text).strip()


def said(text: str, voice) -> str:
    """What the engine is given for C{text}: normalized, numbers read out for Mandarin."""
    text = normalize(text)
    return chinese.spoken(text) if voice.mandarin else text


class Speech:
    """
    Text to sound files Asterisk plays; rendered off the reactor, cached by a
    hash of (text, voice, engine name and version, sample rate), written
    atomically under C{<sounds_dir>/<subdir>/}.

    @param mode: the rendered files' mode. 0640 by default: announcements
        name residents and where they live, so the files are not world
        readable; give Asterisk's group read access to C{<subdir>} (e.g.
        C{chgrp asterisk} + setgid on the folder, or run switchboard in
        Asterisk's group). 0644 is fine for a server that renders only
        menus.
    @param group: a group id or name to give the folder (setgid) and the
        files, so that Asterisk (in that group) reads them at mode 0640; None
        leaves the group as the folder gives it. Changing a file's group to
        one the server is not in needs root.
    @param concurrency: engine runs at once (each is a child process).
    @param blocking: how to run a blocking function (fsync, rename) off the
        reactor; C{deferToThread} by default, a synchronous call in tests.
    """

    @classmethod
    def from_settings(cls, described, *, reactor=None, engine=None, mode: int = 0o640):
        """The renderer of switchboard.yaml's C{speech:} (a L{SpeechSettings})."""
        return cls(described.sounds_dir, subdir=described.subdir,
                   default_voice=described.voice, rate=described.rate, engine=engine,
                   reactor=reactor, mode=mode)

    @classmethod
    def usable(cls, described, *, reactor=None, mode: int = 0o640, log=None, instead=""):
        """
        L{from_settings} when its engine works, else None, logged as an error
        saying what callers get C{instead} (a feature's fallback).
        """
        try:
            speech = cls.from_settings(described, reactor=reactor, mode=mode)
        except Exception as e:
            if log is not None:
                log.error("speech: {e}; {instead}", e=e, instead=instead)
            return None
        return speech if speech.available else None

    def __init__(self, sounds_dir: str, *, subdir: str = "switchboard-tts",
                 default_voice: str = "zh", rate: int = 8000, engine=None, reactor=None,
                 mode: int = 0o640, group: int | str | None = None, concurrency: int = 2,
                 blocking=None):
        from switchboard.speech.engine import RATES, EspeakEngine
        if reactor is None:
            from twisted.internet import reactor
        if rate not in RATES:
            raise ValueError(f"rate {rate} Hz: Asterisk plays signed linear at "
                             f"{', '.join(str(r) for r in RATES)} Hz")
        if "/" in subdir.strip("/") or subdir in ("", ".", ".."):
            raise ValueError(f"subdir must be one folder name, not {subdir!r}")
        self.reactor = reactor
        self.sounds_dir = sounds_dir
        self.subdir = subdir.strip("/")
        self.folder = os.path.join(sounds_dir, self.subdir)
        self.rate = rate
        self.extension = RATES[rate]
        self.mode = mode
        if isinstance(group, str):
            import grp
            try:
                group = grp.getgrnam(group).gr_gid
            except KeyError:
                raise ValueError(f"unknown group {group!r} for the speech files") from None
        self.gid = group
        self.engine = engine if engine is not None else EspeakEngine(reactor)
        if default_voice not in self.engine.voices:
            raise ValueError(f"unknown default voice {default_voice!r}: "
                             f"known voices are {', '.join(sorted(self.engine.voices))}")
        self.default_voice = default_voice
        self.version = self.engine.probe()
        self._keys: dict = {}   # (text, voice) -> key, or None when it cannot be said
        self._limit = defer.DeferredSemaphore(concurrency)
        self._running: dict[str, list[defer.Deferred]] = {}
        self._blocking = blocking or (lambda f, *a: threads.deferToThreadPool(
            reactor, reactor.getThreadPool(), f, *a))
        self.engine_runs = 0  # how many renders reached the engine (tests, the benchmark)

    # -- what can be said ------------------------------------------------

    @property
    def available(self) -> bool:
        """The engine is installed and works (probed once, at construction)."""
        return self.version is not None

    @property
    def unavailable_reason(self) -> str:
        """Why L{available} is False, for staff ("" when it is True)."""
        if self.available:
            return ""
        return getattr(self.engine, "missing", None) or f"{self.engine.name} is not installed"

    def voices(self) -> list[str]:
        """The voice keys a prompt may name."""
        return sorted(self.engine.voices)

    def problems_at(self, text: str, voice: str | None = None) -> list[tuple[int | None, str]]:
        """
        L{problems}, each with the 0-based offset in C{text} it is about (None
        for the whole text), so a caller can point at file:line:column.
        """
        key = voice or self.default_voice
        found: list[tuple[int | None, str]] = []
        v = self.engine.voices.get(key)
        if v is None:
            found.append((None, f"unknown voice {key!r}: known voices are "
                                f"{', '.join(self.voices())}"))
        if not isinstance(text, str) or not normalize(text):
            found.append((None, "the text to say is empty"))
            return found
        if len(normalize(text)) > MAX_CHARS:
            found.append((None, f"the text to say is {len(normalize(text))} characters long, "
                                f"more than {MAX_CHARS} (about a minute of speech): "
                                f"split it or shorten it"))
        if v is not None:
            bad: dict[str, int] = {}  # each character once, at its first place
            for i, ch in enumerate(text):
                if ch not in bad and not _allowed(ch, v.script):
                    bad[ch] = i
            if bad:
                shown = [f"{_describe(ch)} at character {i + 1}" for ch, i in list(bad.items())[:5]]
                more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
                what = ("Chinese characters, letters, digits and common punctuation"
                        if v.script == "han" else "letters, digits and common punctuation")
                found.append((min(bad.values()),
                              f"voice {key!r} cannot speak {', '.join(shown)}{more} "
                              f"(it speaks {what})"))
        return found

    def problems(self, text: str, voice: str | None = None) -> list[str]:
        """
        Why C{text} cannot be rendered (unsupported characters, too long for
        a prompt, unknown voice), each a sentence for staff; [] when it can.
        Pure, fast.
        """
        return [message for _, message in self.problems_at(text, voice)]

    # -- names and files -------------------------------------------------

    def _key(self, text: str, voice: str | None) -> str:
        v = self.engine.voices[voice or self.default_voice]
        material = json.dumps([self.engine.name, self.version, v.engine_voice, list(v.args),
                               self.rate, said(text, v)], ensure_ascii=False)
        return hashlib.sha256(material.encode("utf-8")).hexdigest()[:32]

    def path(self, text: str, voice: str | None = None) -> str:
        """Where the rendering of C{text} is (or will be) on disk."""
        return os.path.join(self.folder, f"{self._key(text, voice)}.{self.extension}")

    def sound_name(self, text: str, voice: str | None = None) -> str | None:
        """
        The sound name to play (e.g. 'switchboard-tts/3f2a...') if already
        rendered, else None. Never blocks, never renders: safe on a call path.
        """
        if not self.available or not isinstance(text, str):
            return None
        # A call asks for the same few prompts again and again: their key
        # (the text checked, read aloud and hashed, ~35 us) is kept; the
        # file is looked for each time (a rendering may come, or go).
        try:
            key = self._keys[(text, voice)]
        except KeyError:
            key = None if self.problems(text, voice) else self._key(text, voice)
            if len(self._keys) >= _KEYS_KEPT:
                self._keys.clear()
            self._keys[(text, voice)] = key
        if key is not None and os.path.exists(os.path.join(self.folder,
                                                           f"{key}.{self.extension}")):
            return f"{self.subdir}/{key}"
        return None

    def play_list(self, prompt: Prompt) -> list[str]:
        """
        What to play for C{prompt} now: [its recording] when given, else
        [rendered sound name] when rendered, else [] (the caller falls back
        to stock sounds).
        """
        if prompt.sound:
            return [prompt.sound]
        if prompt.text:
            name = self.sound_name(prompt.text, prompt.voice)
            if name:
                return [name]
        return []

    # -- rendering -------------------------------------------------------

    def _refuse(self, text, voice) -> Failure | None:
        problems = self.problems(text, voice)
        if problems:
            return Failure(ValueError("; ".join(problems)))
        if not self.available:
            return Failure(SpeechUnavailable(f"cannot speak text: {self.unavailable_reason}"))
        return None

    def render(self, text: str, voice: str | None = None) -> defer.Deferred:
        """
        Render if not cached (in a child process, never on the reactor); fire
        with the sound name. Errback with L{SpeechUnavailable} when no engine,
        ValueError for L{problems}. The same text asked for again while it
        renders is rendered once: every caller gets the same name.
        """
        refused = self._refuse(text, voice)
        if refused is not None:
            return defer.fail(refused)
        key = self._key(text, voice)
        name = f"{self.subdir}/{key}"
        final = os.path.join(self.folder, f"{key}.{self.extension}")
        if os.path.exists(final):
            return defer.succeed(name)
        waiting = self._running.get(key)
        mine = defer.Deferred()
        if waiting is not None:
            waiting.append(mine)
            return mine
        self._running[key] = waiting = [mine]

        def settle(result):
            del self._running[key]
            for d in waiting:
                d.callback(result)
            return None

        d = self._limit.run(self._produce, text, voice, final, "raw", self.mode)
        d.addCallback(lambda _: name)
        d.addBoth(settle)
        return mine

    def render_to(self, text: str, path: str, voice: str | None = None) -> defer.Deferred:
        """
        Render to a WAV file at C{path} (16-bit mono at this Speech's rate),
        for C{switchboard say} and the demo; fires with C{path}. Not cached.
        """
        refused = self._refuse(text, voice)
        if refused is not None:
            return defer.fail(refused)
        path = os.path.abspath(path)
        folder = os.path.dirname(path)
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK | os.X_OK):
            return defer.fail(ValueError(f"cannot write {path}: {folder} is not a folder "
                                         f"this user may write to"))
        return self._limit.run(self._produce, text, voice, path, "wav", None)

    def render_all(self, texts) -> defer.Deferred:
        """
        Render every (text, voice) in C{texts}; fire with
        {(text, voice): sound name or Failure}. One failure stops no other.
        """
        pairs = list(dict.fromkeys((text, voice) for text, voice in texts))
        results: dict = {}

        def keep(result, pair):
            results[pair] = result
            return None

        ds = [self.render(text, voice).addBoth(keep, (text, voice)) for text, voice in pairs]
        return defer.gatherResults(ds).addCallback(lambda _: results)

    def _produce(self, text, voice, final, container, mode) -> defer.Deferred:
        """The engine into a temporary file beside C{final}, then publish it."""
        folder = os.path.dirname(final)
        tmp = os.path.join(folder, f".{os.path.basename(final)}.{uuid.uuid4().hex[:12]}.tmp")
        v = self.engine.voices[voice or self.default_voice]
        self.engine_runs += 1
        gid = self.gid if container == "raw" else None
        d = (self._blocking(_make_folder, folder, mode, gid) if container == "raw"
             else defer.succeed(None))
        d.addCallback(lambda _: self.engine.render(said(text, v), v, tmp, rate=self.rate,
                                                   container=container))
        d.addCallback(lambda _: self._blocking(_publish, tmp, final, mode, gid))

        def failed(failure):
            log.warning("speech: rendering %r failed: %s", text[:40], failure.getErrorMessage())
            return self._blocking(_discard, tmp).addBoth(lambda _: failure)

        d.addErrback(failed)
        return d.addCallback(lambda _: final)


def _make_folder(folder: str, mode: int | None, gid: int | None = None) -> None:
    """The cache folder, searchable by whoever may read its files (setgid to C{gid})."""
    if not os.path.isdir(folder):
        dir_mode = 0o755 if mode is None or mode & 0o004 else 0o750
        os.makedirs(folder, mode=dir_mode, exist_ok=True)
        if gid is not None:
            os.chown(folder, -1, gid)
            os.chmod(folder, dir_mode | 0o2000)
        elif not dir_mode & 0o005:
            # Private files (announcements name residents) in a folder of this
            # process's own group: Asterisk, another user, may not read them,
            # nor the menus (0644) rendered into the same folder later.
            log.warning("speech: made %s (mode %o, group %d): Asterisk can read what is "
                        "rendered here only as this user or in this group; give the folder "
                        "Asterisk's group: chgrp asterisk %s; chmod 2750 %s", folder, dir_mode,
                        os.stat(folder).st_gid, folder, folder)


def _publish(tmp: str, final: str, mode: int | None, gid: int | None = None) -> None:
    """fsync C{tmp}, give it C{mode} and C{gid}, rename it to C{final}, fsync the folder."""
    fd = os.open(tmp, os.O_RDONLY)
    try:
        if gid is not None:
            os.fchown(fd, -1, gid)
        if mode is not None:
            os.fchmod(fd, mode)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, final)
    dfd = os.open(os.path.dirname(final) or ".", os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _discard(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
