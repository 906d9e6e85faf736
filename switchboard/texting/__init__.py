"""
Text messages to phones: a notice to residents, a word to the duty officer
when an alarm opens. One interface (L{ITextChannel}), a real channel (SIP
MESSAGE through Asterisk, L{SipMessageChannel}) and what sends with retries
and tells each message's fate (L{TextSender}). Features use it; it knows
none of them.
"""

from switchboard.texting.channel import (
    ITextChannel,
    SipMessageChannel,
    TextResult,
    fit,
)
from switchboard.texting.sender import TextSender
from switchboard.texting.settings import TextingSettings, channel_from_settings, read_settings

__all__ = [
    "ITextChannel",
    "SipMessageChannel",
    "TextResult",
    "TextSender",
    "TextingSettings",
    "channel_from_settings",
    "fit",
    "read_settings",
]
