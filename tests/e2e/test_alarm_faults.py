"""
Faults injected into a running #9 alarm on the lab Asterisk: the AMI link
cut (a proxy the test controls between the server and Asterisk's AMI port).
Each test says which phones rang, when, and what is on record.
"""

import os
import re
import socket
import threading
import time
from datetime import datetime

import pytest

from tests.conftest import PROJECT, wait_for
from tests.e2e.server import Server, first_invite_sent

pytestmark = pytest.mark.asterisk

ALARM = """\
neighbours: {max: 10, ring_timeout: 20, confirm_within: 20, retry_unanswered: 0}
escalation:
  repeat_every: 0
  stages:
    - {name: duty officer, after: 60, phones: ["87650190"]}
    - {name: property security, after: 120, phones: ["87650191"]}
responder: {attempts: 3, digit_timeout: 4}
"""


class AMIProxy:
    """Forwards 127.0.0.1:PORT to Asterisk's AMI until cut; refuses while cut."""

    def __init__(self, target=("127.0.0.1", 5038)):
        self.target = target
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self.open = True
        self.flowing = True
        self.pairs = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.open:
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            self.pairs.append((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source, sink):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if self.flowing:
                    sink.sendall(data)   # frozen: swallowed, both ends stay open
        except OSError:
            pass
        for s in (source, sink):
            try:
                s.close()
            except OSError:
                pass

    def cut(self):
        """The link drops, and stays down."""
        self.open = False
        for pair in self.pairs:
            for s in pair:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self.pairs = []

    def freeze(self):
        """Nothing passes either way, and nothing is closed (a hung peer, a dead route)."""
        self.flowing = False

    def restore(self):
        self.open = True
        self.flowing = True

    def close(self):
        self.listener.close()


@pytest.fixture
def proxied_server(asterisk, sipp, tmp_path):
    proxy = AMIProxy()
    alarm = tmp_path / "alarm.yaml"
    alarm.write_text(ALARM)
    server = Server(tmp_path, alarm=str(alarm))
    server.rewrite_config("port: 5038", f"port: {proxy.port}")
    server.cli("households", "import", os.path.join(PROJECT, "config", "households.csv"))
    server.start()
    yield server, proxy
    server.stop()
    proxy.close()
    # Calls this alarm placed may still ring: ended while the test's phones
    # still answer (this fixture ends before the sipp one), so that no late
    # INVITE or CANCEL reaches the next test's phones.
    asterisk.hang_up_all()


def timeline(server, alarm_id):
    return server.cli("alarms", "show", str(alarm_id))


def test_the_ami_link_drops_and_the_duty_phone_is_rung_through_the_callers_line(
        proxied_server, sipp):
    server, proxy = proxied_server
    # Every phone this alarm rings has a SIPp phone of its own.
    ringing = [sipp.phone(f"876500{n:02d}", "ring", timeout_s=90) for n in range(2, 12)]
    duty = sipp.phone("87650190", "answer", ring_ms=500, keys="1", before_ms=3500,
                      timeout_s=90)
    caller = sipp.call("#9", "87650001", before_ms=300, hold_ms=40000, timeout_s=90)
    wait_for(lambda: all(p.invite_times() for p in ringing), 15, message="the neighbours")
    cut = datetime.now()
    proxy.cut()
    rang = wait_for(lambda: duty.invite_times(), 15, message="the duty phone without AMI")[0]
    silence = (rang - cut).total_seconds()
    print(f"AMI cut: the duty phone rang {silence:.2f} s after the link dropped")
    assert silence < 8.0
    alarm_id = int(re.findall(r"(?m)^\s+(\d+)\s+\d{4}-", server.cli("alarms"))[0])
    wait_for(lambda: re.search(r"confirmed\s+\+8659187650190", timeline(server, alarm_id)), 30,
             message="the duty officer's 1 without AMI")
    text = timeline(server, alarm_id)
    assert "placed through the caller's line (no AMI link)" in text
    # Attempts, not a line per retry: with the link still down, the timeline
    # does not grow.
    time.sleep(10)
    assert len(timeline(server, alarm_id).splitlines()) == len(text.splitlines()), text
    proxy.restore()
    caller.stop()
    time.sleep(0)


def test_the_ami_link_freezes_and_a_9_still_reaches_the_duty_phone_within_seconds(
        proxied_server, sipp):
    # A frozen link (Asterisk's manager hung, a half-open connection): the
    # server's Originates vanish without an answer and without an error.
    server, proxy = proxied_server
    neighbours = [sipp.phone(f"876500{n:02d}", "ring", timeout_s=90) for n in range(2, 12)]
    duty = sipp.phone("87650190", "answer", ring_ms=500, keys="1", before_ms=3500,
                      timeout_s=90)
    proxy.freeze()
    caller = sipp.call("#9", "87650001", before_ms=300, hold_ms=40000, timeout_s=90)
    dialled = first_invite_sent(caller)
    rang = wait_for(lambda: duty.invite_times(), 20, message="the duty phone")[0]
    silence = (rang - dialled).total_seconds()
    print(f"AMI frozen: the duty phone rang {silence:.2f} s after the #9 INVITE")
    # 0.5 s unacknowledged + 1.5 s unanswered Ping find the link frozen;
    # then the call waits for the caller's 3 s stay in the room to end.
    assert silence < 6.0, silence
    # No neighbour rang before it: their calls never reached Asterisk.
    assert not [p for p in neighbours if p.invite_times() and p.invite_times()[0] < rang]
    log = server.log()
    assert "frozen link" in log
    alarm_id = int(re.findall(r"(?m)^\s+(\d+)\s+\d{4}-", server.cli("alarms"))[0])
    wait_for(lambda: re.search(r"confirmed\s+\+8659187650190", timeline(server, alarm_id)), 30,
             message="the duty officer's 1")
    assert "placed through the caller's line (no AMI link)" in timeline(server, alarm_id)
    proxy.restore()
    caller.stop()
