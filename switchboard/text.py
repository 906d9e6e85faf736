"""
Caller-controlled text (caller-ID names, Asterisk's replies) made safe to
show: in a log line, a terminal or a CSV a control character could forge a
line, move the cursor or start an escape sequence.
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def printable(text) -> str:
    """
    C{text} with every control character (C0, DEL, C1, the Unicode line
    separators) written as a visible escape: C{"a\\nb"} gives C{"a\\\\x0ab"}.
    Anything that is not a string is converted with C{str} first.
    """
    if not isinstance(text, str):
        text = str(text)
    if _CONTROL.search(text) is None:
        return text
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
