"""
FastAGI server: Asterisk hands a call to the switchboard with
C{AGI(agi://host/script?query)}; the named handler runs it with an
L{AGISession}.
"""

from switchboard.agi.commands import MAX_COMMAND_BYTES, quote
from switchboard.agi.errors import (
    AGIArgumentError,
    AGICommandError,
    AGIConnectionLost,
    AGIError,
    AGIHangup,
    AGITimeout,
)
from switchboard.agi.protocol import FastAGIProtocol
from switchboard.agi.reply import AGIReply, parse_result_line
from switchboard.agi.server import (
    RESULT_ERROR,
    RESULT_NOSCRIPT,
    RESULT_VARIABLE,
    FastAGIFactory,
    PeerAllowlist,
)
from switchboard.agi.interfaces import IAGISession
from switchboard.agi.session import AGISession, drive

__all__ = [
    "AGIArgumentError",
    "AGICommandError",
    "AGIConnectionLost",
    "AGIError",
    "AGIHangup",
    "AGIReply",
    "AGISession",
    "AGITimeout",
    "FastAGIFactory",
    "FastAGIProtocol",
    "IAGISession",
    "MAX_COMMAND_BYTES",
    "PeerAllowlist",
    "RESULT_ERROR",
    "RESULT_NOSCRIPT",
    "RESULT_VARIABLE",
    "parse_result_line",
    "drive",
    "quote",
]
