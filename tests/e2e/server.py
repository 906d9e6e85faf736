"""Running the real C{switchboard run} against the lab Asterisk in end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from tests.conftest import PROJECT, port_open, wait_for

CONFIG = """\
agi: {{listen: 127.0.0.1, port: 4573, allow: [127.0.0.1], idle_timeout: 300,
       key: lab-agi-key-not-for-production}}
ami: {{host: 127.0.0.1, port: 5038, username: switchboard, secret: lab-secret-not-for-production}}
database: sqlite:///{db}
numbers: {{region: CN, area_code: "591"}}
timezone: Asia/Shanghai
trunks: {{default: "PJSIP/{{number}}"}}
hotline_number: "12345"
routing: {routing}
alarm: {alarm}
"""


class Server:
    """A C{switchboard run} process with its own configuration and database."""

    def __init__(self, workdir, routing=None, alarm=None):
        self.workdir = str(workdir)
        self.config = os.path.join(self.workdir, "switchboard.yaml")
        self.db = os.path.join(self.workdir, "switchboard.db")
        self.logfile = os.path.join(self.workdir, "server.log")
        with open(self.config, "w") as f:
            f.write(CONFIG.format(db=self.db,
                                  routing=routing or os.path.join(PROJECT, "config", "routing.yaml"),
                                  alarm=alarm or os.path.join(PROJECT, "config", "alarm.yaml")))
        self.process = None

    def cli(self, *args, check=True) -> str:
        result = subprocess.run([sys.executable, "-m", "switchboard.cli", "--config", self.config,
                                 *args], cwd=PROJECT, capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise AssertionError(f"switchboard {' '.join(args)} failed:\n{result.stderr}")
        return result.stdout

    def start(self, ami: bool = True) -> "Server":
        """Start it; wait until it serves (and, with C{ami}, until AMI is connected)."""
        if port_open("127.0.0.1", 4573):
            raise AssertionError("port 4573 is taken: is another switchboard running?")
        log = open(self.logfile, "a")
        # The log file is appended to across restarts: read this run's part.
        begun = len(self.log())
        self.process = subprocess.Popen(
            [sys.executable, "-m", "switchboard.cli", "--config", self.config, "run"],
            cwd=PROJECT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

        def ready():
            text = self.log()[begun:]
            return ("AMI connected" in text or not ami) and "switchboard ready" in text

        wait_for(ready, 30, message="the server to be ready")
        return self

    def log(self) -> str:
        with open(self.logfile, encoding="utf-8", errors="replace") as f:
            return f.read()

    def signal(self, signum) -> None:
        self.process.send_signal(signum)

    def stop(self, timeout: float = 15) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError("switchboard did not stop on SIGTERM")

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def wait_log(server: Server, text: str, timeout: float = 20) -> None:
    wait_for(lambda: text in server.log(), timeout, message=repr(text))


def sleep(seconds: float) -> None:
    """Real time passes in end-to-end tests: Asterisk and the phones run in it."""
    time.sleep(seconds)
