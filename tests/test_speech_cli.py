"""switchboard say: one prompt to a WAV file staff can listen to."""

from __future__ import annotations

import os
import subprocess
import sys
import wave

from tests.test_speech_render import require_engine

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def say(*args, env=None):
    return subprocess.run([sys.executable, "-m", "switchboard.cli", "say", *args],
                          capture_output=True, text=True, cwd=PROJECT, timeout=60,
                          env={**os.environ, **(env or {})})


def test_say_writes_a_wav_and_shows_what_is_said(tmp_path):
    require_engine()
    target = tmp_path / "menu.wav"
    result = say("居委会请按1，重听请按9。", "--to", str(target))
    assert result.returncode == 0, result.stderr
    assert "居委会请按一，chong2ting1请按九。" in result.stdout
    with wave.open(str(target)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
        assert 2 < w.getnframes() / 8000 < 8


def test_say_refuses_what_cannot_be_spoken(tmp_path):
    target = tmp_path / "x.wav"
    result = say("请拨打☎", "--to", str(target))
    assert result.returncode == 1
    assert "cannot speak “☎” (U+260E BLACK TELEPHONE) at character 4" in result.stderr
    assert not target.exists()


def test_say_without_the_engine(tmp_path):
    target = tmp_path / "x.wav"
    result = say("你好", "--to", str(target), env={"PATH": str(tmp_path)})
    assert result.returncode == 1
    assert "no speech engine: espeak-ng is not installed (Debian package espeak-ng; " \
           "./dev setup installs it)" in result.stderr
    assert not target.exists()


def test_missing_engine_fails_under_ci(monkeypatch, tmp_path):
    import unittest

    import pytest

    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("SWITCHBOARD_REQUIRE_SPEECH", "1")
    with pytest.raises(AssertionError, match="SPEECH ENGINE UNAVAILABLE: espeak-ng is not installed"):
        require_engine()
    monkeypatch.delenv("SWITCHBOARD_REQUIRE_SPEECH")
    with pytest.raises(unittest.SkipTest):
        require_engine()
