"""The hotline's calls as the duty board reads them (L{switchboard.duty.ICallDesk})."""

from __future__ import annotations

import json
from collections import OrderedDict
from datetime import timezone

from zope.interface import implementer

from switchboard.calllog import CallLog
from switchboard.duty import ICallDesk

#: The most calls a board may ask for at once.
MOST = 200


@implementer(ICallDesk)
class CallDesk:
    """
    The calls on record, the latest ended ones as this server knows them:
    a call's end reaches the database a moment after it is told (the call
    log writes behind), and a board reading the list at that moment must
    not see it still "in progress".

    @param call_log: the hotline's L{CallLog} (told of each call as it ends).
    @param database: the L{switchboard.storage.Database} the records are in.
    """

    def __init__(self, call_log, database):
        self.call_log = call_log
        self.database = database
        self._ended = OrderedDict()   # record id -> the ended Call, the last MOST
        call_log.listeners.add(self._remember)

    def _remember(self, call):
        if call.record_id is None:
            return
        self._ended[call.record_id] = call
        self._ended.move_to_end(call.record_id)
        while len(self._ended) > MOST:
            self._ended.popitem(last=False)

    def recent(self, limit=30):
        limit = max(1, min(int(limit), MOST))
        d = self.database.run(lambda session: [as_dict(r) for r in
                                               CallLog.recent(session, limit)])
        return d.addCallback(self._with_ends)

    def _with_ends(self, calls):
        for shown in calls:
            call = self._ended.get(shown["id"])
            if call is not None:
                shown.update(ended_call(call))
        return calls

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


def ended_call(call) -> dict:
    """What an ended L{switchboard.calllog.Call} says that its row may not have yet."""
    row = call.row()
    return {"outcome": row["outcome"], "destination": row["destination"],
            "answered": _iso(call.answered), "ended": _iso(call.ended),
            "path": json.loads(row["path"])}


def _iso(when):
    if when is None:
        return None
    if when.tzinfo is None:  # SQLite gives back naive UTC
        when = when.replace(tzinfo=timezone.utc)
    return when.isoformat()
