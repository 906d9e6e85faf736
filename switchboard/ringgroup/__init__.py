"""
Ring groups: ring a set of parties at once (or one after another), each call
under a channel id chosen here, ring again the outcomes asked for, and tell
the owner each leg's fate. Any feature that calls people uses it (the #9
alarm is the first); it reaches Asterisk through one L{ICallPlacer}.

    engine = RingEngine(AMICallPlacer(ami), clock)
    group = engine.group(listener, subject, context="...", exten="s")
    group.ring_all([Party(target, dial, "neighbours", retry=Retry((BUSY,), 1, 10.0))])

See L{switchboard.ringgroup.engine} for what happens to a leg.
"""

from switchboard.ringgroup.engine import (
    ANSWERED,
    BUSY,
    CANCELLED,
    FAILED,
    LIVE,
    NO_ANSWER,
    RETRY,
    RINGING,
    CallRefused,
    Leg,
    Party,
    Retry,
    RingEngine,
    RingGroup,
)
from switchboard.ringgroup.interfaces import ICallPlacer, IRingListener
from switchboard.ringgroup.lines import CallerLines
from switchboard.ringgroup.placer import AMICallPlacer
from switchboard.ringgroup.trunk import NoLineFree, Trunk, TrunkPlacer

__all__ = [
    "ANSWERED", "BUSY", "CANCELLED", "FAILED", "LIVE", "NO_ANSWER", "RETRY", "RINGING",
    "AMICallPlacer", "CallRefused", "CallerLines", "ICallPlacer", "IRingListener", "Leg",
    "NoLineFree", "Party", "Retry", "RingEngine", "RingGroup", "Trunk", "TrunkPlacer",
]
