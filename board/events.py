"""
The browsers watching the board, over server-sent events: each change of an
alarm is turned into bytes once and written to every one of them (fifty
duty screens cost fifty writes, not fifty JSON encodings).
"""

from __future__ import annotations

import json

from twisted.internet import task
from twisted.logger import Logger


def frame(event: str, payload) -> bytes:
    """One server-sent event: C{event: NAME} and its JSON on one C{data:} line."""
    data = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return f"event: {event}\ndata: {data}\n\n".encode("utf-8")


class Watchers:
    """
    The open event streams (Twisted requests left open), each with the
    session it was opened under. Every C{heartbeat} seconds each stream
    gets a comment (proxies and browsers keep it open) and those whose
    session has ended (logged out, expired, staff removed) are closed.

    @param alive: C{alive(session)} -> whether the session is still open.
    """

    log = Logger()

    def __init__(self, clock, alive, heartbeat: float = 15.0, limit: int = 500):
        self.clock = clock
        self.alive = alive
        self.limit = limit
        self._streams: dict = {}    # request -> session
        self._beat = task.LoopingCall(self.beat)
        self._beat.clock = clock
        self.heartbeat = heartbeat
        self.sent = 0               # frames written (all streams), for tests and metrics

    def start(self) -> None:
        if not self._beat.running:
            self._beat.start(self.heartbeat, now=False)

    def stop(self) -> None:
        if self._beat.running:
            self._beat.stop()
        for request in list(self._streams):
            self._close(request)

    def __len__(self) -> int:
        return len(self._streams)

    def add(self, request, session, first: bytes) -> bool:
        """Keep C{request} open as a stream, starting with C{first}; False when full."""
        if len(self._streams) >= self.limit:
            return False
        self._streams[request] = session
        request.notifyFinish().addBoth(lambda _: self._streams.pop(request, None))
        request.write(b"retry: 2000\n\n" + first)
        return True

    def send(self, data: bytes) -> None:
        """Write one frame to every stream."""
        for request in list(self._streams):
            try:
                request.write(data)
                self.sent += 1
            except Exception:
                self.log.failure("writing to a board stream")
                self._streams.pop(request, None)

    def beat(self) -> None:
        for request, session in list(self._streams.items()):
            if not self.alive(session):
                self._close(request)
            else:
                request.write(b": keepalive\n\n")

    def _close(self, request) -> None:
        self._streams.pop(request, None)
        try:
            request.finish()
        except Exception:
            pass  # the connection had gone
