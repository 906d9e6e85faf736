"""
FastAGI against the real lab Asterisk: how the server's conventions look
from the dialplan (AGISTATUS, SWITCHBOARD_RESULT) and how a hangup arrives.

The server runs in a child process (this module, run as a program).
"""

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from tests.conftest import PROJECT, wait_for

pytestmark = pytest.mark.asterisk

SCRIPTS = ("lab-ok", "lab-boom", "lab-missing-prompt", "lab-nosuch")


def test_conventions_seen_from_the_dialplan(asterisk, tmp_path):
    results = tmp_path / "results.json"
    server = subprocess.Popen([sys.executable, "-m", "tests.test_agi_lab", str(results)],
                              cwd=PROJECT, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "listening"
        with _AMI(asterisk) as ami:
            for script in SCRIPTS:
                asterisk.cli(f"channel originate Local/agi-{script}@switchboard-lab-test "
                             "application Wait 5")
            # ;1 hangs up after 2 s while the handler waits for a digit.
            asterisk.cli("channel originate Local/agi-lab-hang@switchboard-lab-test "
                         "application Wait 2")
            events = ami.user_events(len(SCRIPTS), timeout=30)
        wait_for(lambda: results.exists() and "hang" in json.loads(results.read_text()), 30,
                 message="the handlers' results")
    finally:
        server.terminate()
        server.wait(10)
    outcome = {e["Script"]: (e["Status"], e.get("Result", "")) for e in events}
    assert outcome["lab-ok"] == ("SUCCESS", "OK")
    assert outcome["lab-boom"] == ("SUCCESS", "ERROR")
    assert outcome["lab-nosuch"] == ("SUCCESS", "NOSCRIPT")
    # Asterisk marks the whole AGI run FAILURE once a channel command failed
    # (here a missing prompt), whatever the handler sets afterwards.
    assert outcome["lab-missing-prompt"] == ("FAILURE", "OK")
    r = json.loads(results.read_text())
    assert r["missing-prompt"] == "AGIHangup"
    assert r["hang"] == {"wait": "AGIHangup", "when_hungup": True, "hungup": True}


class _AMI:
    """
    Just enough of the manager protocol to see the lab dialplan's
    C{UserEvent(SwitchboardTest,...)} lines run (as C{Newexten} events: the
    lab's manager user does not read the C{user} class).
    """

    def __init__(self, asterisk):
        self._sock = socket.create_connection(asterisk.ami, timeout=10)
        self._buffer = b""
        self._sock.sendall(
            f"Action: Login\r\nUsername: {asterisk.ami_user}\r\n"
            f"Secret: {asterisk.ami_secret}\r\nEvents: dialplan\r\n\r\n".encode()
        )

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._sock.close()

    def user_events(self, count, timeout):
        found = []
        deadline = time.monotonic() + timeout
        while len(found) < count and time.monotonic() < deadline:
            self._sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                chunk = self._sock.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            self._buffer += chunk
            *blocks, self._buffer = self._buffer.split(b"\r\n\r\n")
            for block in blocks:
                headers = dict(
                    line.split(": ", 1) for line in block.decode(errors="replace").split("\r\n")
                    if ": " in line
                )
                data = headers.get("AppData", "")
                if headers.get("Application") == "UserEvent" and data.startswith(
                    "SwitchboardTest,"
                ):
                    found.append(dict(
                        item.split(": ", 1) for item in data.split(",")[1:] if ": " in item
                    ))
        return found


# The server side, run as: python -m tests.test_agi_lab RESULTS.json


def _serve(path):
    from twisted.internet import reactor

    from switchboard.agi import AGIHangup, FastAGIFactory

    results = {}

    def save(key, value):
        results[key] = value
        with open(path + ".tmp", "w") as f:
            json.dump(results, f)
        os.replace(path + ".tmp", path)

    async def ok(session):
        await session.answer()
        await session.set_variable("SWITCHBOARD_RESULT", "OK")

    def boom(session):
        raise RuntimeError("deliberate failure for the lab test")

    async def missing_prompt(session):
        try:
            await session.stream_file("switchboard-no-such-prompt")
        except AGIHangup as e:
            save("missing-prompt", type(e).__name__)
        await session.set_variable("SWITCHBOARD_RESULT", "OK")

    async def hang(session):
        outcome = {"when_hungup": False}

        def hung(_):
            outcome["when_hungup"] = True

        session.when_hungup().addCallback(hung)
        try:
            await session.wait_for_digit(-1)
            outcome["wait"] = "digit"
        except AGIHangup as e:
            outcome["wait"] = type(e).__name__
        try:  # HANGUP comes after the failed command's reply
            await session.channel_status()
        except AGIHangup:
            pass
        outcome["hungup"] = session.hungup
        save("hang", outcome)

    handlers = {"lab-ok": ok, "lab-boom": boom, "lab-missing-prompt": missing_prompt,
                "lab-hang": hang}
    reactor.listenTCP(4573, FastAGIFactory(handlers), interface="127.0.0.1")
    print("listening", flush=True)
    reactor.run()


if __name__ == "__main__":
    _serve(sys.argv[1])
