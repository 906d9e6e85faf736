"""
The FastAGI environment: the C{agi_key: value} lines Asterisk sends first.
"""

from __future__ import annotations

import re
from typing import Dict, List, Tuple
from urllib.parse import parse_qsl

from switchboard.text import printable

PREFIX = "agi_"

#: Keys every Asterisk environment has; one without them is refused.
REQUIRED = ("network_script", "channel")
_ARG = re.compile(r"arg_([1-9][0-9]{0,3})")  # fullmatch
#: What L{printable} escapes, but the line feed that separates the lines: a
#: block without any needs no value escaped (the usual environment).
_CONTROL_BUT_LF = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def read_lines(text: str, env: Dict[str, str]) -> List[str]:
    """
    Add the C{agi_channel: PJSIP/1-0001} lines of C{text} to C{env} (as
    C{env["channel"] = "PJSIP/1-0001"}); return the lines that are not of
    that form (blank ones left out).

    The value is everything after the first C{":"} (values may contain
    colons), stripped of surrounding blanks, control characters made
    visible (L{printable}); the C{agi_} prefix is dropped.

    The first occurrence of a key wins: Asterisk sends its own keys
    (C{agi_network_script}, C{agi_channel}...) before any value a caller
    chooses (C{agi_calleridname}), so a name carrying a line feed and
    C{agi_network_script: other} cannot replace the script.
    """
    # One search of the whole block instead of one per value: 23 values a
    # call, a sixth of what the FastAGI layer spent on a hotline session.
    # (A block that is all printable but its line feeds has none: no search.)
    if text.replace("\n", " ").isprintable() or _CONTROL_BUT_LF.search(text) is None:
        escape = None
    else:
        escape = printable
    if escape is None:
        # The usual block: every line has a colon, no key comes twice or
        # is empty: read in one pass, which gives what the loop below does.
        lines = text.split("\n")
        try:
            found = {key.strip().removeprefix(PREFIX): value.strip()
                     for key, value in [line.split(":", 1) for line in lines]}
        except ValueError:  # a line without a colon: see below
            found = None
        if found is not None and len(found) == len(lines) and "" not in found:
            if not env:
                env.update(found)
            else:
                for key, value in found.items():
                    env.setdefault(key, value)
            return []
    return by_line(text, env, escape)


def by_line(text: str, env: Dict[str, str], escape=None) -> List[str]:
    """
    L{read_lines} a line at a time, values passed through C{escape}
    (L{printable}, or L{None} when the block holds no control character).
    """
    ignored = []
    for line in text.split("\n"):
        key, colon, value = line.partition(":")
        key = key.strip()
        if not colon or not key:
            if line.strip():
                ignored.append(line)
            continue
        if key.startswith(PREFIX):
            key = key[len(PREFIX):]
        if key not in env:
            value = value.strip()
            env[key] = value if escape is None else escape(value)
    return ignored


def script_and_query(network_script: str) -> Tuple[str, Dict[str, str]]:
    """
    Split C{agi_network_script} into the script name and its query.

    C{"/alarm?kind=9&from=1"} gives C{("alarm", {"kind": "9", "from": "1"})}:
    leading slashes are dropped, the query is decoded like a URL query string
    (blank values kept; for a repeated name the first value wins).
    """
    path, _, query = network_script.partition("?")
    if not query:
        return path.lstrip("/"), {}  # the usual script, no query to decode
    values: Dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        values.setdefault(name, value)
    return path.lstrip("/"), values


def arguments(env: Dict[str, str]) -> List[str]:
    """
    The C{AGI()} arguments (C{arg_1} ... C{arg_N}) in order; a missing number
    in between reads as C{""}.
    """
    numbered = {}
    for key in [key for key in env if key[:4] == "arg_"]:
        match = _ARG.fullmatch(key)
        if match:
            numbered[int(match.group(1))] = env[key]
    if not numbered:
        return []
    return [numbered.get(i, "") for i in range(1, max(numbered) + 1)]
