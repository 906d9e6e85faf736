"""
A local append-only journal: what must not be lost while the database
cannot take it.

One record a line: C{<crc32 hex> <JSON>}. A line is one C{write()} on the
calling thread (a few microseconds: the kernel's page cache keeps it when
the process is killed); C{durable=True} also C{fsync}s, so the record
survives a power cut. On opening, every whole line is read back; a torn or
damaged line (the last one, after a crash) is skipped with a log line and
never misread. Once its user has put everything in the database, the
journal is compacted: written anew, with only the records still wanted,
to a temporary file renamed over the old one.

Residents' data: the folder is created 0700 and the files 0600.
"""

from __future__ import annotations

import json
import os
import zlib

from twisted.logger import Logger


class Journal:
    """
    The journal at C{path}.

    @ivar records: the records read back when it was opened, in order.
    """

    log = Logger()

    def __init__(self, path: str):
        self.path = path
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, mode=0o700, exist_ok=True)
        self.records = self._read()
        self._file = self._open(path)
        self.appended = 0

    @staticmethod
    def _open(path):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        os.fchmod(fd, 0o600)
        return os.fdopen(fd, "ab", buffering=0)

    def _read(self) -> list:
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return []
        records = []
        for number, line in enumerate(data.split(b"\n"), 1):
            if not line:
                continue
            record = _decode(line)
            if record is None:
                self.log.warn("journal {path}: line {n} is torn or damaged, skipped",
                              path=self.path, n=number)
                continue
            records.append(record)
        return records

    def append(self, record, durable: bool = False) -> None:
        """
        Write C{record} (JSON-serialisable) now; with C{durable}, on the
        disk itself before returning.

        @raise OSError: it could not be written (disk full, read-only).
        """
        self._file.write(_encode(record))
        self.appended += 1
        if durable:
            os.fsync(self._file.fileno())

    def compact(self, records) -> None:
        """Replace the journal with C{records} (atomically: all old or all new)."""
        temporary = self.path + ".new"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(b"".join(_encode(r) for r in records))
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, self.path)
        self._file.close()
        self._file = self._open(self.path)
        self.appended = 0

    def close(self) -> None:
        self._file.close()


def _encode(record) -> bytes:
    body = json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return b"%08x %s\n" % (zlib.crc32(body), body)


def _decode(line: bytes):
    crc, _, body = line.partition(b" ")
    try:
        if int(crc, 16) != zlib.crc32(body):
            return None
        return json.loads(body)
    except ValueError:
        return None


def folder_for(database_url: str, config_path: str) -> str:
    """
    Where the server keeps its journals: beside an SQLite database file;
    otherwise in systemd's C{$STATE_DIRECTORY}, or C{var/} beside the
    configuration's folder.
    """
    if database_url.startswith("sqlite:///") and ":memory:" not in database_url:
        path = database_url[len("sqlite:///"):].split("?", 1)[0]
        return os.path.join(os.path.dirname(os.path.abspath(path)), "journal")
    state = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    if state:
        return os.path.join(state, "journal")
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(config_path))), "var",
                        "journal")
