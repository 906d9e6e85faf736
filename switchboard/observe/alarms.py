"""
The alarm timeline's kinds that the metrics count (the values of
L{alarm.state} and L{alarm.models}; a test checks they still are). Kept
here so that the core's metrics do not import the alarm package.
"""

OPENED = "opened"
RECOVERED = "recovered"
ESCALATED = "escalated"
NOT_RECORDED = "not-recorded"   # L{AlarmRecorder}'s listeners only
RINGING = "ringing"
CONFIRMED = "confirmed"

#: How a leg (one call placed) ended: pressed 1, pressed 2, answered
#: without a key, busy, not answered, not placed or failed, still
#: ringing when the alarm ended.
LEG_OUTCOMES = (CONFIRMED, "declined", "unconfirmed", "busy", "no-answer", "failed",
                "cancelled")

#: How an alarm ended.
ENDED = ("closed", "cancelled", "native")
