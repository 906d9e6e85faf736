"""
A local journal in front of the database, so that a record is kept the
moment it is made, whatever the database does.

L{Journal} is an append-only file, one JSON object a line, each line with a
CRC-32 of its text: a line torn by a crash or a power cut is detected and
skipped (and logged), never misread. An append is one C{write()} on the
calling thread (microseconds; in the kernel's page cache, so it survives
kill -9); a durable one also fsyncs (survives a power cut).

L{WriteBehind} applies the journal's records to the database in order, on
its thread pool, retrying with growing delays until the database takes
them; nothing is dropped. Each transaction also moves the journal's mark
(table C{journal_mark}) to its last record, so a record committed just
before a crash is not applied twice when the journal is replayed at start.
Once records are committed the file is rewritten (atomically) with only
what is still pending, so it does not grow for ever.
"""

from __future__ import annotations

import json
import os
import zlib
from collections import deque
from itertools import islice

from sqlalchemy import BigInteger, String, select
from sqlalchemy.orm import Mapped, mapped_column
from twisted.internet import defer
from twisted.logger import Logger, LogLevel

from switchboard.listeners import Listeners
from switchboard.storage import Base


class JournalMark(Base):
    """The last journal record (by sequence number) each journal has committed."""

    __tablename__ = "journal_mark"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, default=0)


def encode(record: dict) -> bytes:
    text = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    data = text.encode("utf-8")
    return b"%08x " % zlib.crc32(data) + data + b"\n"


def decode(line: bytes):
    """The record of a journal line, or L{None} if the line is torn or damaged."""
    if not line.endswith(b"\n") or len(line) < 10 or line[8:9] != b" ":
        return None
    data = line[9:-1]
    try:
        if int(line[:8], 16) != zlib.crc32(data):
            return None
        record = json.loads(data.decode("utf-8"))
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


class Journal:
    """
    The file C{<folder>/<name>.journal} (C{folder} L{None}: kept in memory
    only, for tests). The folder is created 0700, the file 0600: residents'
    data.
    """

    log = Logger()

    def __init__(self, folder, name, *, fsync=os.fsync):
        self.folder = folder
        self.name = name
        self.path = os.path.join(folder, name + ".journal") if folder else None
        self.fsync = fsync
        self._fd = None
        self.appended = 0

    def open(self) -> list:
        """Open for appending; return the records already in the file, in order."""
        if self.path is None:
            return []
        os.makedirs(self.folder, mode=0o700, exist_ok=True)
        os.chmod(self.folder, 0o700)
        records = []
        try:
            with open(self.path, "rb") as f:
                lines = f.readlines()
        except FileNotFoundError:
            lines = []
        for number, line in enumerate(lines, 1):
            record = decode(line)
            if record is None:
                self.log.error("journal {path}: line {n} is torn or damaged, skipped "
                               "({size} bytes)", path=self.path, n=number, size=len(line))
                continue
            records.append(record)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        if lines and not lines[-1].endswith(b"\n"):
            os.write(self._fd, b"\n")  # the next record starts on a line of its own
        return records

    def append(self, record: dict, durable: bool = False) -> None:
        """Write C{record}; with C{durable}, also to the disk (fsync) before returning."""
        self.appended += 1
        if self._fd is None:
            return
        os.write(self._fd, encode(record))
        if durable:
            self.fsync(self._fd)

    def rewrite(self, records) -> None:
        """Replace the file, atomically, by one holding just C{records}."""
        if self.path is None:
            return
        temporary = self.path + ".new"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"".join(encode(r) for r in records))
            self.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, self.path)
        folder = os.open(self.folder, os.O_RDONLY)
        try:
            self.fsync(folder)
        finally:
            os.close(folder)
        old, self._fd = self._fd, os.open(self.path, os.O_WRONLY | os.O_APPEND)
        if old is not None:
            os.close(old)

    def sync(self) -> None:
        if self._fd is not None:
            self.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            self.sync()
            os.close(self._fd)
            self._fd = None


def describe(failure) -> str:
    """
    What went wrong, without the statement's parameters (SQLAlchemy puts
    them in its messages, and they hold residents' numbers).
    """
    error = failure.value
    orig = getattr(error, "orig", None)
    text = str(orig if orig is not None else error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:200] if text else ''}"


class WriteBehind:
    """
    Keeps records in a L{Journal} and writes them to C{database} behind the
    caller, in order.

    @param apply: C{apply(connection, records)} writes records (dicts) in
        one transaction, on the database's thread.
    @param state: C{state()} -> a dict kept in the journal's header when it
        is rewritten (e.g. the last id given out).
    @param delay: seconds records gather before a write.
    @param compact_after: committed records after which the file is rewritten.

    @ivar listeners: told C{(seconds, records, committed)} after each
        write: how long the database took (asked to answered, on C{clock}),
        how many records, and whether it committed them.
    """

    log = Logger()

    def __init__(self, journal, database, apply, *, clock, state=dict, delay=0.0,
                 retry_delay=0.5, max_retry_delay=30.0, batch=200, compact_after=1000):
        self.journal = journal
        self.database = database
        self.apply = apply
        self.state = state
        self.clock = clock
        self.delay = delay
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self.batch = batch
        self.compact_after = compact_after
        self.header: dict = {}
        self.records: list = []
        self._replayed = False     # nothing is written before the journal is replayed
        self._told = False
        self._start_timer = None
        self._seq = 0
        self._queue: deque = deque()
        self._size = batch
        self._busy = False
        self._failures = 0
        self._timer = None
        self._idle: list = []
        self._committed = 0
        self._stopping = False
        self._began = 0.0
        self.listeners = Listeners()

    def start(self, read=None) -> defer.Deferred:
        """
        Replay the journal. Fires with C{(pending, header state, read(session))}:
        the records the database has not committed (they are written next),
        what the journal's header kept, and what C{read} found in the
        database in the same transaction.
        """
        try:
            records = self.journal.open()
        except OSError:
            return defer.fail()
        # Known before the database answers (it may not, for a while): the
        # records read, and the numbering, so that a record added meanwhile
        # never takes a number the journal has used.
        self.records = records
        for record in records:
            if "header" in record:
                self._seq = max(self._seq, int(record.get("next", 1)) - 1)
            else:
                self._seq = max(self._seq, int(record.get("seq", 0)))

        def work(session):
            JournalMark.__table__.create(bind=session.connection(), checkfirst=True)
            mark = session.execute(select(JournalMark.seq).where(
                JournalMark.name == self.journal.name)).scalar_one_or_none() or 0
            return mark, (read(session) if read is not None else None)

        def replay(result):
            mark, found = result
            header = {}
            old = []
            for record in records:
                if "header" in record:
                    header = record.get("state") or {}
                    self._seq = max(self._seq, int(record.get("next", 1)) - 1)
                    continue
                seq = int(record.get("seq", 0))
                self._seq = max(self._seq, seq)
                if seq > mark:
                    old.append(record)
            # Before what was added while the database had not answered.
            self._queue.extendleft(reversed(old))
            self._seq = max(self._seq, mark)
            self._replayed = True
            self.header = header
            if self._queue:
                self.log.warn("journal {name}: {n} record(s) not yet in the database, "
                              "writing them", name=self.journal.name, n=len(self._queue))
            self._compact()
            pending = list(self._queue)
            self._kick()
            return pending, header, found

        done = defer.Deferred()

        def attempt():
            d = defer.maybeDeferred(lambda: self.database.run(work))
            d.addCallbacks(replay, not_yet)
            d.addCallbacks(done.callback, done.errback)

        def not_yet(failure):
            # Nothing is written before the journal is replayed; the database
            # is asked again until it answers.
            if not self._told:
                self._told = True
                self.log.critical("journal {name}: the database cannot be read yet ({error}); "
                                  "asking again until it can", name=self.journal.name,
                                  error=failure.getErrorMessage())
            self._start_timer = self.clock.callLater(self.retry_delay * 4, attempt)
            return defer.Deferred()   # never fires: the next attempt fires done

        attempt()
        return done

    def add(self, record: dict, durable: bool = False) -> None:
        """Journal C{record} now; write it to the database behind."""
        self._seq += 1
        record["seq"] = self._seq
        self.journal.append(record, durable)
        self._queue.append(record)
        self._kick(self.delay)

    def pending(self) -> int:
        return len(self._queue)

    @property
    def failures(self) -> int:
        """Writes the database has refused in a row (0: it takes them)."""
        return self._failures

    def _kick(self, delay=0.0):
        if not self._replayed or self._busy or self._timer is not None or not self._queue:
            return
        if delay > 0:
            self._timer = self.clock.callLater(delay, self._write)
        else:
            self._write()

    def flush(self) -> defer.Deferred:
        """Fires once everything journaled so far is in the database."""
        if not self._queue and not self._busy:
            return defer.succeed(None)
        d = defer.Deferred()
        self._idle.append(d)
        if self._timer is not None and self._failures == 0:
            self._timer.cancel()
            self._write()
        return d

    def _write(self):
        self._timer = None
        if not self._queue:
            return self._settled()
        self._busy = True
        self._began = self.clock.seconds()
        records = list(islice(self._queue, self._size))
        last, name = records[-1]["seq"], self.journal.name

        def work(session):
            connection = session.connection()
            self.apply(connection, records)
            mark = session.get(JournalMark, name)
            if mark is None:
                session.add(JournalMark(name=name, seq=last))
            else:
                mark.seq = max(mark.seq, last)

        try:
            d = self.database.run(work)
        except Exception:
            d = defer.fail()
        d.addCallbacks(self._written, self._failed, callbackArgs=(len(records),))

    def _written(self, _, count):
        self.listeners(self.clock.seconds() - self._began, count, True)
        for _ in range(count):
            self._queue.popleft()
        self._busy = False
        if self._failures:
            self.log.warn("journal {name}: the database takes records again",
                          name=self.journal.name)
        self._failures, self._size = 0, self.batch
        self._committed += count
        if self._committed >= max(self.compact_after, len(self._queue)):
            self._compact()
        self._write()

    def _failed(self, failure):
        self.listeners(self.clock.seconds() - self._began, min(self._size, len(self._queue)),
                       False)
        self._busy = False
        self._failures += 1
        self._size = max(1, self._size // 2)  # a bad record is cornered, not repeated with all
        if self._stopping:
            self.log.critical("journal {name}: {n} record(s) not in the database at stop "
                              "({error}); they are written at the next start",
                              name=self.journal.name, n=len(self._queue),
                              error=describe(failure))
            return self._settled(force=True)
        delay = min(self.retry_delay * 2 ** (self._failures - 1), self.max_retry_delay)
        self.log.emit(LogLevel.critical if self._failures in (1, 10) or self._failures % 100 == 0
                      else LogLevel.warn,
                      "journal {name}: the database refused {n} waiting record(s) ({error}); "
                      "they are kept in the journal, retrying in {delay:.1f} s",
                      name=self.journal.name, n=len(self._queue), error=describe(failure),
                      delay=delay)
        self._timer = self.clock.callLater(delay, self._write)

    def _settled(self, force=False):
        if self._queue and not force:
            return
        idle, self._idle = self._idle, []
        for d in idle:
            d.callback(None)

    def _compact(self):
        """Rewrite the file with the header and what is still pending."""
        try:
            header = {"header": 1, "next": self._seq + 1, "state": self.state()}
            self.journal.rewrite([header] + list(self._queue))
            self._committed = 0
        except Exception:
            self.log.failure("journal {name}: could not be compacted", name=self.journal.name)

    def stop(self) -> defer.Deferred:
        """
        One last try to write what waits (no retries: the journal keeps what
        the database refuses, for the next start); then close the journal.
        """
        if self._start_timer is not None and self._start_timer.active():
            self._start_timer.cancel()
        self._stopping = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
            self._timer = None
        d = defer.Deferred()
        self._idle.append(d)
        if not self._busy:
            self._write()
        d.addBoth(lambda _: self.journal.close())
        return d
