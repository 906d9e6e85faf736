"""
Originate: the action's headers and the meaning of its outcome.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

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

# Hangup causes (Q.850, Asterisk's causes.h) that say what the called phone
# did. A PJSIP phone answering 486 Busy ends its channel with cause 17 and no
# BUSY control frame, so the OriginateResponse says only "reason 0" (pbx.c,
# pbx_dial_reason); the channel's Hangup event, right behind it, says why.
# Causes not listed here (congestion, network trouble, no cause) leave a
# reason-0 originate what it was: a call not placed.
PARTY_CAUSES = {
    17: BUSY,       # user busy
    21: BUSY,       # call rejected (declined at the phone)
    18: NO_ANSWER,  # no user responding
    19: NO_ANSWER,  # user alerting, no answer
    1: FAILED,      # unallocated number
    3: FAILED,      # no route to destination
    20: FAILED,     # subscriber absent (not registered)
    27: FAILED,     # destination out of order
}
_CAUSE_TEXT = {17: "user busy", 21: "call rejected", 18: "no user responding",
               19: "no answer", 1: "unallocated number", 3: "no route to destination",
               20: "not registered", 27: "destination out of order"}

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
    @ivar cause: the hangup cause of the called channel when it told what
        the phone did (L{PARTY_CAUSES}), else L{None}.
    """

    channel_id: str | None
    outcome: str
    reason: int | None
    message: str
    channel: str | None = None
    uniqueid: str | None = None
    cause: int | None = None

    @property
    def answered(self) -> bool:
        return self.outcome == ANSWERED

    @property
    def not_placed(self) -> bool:
        """
        No call reached the party: Asterisk refused the action (reason
        L{None}) or the channel failed (reason 0) with no cause from the
        phone. Trouble to try again, not something the party did.
        """
        return self.outcome == FAILED and self.reason in (None, 0) and self.cause is None

    def with_cause(self, cause) -> "OriginateResult":
        """
        This reason-0 result told by the called channel's hangup C{cause}:
        busy, no answer or unreachable when the cause says what the phone
        did (L{PARTY_CAUSES}), else unchanged.
        """
        outcome = PARTY_CAUSES.get(cause)
        if outcome is None or self.reason != 0:
            return self
        return replace(self, outcome=outcome, cause=cause,
                       message=f"{self.message}; hangup cause {cause}: {_CAUSE_TEXT[cause]}")


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
