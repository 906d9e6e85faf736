"""
Speech: prompts written as text, rendered offline to sound files Asterisk plays.

  Prompt     a prompt as staff wrote it (a recording, text to say, or both)
  Speech     text -> cached sound files under Asterisk's sounds folder,
             rendered in a child process, never on the reactor
  chinese    how numbers are read aloud in Mandarin (count, digits)
"""

from switchboard.speech import chinese
from switchboard.speech.prompt import Prompt
from switchboard.speech.render import Speech, SpeechUnavailable

__all__ = ["Prompt", "Speech", "SpeechUnavailable", "chinese"]
