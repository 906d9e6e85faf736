"""
Originate: the action's headers and the meaning of its outcome.
"""

from __future__ import annotations

from dataclasses import dataclass

from switchboard.ami.errors import AMIArgumentError
from switchboard.ami.message import check_value

ANSWERED = "answered"
BUSY = "busy"
NO_ANSWER = "no-answer"
CONGESTION = "congestion"
FAILED = "failed"

# OriginateResponse "Reason" codes: the last control frame seen on the
# outgoing channel (Asterisk's AST_CONTROL_* values), 0 when none.
_REASONS = {
    4: ANSWERED,    # answer
    5: BUSY,        # busy
    3: NO_ANSWER,   # ringing, then the ring timeout
    8: CONGESTION,  # congestion
    1: NO_ANSWER,   # hung up (rejected) before answering
}

# Characters Asterisk's argument splitter gives a meaning to in a Variable
# header ("a=1,b=2" is two variables; quotes and parentheses group); a
# backslash makes each one literal.
_SPECIAL = '\\,"()'


@dataclass(frozen=True)
class OriginateResult:
    """
    How an originated call ended up.

    @ivar channel_id: the C{ChannelId} requested, else the C{Uniqueid}
        Asterisk reported (L{None} when no channel was created).
    @ivar outcome: C{"answered"}, C{"busy"}, C{"no-answer"},
        C{"congestion"} or C{"failed"}.
    @ivar reason: the C{Reason} code of the C{OriginateResponse} event
        (L{None} when Asterisk refused the action outright).
    @ivar message: a human-readable explanation.
    @ivar channel: the C{Channel} header of the event (the channel's name
        once it exists), or L{None}.
    @ivar uniqueid: the C{Uniqueid} Asterisk reported, or L{None}.
    """

    channel_id: str | None
    outcome: str
    reason: int | None
    message: str
    channel: str | None = None
    uniqueid: str | None = None

    @property
    def answered(self) -> bool:
        return self.outcome == ANSWERED


def outcome_for_reason(reason):
    """The outcome name for an C{OriginateResponse} C{Reason} code."""
    return _REASONS.get(reason, FAILED)


def result_from_event(event, channel_id=None):
    """The L{OriginateResult} an C{OriginateResponse} event reports."""
    try:
        reason = int(event.get("Reason", ""))
    except ValueError:
        reason = None
    outcome = outcome_for_reason(reason)
    uniqueid = event.value("Uniqueid")
    return OriginateResult(
        channel_id=channel_id or uniqueid,
        outcome=outcome,
        reason=reason,
        message=f"{event.get('Response', '?')} (reason {reason}: {outcome})",
        channel=event.value("Channel"),
        uniqueid=uniqueid,
    )


_ESCAPES = str.maketrans({c: "\\" + c for c in _SPECIAL})
# Variable names already found valid (the same few on every call).
_VALID_NAMES: set = set()


def escape_argument(text):
    """C{text} with Asterisk's argument separators made literal."""
    return text.translate(_ESCAPES)


def variable_header(name, value):
    """
    The value of one C{Variable} header setting C{name} to C{value}.

    @raise AMIArgumentError: C{name} is empty, holds C{=}, blanks or control
        characters, or C{value} holds CR, LF or NUL.
    """
    name, value = str(name), "" if value is None else str(value)
    if name not in _VALID_NAMES:
        if not name or "=" in name or any(c.isspace() or c == "\0" for c in name):
            raise AMIArgumentError(f"invalid channel variable name {name!r}")
        if len(_VALID_NAMES) < 1024:
            _VALID_NAMES.add(name)
    check_value(f"Variable {name}", value)
    return f"{escape_argument(name)}={escape_argument(value)}"


def originate_headers(channel, *, context=None, exten=None, priority=1, application=None,
                      data=None, variables=None, caller_id=None, timeout=30.0,
                      channel_id=None, other_channel_id=None):
    """
    The headers (after C{Action} and C{ActionID}) of an asynchronous
    C{Originate}.

    Either C{context} and C{exten} (with C{priority}) or C{application}
    (with C{data}) say where an answered call goes. C{timeout} is the ring
    time in seconds. C{variables} is a mapping or C{(name, value)} pairs,
    each sent as its own C{Variable} header.

    @raise AMIArgumentError: an impossible combination or an unsafe value.
    """
    if not channel:
        raise AMIArgumentError("originate needs a channel")
    if application is not None:
        if context is not None or exten is not None:
            raise AMIArgumentError("originate takes context/exten or application, not both")
        target = [("Application", application), ("Data", data)]
    elif context is not None and exten is not None:
        if data is not None:
            raise AMIArgumentError("originate data goes with an application")
        target = [("Context", context), ("Exten", exten), ("Priority", priority)]
    else:
        raise AMIArgumentError("originate needs context and exten, or application")
    if timeout is None or timeout <= 0:
        raise AMIArgumentError(f"originate timeout must be positive, got {timeout!r}")
    pairs = variables.items() if hasattr(variables, "items") else (variables or ())
    headers = [("Channel", channel), *target,
               ("Timeout", int(round(timeout * 1000))),
               ("CallerID", caller_id),
               ("ChannelId", channel_id),
               ("OtherChannelId", other_channel_id)]
    headers.extend(("Variable", variable_header(n, v)) for n, v in pairs)
    headers.append(("Async", "true"))
    return headers
