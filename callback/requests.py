"""The recorded requests: written on the database's thread pool, read by the CLI."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import insert, select

from callback.models import CallbackRequest


class Requests:
    """
    The C{callback_request} table of a L{switchboard.storage.Database}.
    L{add} runs on the database's pool (never on the reactor); L{recent}
    is for the command line.
    """

    def __init__(self, database):
        self.database = database

    def add(self, caller: str, uniqueid: str | None, when: datetime):
        """Record a request; a Deferred firing with its id once committed."""
        values = {"caller": caller[:64], "uniqueid": (uniqueid or None) and uniqueid[:64],
                  "requested_at": when}

        def write(session):
            return session.execute(insert(CallbackRequest).values(**values)).inserted_primary_key[0]

        return self.database.run(write)

    def recent(self, limit: int = 20) -> list[CallbackRequest]:
        """The latest C{limit} requests, newest first (synchronous: the CLI)."""
        with self.database.session() as session:
            rows = session.execute(
                select(CallbackRequest)
                .order_by(CallbackRequest.requested_at.desc(), CallbackRequest.id.desc())
                .limit(limit)).scalars().all()
        for row in rows:
            if row.requested_at.tzinfo is None:  # SQLite gives naive UTC back
                row.requested_at = row.requested_at.replace(tzinfo=timezone.utc)
        return list(rows)
