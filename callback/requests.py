"""
The recorded requests: written on the database's thread pool by the
server, read and updated by the staff's command, shown on the duty board.

What a request looks like to a page or a script is L{as_dict}:
plain JSON values, times as ISO 8601 in UTC with their Unix seconds
beside. L{Requests.snapshot} gives the open ones (and the latest done)
that way.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from switchboard.calllog import VOICEMAIL as CALL_TO_VOICEMAIL
from switchboard.calllog import CallRecord
from switchboard.listeners import Listeners

from callback.models import CALLBACK, VOICEMAIL, CallbackRequest

#: An open request older than this is flagged C{overdue} (shown highlighted).
OVERDUE_AFTER = timedelta(days=1)
#: A voicemail's hotline call started at most this long before the message.
CALL_BEFORE = timedelta(minutes=15)


def _utc(moment):
    if moment is None:
        return None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def _iso(moment):
    return None if moment is None else _utc(moment).isoformat()


def as_dict(row: CallbackRequest, now: datetime, labels=None) -> dict:
    """
    One request as plain JSON values:

      - C{id}, C{kind} (C{callback} or C{voicemail}), C{caller};
      - C{office}: the mailbox (C{box@context}) of a voicemail, else None;
        C{office_label}: what the routing calls it (C{labels[office]}), else
        the mailbox;
      - C{requested_at} (ISO 8601, UTC), C{age_seconds};
      - C{recording}: the voicemail's file on this host, or None;
      - C{status}: C{open} or C{done}; C{overdue}: open and older than a
        day (L{OVERDUE_AFTER});
      - C{done_at}, C{done_by}, C{note}, C{called_back_at}, C{called_back_from};
      - C{uniqueid}: Asterisk's id of the call (*0 only);
      - C{call}: the hotline call that left the voicemail (C{id}, C{hotline},
        C{started}, C{path}: the menus and offices it went through), when
        the call log has it, else None.
    """
    requested = _utc(row.requested_at)
    age = (now - requested).total_seconds()
    done = row.done_at is not None
    office = row.office
    return {
        "id": row.id,
        "kind": row.kind or CALLBACK,
        "caller": row.caller,
        "office": office,
        "office_label": (labels or {}).get(office, office) if office else None,
        "requested_at": _iso(requested),
        "age_seconds": round(age, 1),
        "recording": row.recording,
        "status": "done" if done else "open",
        "overdue": not done and age > OVERDUE_AFTER.total_seconds(),
        "done_at": _iso(row.done_at),
        "done_by": row.done_by,
        "note": row.note,
        "called_back_at": _iso(row.called_back_at),
        "called_back_from": row.called_back_from,
        "uniqueid": row.uniqueid,
        "call": None,
    }


def voicemail_call(session, row):
    """
    The hotline call that left the voicemail C{row}: the latest call from
    the same caller sent to a mailbox that started before the message, within
    L{CALL_BEFORE} (Asterisk's message file does not name the call).
    """
    left = _utc(row.requested_at)
    call = session.execute(
        select(CallRecord).where(CallRecord.caller == row.caller,
                                 CallRecord.outcome == CALL_TO_VOICEMAIL,
                                 CallRecord.started <= left + timedelta(seconds=5),
                                 CallRecord.started >= left - CALL_BEFORE)
        .order_by(CallRecord.started.desc()).limit(1)).scalars().first()
    if call is None:
        return None
    return {"id": call.id, "hotline": call.hotline, "started": _iso(call.started),
            "path": call.steps}


class NoSuchRequest(LookupError):
    """No request has that id."""


class Requests:
    """
    The C{callback_request} table of a L{switchboard.storage.Database}.
    L{add}, L{add_voicemail}, L{message_ids}, L{snapshot}, L{mark_done}
    and L{mark_called_back} run on the database's pool (never on the
    reactor) and return Deferreds: what the server and its pages use. The
    rest are synchronous, for the command line.

    @ivar listeners: told C{(request_id, what)} once the database has
        committed it, C{what} being C{"callback"} or C{"voicemail"} (a new
        request), C{"done"} or C{"called back"}: a live page refreshes on it.
        Changes made by the command line (another process) are not told.
    """

    def __init__(self, database, *, clock=None):
        self.database = database
        self.clock = clock
        self.listeners = Listeners()

    def _tell(self, what):
        def told(request_id):
            if request_id is not None:
                self.listeners(request_id, what)
            return request_id
        return told

    def _now(self) -> datetime:
        seconds = self.clock.seconds() if self.clock is not None else None
        if seconds is None:
            return datetime.now(timezone.utc)
        return datetime.fromtimestamp(seconds, timezone.utc)

    # The server ----------------------------------------------------------------

    def add(self, caller: str, uniqueid: str | None, when: datetime):
        """Record a C{*0} request; a Deferred firing with its id once committed."""
        values = {"caller": caller[:64], "uniqueid": (uniqueid or None) and uniqueid[:64],
                  "requested_at": when, "kind": CALLBACK}

        def write(session):
            return session.execute(insert(CallbackRequest).values(**values)).inserted_primary_key[0]

        return self.database.run(write).addCallback(self._tell(CALLBACK))

    def add_voicemail(self, message):
        """
        Record a voicemail (a L{callback.voicemail.Message}) as a request;
        a Deferred firing with its id, or L{None} when that message is
        already a request (its C{message_id} is taken).
        """
        values = {"caller": message.caller[:64], "requested_at": message.left_at,
                  "kind": VOICEMAIL, "office": message.mailbox[:80],
                  "recording": message.recording and message.recording[:400],
                  "message_id": message.message_id[:64]}

        def write(session):
            taken = session.execute(select(CallbackRequest.id).where(
                CallbackRequest.message_id == values["message_id"])).first()
            if taken is not None:
                return None
            try:
                with session.begin_nested():
                    return session.execute(
                        insert(CallbackRequest).values(**values)).inserted_primary_key[0]
            except IntegrityError:  # another writer took it meanwhile
                return None

        return self.database.run(write).addCallback(self._tell(VOICEMAIL))

    def message_ids(self):
        """A Deferred firing with {message id: recording} of the voicemails already requests."""
        def read(session):
            return {row[0]: row[1] or "" for row in session.execute(
                select(CallbackRequest.message_id, CallbackRequest.recording).where(
                    CallbackRequest.message_id.is_not(None)))}

        return self.database.run(read)

    def move_recording(self, message_id: str, recording: str):
        """The voicemail C{message_id} is now C{recording} (Asterisk moved it); a Deferred."""
        def write(session):
            session.execute(update(CallbackRequest).where(
                CallbackRequest.message_id == message_id).values(recording=recording[:400]))

        return self.database.run(write)

    def snapshot(self, *, labels=None, done_limit: int = 20):
        """
        A Deferred firing with C{{"open": [...], "done": [...], "overdue": N}}:
        every open request (oldest first: the longest waiting on top) and
        the latest C{done_limit} done ones, each as L{as_dict}.
        """
        now = self._now()

        def read(session):
            return self._snapshot(session, now, labels, done_limit)

        return self.database.run(read)

    @staticmethod
    def _snapshot(session, now, labels, done_limit):
        table = CallbackRequest
        open_rows = session.execute(select(table).where(table.done_at.is_(None))
                                    .order_by(table.requested_at, table.id)).scalars().all()
        done_rows = session.execute(select(table).where(table.done_at.is_not(None))
                                    .order_by(table.done_at.desc(), table.id.desc())
                                    .limit(done_limit)).scalars().all()
        def shown(row):
            entry = as_dict(row, now, labels)
            if row.kind == VOICEMAIL:
                entry["call"] = voicemail_call(session, row)
            return entry

        opened = [shown(r) for r in open_rows]
        return {"open": opened, "done": [shown(r) for r in done_rows],
                "overdue": sum(1 for r in opened if r["overdue"])}

    def mark_done(self, request_id: int, note: str, by: str | None = None):
        """Mark a request done with a note, by whom; a Deferred (L{NoSuchRequest})."""
        values = self._done(note, by)
        return self.database.run(lambda session: _update(session, request_id, values)) \
            .addCallback(lambda _: self._tell("done")(request_id) and None)

    def mark_called_back(self, request_id: int, from_phone: str):
        """Note a call back placed from C{from_phone}; a Deferred (L{NoSuchRequest})."""
        values = self._called_back(from_phone)
        return self.database.run(lambda session: _update(session, request_id, values)) \
            .addCallback(lambda _: self._tell("called back")(request_id) and None)

    def _done(self, note, by):
        return {"done_at": self._now(), "note": note[:2000], "done_by": by and by[:64]}

    def _called_back(self, from_phone):
        return {"called_back_at": self._now(), "called_back_from": from_phone[:64]}

    # The command line ------------------------------------------------------------

    def recent(self, limit: int = 20, *, kind: str | None = None) -> list[CallbackRequest]:
        """The latest C{limit} requests (of C{kind}, or all), newest first."""
        with self.database.session() as session:
            query = select(CallbackRequest)
            if kind is not None:
                query = query.where(CallbackRequest.kind == kind)
            rows = session.execute(
                query.order_by(CallbackRequest.requested_at.desc(), CallbackRequest.id.desc())
                .limit(limit)).scalars().all()
        return [_aware(row) for row in rows]

    def listing(self, *, include_done: bool = False, limit: int = 100,
                labels=None) -> list[dict]:
        """Open requests oldest first (and done ones after them with C{include_done})."""
        now = self._now()
        with self.database.session() as session:
            shot = self._snapshot(session, now, labels, limit if include_done else 0)
        return shot["open"][:limit] + (shot["done"] if include_done else [])

    def get(self, request_id: int) -> CallbackRequest:
        with self.database.session() as session:
            row = session.get(CallbackRequest, request_id)
        if row is None:
            raise NoSuchRequest(f"no request {request_id}")
        return _aware(row)

    def done(self, request_id: int, note: str, by: str | None = None) -> CallbackRequest:
        """Mark a request done with a note (a later call replaces the note)."""
        self._sync(request_id, self._done(note, by))
        return self.get(request_id)

    def called_back(self, request_id: int, from_phone: str) -> None:
        """Note that a call back was placed from C{from_phone} (the staff phone answered)."""
        self._sync(request_id, self._called_back(from_phone))

    def _sync(self, request_id, values):
        with self.database.session() as session:
            _update(session, request_id, values)
            session.commit()


def _update(session, request_id, values):
    changed = session.execute(update(CallbackRequest).where(
        CallbackRequest.id == request_id).values(**values)).rowcount
    if not changed:
        raise NoSuchRequest(f"no request {request_id}")


def _aware(row):
    for name in ("requested_at", "done_at", "called_back_at"):
        value = getattr(row, name)
        if value is not None and value.tzinfo is None:  # SQLite gives naive UTC back
            setattr(row, name, value.replace(tzinfo=timezone.utc))
    return row
