"""
Asterisk Manager Interface client: a connection kept up with reconnects and
keepalives, actions correlated by C{ActionID}, event subscriptions, and
asynchronous originates with their outcome.
"""

from switchboard.ami.backoff import Backoff
from switchboard.ami.client import AMIClient
from switchboard.ami.errors import (
    AMIActionError,
    AMIArgumentError,
    AMIConnectionLost,
    AMIError,
    AMILoginError,
    AMINotConnected,
    AMITimeout,
)
from switchboard.ami.events import Subscription, Subscriptions
from switchboard.ami.framing import BlockReader
from switchboard.ami.link import ManagerLink
from switchboard.ami.message import Message
from switchboard.ami.originate import (
    ANSWERED,
    BUSY,
    CONGESTION,
    FAILED,
    NO_ANSWER,
    OriginateResult,
    outcome_for_reason,
)
from switchboard.ami.protocol import AMIProtocol

__all__ = [
    "AMIActionError",
    "AMIArgumentError",
    "AMIClient",
    "AMIConnectionLost",
    "AMIError",
    "AMILoginError",
    "AMINotConnected",
    "AMIProtocol",
    "AMITimeout",
    "ANSWERED",
    "BUSY",
    "Backoff",
    "BlockReader",
    "CONGESTION",
    "FAILED",
    "ManagerLink",
    "Message",
    "NO_ANSWER",
    "OriginateResult",
    "Subscription",
    "Subscriptions",
    "outcome_for_reason",
]
