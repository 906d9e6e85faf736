"""
Changes made by another process, heard at once: PostgreSQL's LISTEN/NOTIFY.

Staff change the registry and close alarms with the CLI, another process
(or through another switchboard instance). The server looks for such
changes every few seconds with one cheap query; on PostgreSQL the writer
also sends C{NOTIFY switchboard_changes} in the same transaction
(L{notify}: delivered when it commits, never for a rollback), and
L{PostgresListener} wakes the server's look at once. The periodic look
stays as the safety net: a notification sent while the listener was
reconnecting is not kept by PostgreSQL.
"""

from __future__ import annotations

import threading

from twisted.logger import Logger

#: The one channel: a payload says what changed ("registry", "alarms").
CHANNEL = "switchboard_changes"


def notify(session, what: str) -> None:
    """
    Tell listeners (once C{session}'s transaction commits) that C{what}
    changed. Nothing on databases other than PostgreSQL.
    """
    bind = session.get_bind()
    if bind.dialect.name != "postgresql":
        return
    from sqlalchemy import text
    session.execute(text("SELECT pg_notify(:channel, :what)"),
                    {"channel": CHANNEL, "what": what})


def is_postgres(url: str) -> bool:
    return url.startswith("postgresql")


class PostgresListener:
    """
    Listens on L{CHANNEL} on a connection of its own, on a thread of its
    own (a blocking wait there costs the reactor nothing), and calls
    C{callback(what)} in the reactor thread for each notification, and
    C{callback(None)} after each (re)connection: what was sent while it
    was away is not delivered, so the caller should look for itself.

    @param url: the SQLAlchemy URL of the database.
    @param reactor: provides C{callFromThread}.
    @param retry: seconds between two connection attempts.
    @param connect: C{connect(conninfo)} returning a psycopg connection
        (tests may give their own).
    """

    log = Logger()

    def __init__(self, url, callback, reactor, *, retry=5.0, poll=1.0, connect=None):
        from sqlalchemy.engine import make_url
        self.conninfo = make_url(url).set(drivername="postgresql").render_as_string(
            hide_password=False)
        self.where = make_url(url).render_as_string(hide_password=True)
        self.callback = callback
        self.reactor = reactor
        self.retry = retry
        self.poll = poll
        self._connect = connect
        self._stop = threading.Event()
        self._thread = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="pg-listen", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop listening (the thread ends within C{poll} seconds)."""
        self._stop.set()

    def _run(self):
        failed = False
        while not self._stop.is_set():
            try:
                with self._open() as connection:
                    connection.execute(f"LISTEN {CHANNEL}")
                    if failed:
                        self.reactor.callFromThread(self.log.info, "listening to {where} again",
                                                    where=self.where)
                    failed = False
                    self.reactor.callFromThread(self.callback, None)
                    while not self._stop.is_set():
                        for note in connection.notifies(timeout=self.poll):
                            self.reactor.callFromThread(self.callback, note.payload)
            except Exception as e:
                if not failed:
                    self.reactor.callFromThread(
                        self.log.warn, "not listening to {where} ({e}); the server looks for "
                        "changes every few seconds meanwhile", where=self.where, e=e)
                failed = True
                self._stop.wait(self.retry)

    def _open(self):
        if self._connect is not None:
            return self._connect(self.conninfo)
        import psycopg
        return psycopg.connect(self.conninfo, autocommit=True, connect_timeout=10)
