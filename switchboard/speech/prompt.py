"""A prompt as staff wrote it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Prompt:
    """
    A prompt as staff wrote it: a recording (sound name), or text to say, or
    both (a recording always wins when given and present).
    """

    sound: str | None = None  # Asterisk sound name, no extension
    text: str | None = None  # text to speak ("say:")
    voice: str | None = None  # language/voice key, e.g. "zh" (None: the default)
