"""The hotline's calls as the duty board reads them (L{switchboard.duty.ICallDesk})."""

from __future__ import annotations

import json

from zope.interface import implementer

from switchboard.calllog import CallLog
from switchboard.duty import ICallDesk

#: The most calls a board may ask for at once.
MOST = 200


@implementer(ICallDesk)
class CallDesk:
    """
    @param call_log: the hotline's L{CallLog} (told of each call as it ends).
    @param database: the L{switchboard.storage.Database} the records are in.
    """

    def __init__(self, call_log, database):
        self.call_log = call_log
        self.database = database

    def recent(self, limit=30):
        limit = max(1, min(int(limit), MOST))
        return self.database.run(lambda session: [as_dict(r) for r in
                                                  CallLog.recent(session, limit)])

    def watch(self, listener):
        def ended(call):
            listener(getattr(call, "uniqueid", None))

        self.call_log.listeners.add(ended)
        return lambda: self.call_log.listeners.remove(ended)


def as_dict(record) -> dict:
    """A call record as plain JSON: times in ISO 8601 UTC, the path as a list of steps."""
    try:
        path = json.loads(record.path or "[]")
    except ValueError:
        path = [str(record.path)]
    return {
        "id": record.id,
        "caller": record.caller,
        "hotline": record.hotline,
        "started": _iso(record.started),
        "answered": _iso(record.answered),
        "ended": _iso(record.ended),
        "outcome": record.outcome,
        "destination": record.destination,
        "path": [str(step) for step in path] if isinstance(path, list) else [str(path)],
    }


def _iso(when):
    if when is None:
        return None
    if when.tzinfo is None:  # SQLite gives back naive UTC
        from datetime import timezone
        when = when.replace(tzinfo=timezone.utc)
    return when.isoformat()
