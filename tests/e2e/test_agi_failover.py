"""
FastAGI failover in the dialplan (switchboard-agi) against the real Asterisk:
the second server of SWITCHBOARD_AGI takes the call when the first cannot be
reached, and what that costs the caller, measured.

Run with C{pytest -s} to see the figures. The "host that does not answer"
is a listening socket whose accept queue is full: Linux drops the SYNs, as a
dead host's network does, and res_agi's connect waits its 2 s
(MAX_AGI_CONNECT) for it.
"""

from __future__ import annotations

import socket
import statistics
import threading
import time

import pytest

from tests.conftest import wait_for

pytestmark = pytest.mark.asterisk

LAB_AGI = "agi://127.0.0.1:4573"  # lab/extensions.conf's


class Answering:
    """A FastAGI port that notes when each session arrives, reads it and closes it."""

    def __init__(self):
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(16)
        self.port = self.socket.getsockname()[1]
        self.arrived: list[float] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            self.arrived.append(time.monotonic())
            with connection:
                connection.settimeout(5)
                data = b""
                while b"\n\n" not in data:
                    chunk = connection.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            # Closed without a command: the AGI ends, AGISTATUS=SUCCESS.

    def close(self):
        self.socket.close()


def refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again: a connect is refused


class Silent:
    """A port whose SYNs go unanswered: a listener with a full accept queue."""

    def __init__(self):
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(0)
        self.port = self.socket.getsockname()[1]
        self.fillers = []
        for _ in range(3):  # the queue of a backlog-0 listener holds one or two
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", self.port))
            self.fillers.append(filler)
        time.sleep(0.2)
        probe = socket.socket()
        probe.settimeout(0.5)
        try:
            probe.connect(("127.0.0.1", self.port))
            self.works = False
        except (socket.timeout, OSError):
            self.works = True
        finally:
            probe.close()

    def close(self):
        for s in self.fillers + [self.socket]:
            s.close()


@pytest.fixture
def agi_servers(asterisk):
    """Set SWITCHBOARD_AGI for the test (a global, at run time); the lab's after it."""
    def use(*urls):
        asterisk.cli("dialplan set global SWITCHBOARD_AGI " + "&".join(urls))
    yield use
    asterisk.cli(f"dialplan set global SWITCHBOARD_AGI {LAB_AGI}")


def time_to_session(asterisk, server: Answering) -> float:
    """Originate a call into switchboard-agi; seconds until the session reached C{server}."""
    before = len(server.arrived)
    started = time.monotonic()
    asterisk.cli("channel originate Local/failover-probe@switchboard-lab-test "
                 "application Wait 10")  # longer than any try
    wait_for(lambda: len(server.arrived) > before, 15, interval=0.01,
             message="the FastAGI session")
    return server.arrived[before] - started


def test_the_next_server_takes_the_call_and_what_it_costs(asterisk, agi_servers):
    answering = Answering()
    silent = Silent()
    try:
        assert silent.works, "the silent port answered: the measurement would mean nothing"
        figures = {}
        for name, first in (("direct", None), ("refused", refused_port()),
                            ("no answer", silent.port)):
            urls = [f"agi://127.0.0.1:{answering.port}"]
            if first is not None:
                urls.insert(0, f"agi://127.0.0.1:{first}")
            agi_servers(*urls)
            figures[name] = [time_to_session(asterisk, answering) for _ in range(3)]
            time.sleep(0.3)
        direct = statistics.median(figures["direct"])
        refused = statistics.median(figures["refused"]) - direct
        silent_cost = statistics.median(figures["no answer"]) - direct
        print(f"\nsession reached after (median of 3, originate included): direct "
              f"{direct * 1000:.0f} ms; first server refused: +{refused * 1000:.0f} ms; "
              f"first server not answering: +{silent_cost * 1000:.0f} ms")
        print({k: [round(v, 3) for v in vs] for k, vs in figures.items()})
        assert refused < 0.5
        assert 1.8 < silent_cost < 2.8  # res_agi's MAX_AGI_CONNECT, 2 s an address
    finally:
        answering.close()
        silent.close()


def test_a_server_that_took_the_call_is_not_followed_by_the_next(asterisk, agi_servers):
    first, second = Answering(), Answering()
    try:
        agi_servers(f"agi://127.0.0.1:{first.port}", f"agi://127.0.0.1:{second.port}")
        time_to_session(asterisk, first)
        time.sleep(1.5)
        assert (len(first.arrived), len(second.arrived)) == (1, 0)
    finally:
        first.close()
        second.close()
