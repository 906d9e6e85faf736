"""
Turning phone numbers into Asterisk dial strings.

Every number in the configuration is kept in E.164; a trunk template says how
Asterisk reaches it (C{PJSIP/{number}@community-trunk}). A value that already
names a channel technology (C{PJSIP/front-desk}, C{Local/100@internal}) is
used as written, so internal extensions need no trunk.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from switchboard.numbers import NumberPlan

_CHANNEL = re.compile(r"[A-Za-z][A-Za-z0-9]*/[^\s&,|]+")  # fullmatch: "$" allows "\n"


def is_channel(text: str) -> bool:
    """True if C{text} is an explicit Asterisk channel such as C{PJSIP/front-desk}."""
    return bool(_CHANNEL.fullmatch(str(text)))


@dataclass(frozen=True)
class Dialer:
    """
    Builds dial strings.

    @ivar numbers: the community's L{NumberPlan}.
    @ivar trunks: trunk name -> template containing C{{number}}; C{default}
        is used when a destination names no trunk.
    """

    numbers: NumberPlan = field(default_factory=NumberPlan)
    trunks: dict = field(default_factory=lambda: {"default": "PJSIP/{number}"})

    def dial_string(self, target: str, trunk: str = "default") -> str:
        """The channel to dial for C{target}: an E.164 number or an explicit channel."""
        if is_channel(target):
            return target
        template = self.trunks[trunk]
        return template.format(number=self.numbers.dialable(target))

    def __post_init__(self):
        object.__setattr__(self, "_rings", {})

    def ring_all(self, targets, trunk: str = "default") -> str:
        """One C{Dial()} argument ringing every target at once (C{A&B&C})."""
        key = (tuple(targets), trunk)
        ring = self._rings.get(key)
        if ring is None:
            ring = "&".join(self.dial_string(t, trunk) for t in key[0])
            if len(self._rings) >= 4096:  # routings come and go: stay bounded
                self._rings.clear()
            self._rings[key] = ring
        return ring
