"""
The speech engine: espeak-ng (Debian package C{espeak-ng}) for the voice,
sox (Debian package C{sox}) to resample its 22,050 Hz output to the rate
Asterisk plays without converting (8 kHz signed linear for a phone call).

Both run as child processes with a time limit, so a hung or slow engine
costs the server nothing but the wait; the reactor only reads their pipes.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass

from twisted.internet import defer, error, protocol


class EngineError(Exception):
    """The engine ran and failed (exit status, timeout, no output)."""


@dataclass(frozen=True)
class Voice:
    """A voice staff can name in a prompt (C{voice: zh})."""

    key: str  # what staff write: zh, yue, en
    engine_voice: str  # the engine's own name for it
    script: str  # which characters it speaks: "han" or "latin"
    description: str
    args: tuple = ()  # more engine options (part of the cache key)
    mandarin: bool = False  # numbers and signs rewritten by chinese.spoken first


# zh: on espeak-ng 1.51 (Debian 12) only cmn-latn-pinyin reads Han characters
# with Mandarin phonemes; its "cmn" voice reads the pinyin tone digits of its
# own dictionary in English ("ni3" -> "ni three"). See README, "Speech".
VOICES = {
    v.key: v
    for v in (
        # -s 150: 3.2 characters a second instead of 3.9, for elderly listeners
        Voice("zh", "cmn-latn-pinyin", "han", "Mandarin (普通话)", ("-s", "150"), True),
        Voice("yue", "yue", "han", "Cantonese (粤语)"),
        Voice("en", "en", "latin", "English"),
    )
}

RATES = {8000: "sln", 12000: "sln12", 16000: "sln16", 24000: "sln24", 32000: "sln32",
         44100: "sln44", 48000: "sln48"}


class _Collect(protocol.ProcessProtocol):
    """Feed a child its stdin, collect stdout/stderr, fire with (out, err, code)."""

    MAX_OUTPUT = 1 << 20

    def __init__(self, stdin: bytes, done: defer.Deferred):
        self.stdin = stdin
        self.done = done
        self.out = []
        self.err = []
        self.size = 0

    def connectionMade(self):
        self.transport.write(self.stdin)
        self.transport.closeStdin()

    def outReceived(self, data):
        self._keep(self.out, data)

    def errReceived(self, data):
        self._keep(self.err, data)

    def _keep(self, into, data):
        if self.size < self.MAX_OUTPUT:
            into.append(data)
            self.size += len(data)

    def processEnded(self, reason):
        code = reason.value.exitCode if reason.check(error.ProcessTerminated) else 0
        if reason.check(error.ProcessTerminated) and code is None:
            code = -(reason.value.signal or 1)
        self.done.callback((b"".join(self.out), b"".join(self.err), code))


def run_child(reactor, argv: list[str], *, stdin: bytes = b"", timeout: float = 30,
              env: dict | None = None) -> defer.Deferred:
    """
    Run C{argv} as a child process; fire with (stdout, stderr, exit code),
    or fail with L{EngineError} when it is still running after C{timeout}
    seconds (it is killed).
    """
    done = defer.Deferred()
    proto = _Collect(stdin, done)
    try:
        transport = reactor.spawnProcess(proto, argv[0], argv, env=env if env is not None
                                         else _child_env())
    except OSError as e:
        return defer.fail(EngineError(f"cannot start {argv[0]}: {e}"))
    timer = reactor.callLater(timeout, _kill, transport)

    def finished(result):
        if timer.active():
            timer.cancel()
            return result
        raise EngineError(f"{os.path.basename(argv[0])} took longer than {timeout:g} s and was stopped")

    return done.addCallback(finished)


def _kill(transport):
    try:
        transport.signalProcess("KILL")
    except error.ProcessExitedAlready:
        pass


def _child_env() -> dict:
    """A small, predictable environment for the engine (no locale surprises)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"}
    return env


class EspeakEngine:
    """
    espeak-ng + sox, as child processes. L{probe} is the one blocking call
    (a few milliseconds, at start-up); L{render} never blocks.
    """

    name = "espeak-ng"
    voices = VOICES

    def __init__(self, reactor=None, *, timeout: float = 30, espeak: str = "espeak-ng",
                 sox: str = "sox"):
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.timeout = timeout
        self.espeak = shutil.which(espeak) or espeak
        self.sox = shutil.which(sox) or sox
        self.missing: str | None = None  # why the engine cannot run, once probed

    def probe(self) -> str | None:
        """
        The engine's version (e.g. "espeak-ng 1.51; sox 14.4.2"), or None when
        it is not installed or does not work (L{missing} says why). Blocking.
        """
        versions = []
        for program, flag, package in ((self.espeak, "--version", "espeak-ng"),
                                       (self.sox, "--version", "sox")):
            if not os.path.isabs(program) or not os.access(program, os.X_OK):
                self.missing = (f"{os.path.basename(program)} is not installed "
                                f"(Debian package {package}; ./dev setup installs it)")
                return None
            try:
                out = subprocess.run([program, flag], capture_output=True, timeout=10,
                                     env=_child_env(), stdin=subprocess.DEVNULL)
            except (OSError, subprocess.TimeoutExpired) as e:
                self.missing = f"{program} does not run: {e}"
                return None
            text = (out.stdout or out.stderr).decode("utf-8", "replace").strip()
            if out.returncode != 0 or not text:
                self.missing = f"{program} {flag} failed (exit {out.returncode})"
                return None
            number = re.search(r"(\d+\.\d+[\w.+~-]*)", text)
            versions.append(f"{package} {number.group(1) if number else text[:60]}")
        self.missing = None
        return "; ".join(versions)

    def render(self, text: str, voice: Voice, path: str, *, rate: int,
               container: str = "raw") -> defer.Deferred:
        """
        Speak C{text} with C{voice} into C{path}: 16-bit signed mono at C{rate}
        Hz, raw (Asterisk's .sln/.sln16) or WAV (C{container="wav"}), peaks
        at -3 dBFS (espeak-ng's own output clips after resampling). Fires
        with C{path}; fails with L{EngineError}. C{path} may be left behind
        on failure: the caller removes it.
        """
        wav = path + ".espeak.wav"
        d = run_child(self.reactor,
                      [self.espeak, "-v", voice.engine_voice, *voice.args, "--stdin", "-w", wav],
                      stdin=text.encode("utf-8"), timeout=self.timeout)
        d.addCallback(self._check, "espeak-ng", wav)
        d.addCallback(lambda _: run_child(
            self.reactor,
            [self.sox, "-q", "-V1", wav, "-t", container, "-r", str(rate), "-c", "1", "-b", "16",
             "-e", "signed-integer", path, "gain", "-n", "-3"],
            timeout=self.timeout))
        d.addCallback(self._check, "sox", path)
        d.addBoth(self._cleanup, wav)
        d.addCallback(lambda _: path)
        return d

    @staticmethod
    def _check(result, program, path):
        out, err, code = result
        if code != 0:
            message = err.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
            raise EngineError(f"{program} failed (exit {code}): {message[0]}")
        if not os.path.exists(path) or os.path.getsize(path) == 0:
            raise EngineError(f"{program} produced no audio")
        return path

    @staticmethod
    def _cleanup(result, wav):
        try:
            os.unlink(wav)
        except FileNotFoundError:
            pass
        return result
