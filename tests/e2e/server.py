"""Running the real C{switchboard run} against the lab Asterisk in end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime

from tests.conftest import PROJECT, port_open, wait_for

CONFIG = """\
agi: {{listen: 127.0.0.1, port: {port}, allow: [127.0.0.1], idle_timeout: 300,
       key: lab-agi-key-not-for-production}}
ami: {{host: 127.0.0.1, port: 5038, username: switchboard, secret: lab-secret-not-for-production}}
database: {database}
numbers: {{region: CN, area_code: "591"}}
timezone: Asia/Shanghai
trunks: {{default: "PJSIP/{{number}}"}}
hotline_number: "12345"
routing: {routing}
alarm: {alarm}
"""


def write_private(path: str, text: str) -> None:
    """Write C{path} readable by its owner only: it holds the AMI secret."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


class Server:
    """A C{switchboard run} process with its own configuration and database."""

    def __init__(self, workdir, routing=None, alarm=None, extra: str = "", *, port: int = 4573,
                 database: str | None = None):
        """
        C{extra}: more lines of switchboard.yaml (e.g. C{speech:}); C{port}:
        its FastAGI port; C{database}: a URL (default: SQLite in C{workdir}).
        """
        self.workdir = str(workdir)
        self.port = port
        self.config = os.path.join(self.workdir, "switchboard.yaml")
        self.db = os.path.join(self.workdir, "switchboard.db")
        self.logfile = os.path.join(self.workdir, "server.log")
        write_private(self.config, CONFIG.format(
            port=port, database=database or f"sqlite:///{self.db}",
            routing=routing or os.path.join(PROJECT, "config", "routing.yaml"),
            alarm=alarm or os.path.join(PROJECT, "config", "alarm.yaml")) + extra
            # Renderings go where the lab Asterisk reads sounds, never to the host's.
            + ("" if "speech:" in extra else f"speech: {{sounds_dir: {lab_sounds()}}}\n"))
        self.process = None

    def cli(self, *args, check=True) -> str:
        result = subprocess.run([sys.executable, "-m", "switchboard.cli", "--config", self.config,
                                 *args], cwd=PROJECT, capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise AssertionError(f"switchboard {' '.join(args)} failed:\n{result.stderr}")
        return result.stdout

    def start(self, ami: bool = True, env: dict | None = None) -> "Server":
        """
        Start it; wait until it serves (and, with C{ami}, until AMI is
        connected). C{env} is added to its environment.
        """
        if port_open("127.0.0.1", self.port):
            raise AssertionError(f"port {self.port} is taken: is another switchboard running?")
        log = open(self.logfile, "a")
        # The log file is appended to across restarts: read this run's part.
        begun = len(self.log())
        self.process = subprocess.Popen(
            [sys.executable, "-m", "switchboard.cli", "--config", self.config, "run"],
            cwd=PROJECT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=dict(os.environ, **(env or {})))

        def ready():
            text = self.log()[begun:]
            return ("AMI connected" in text or not ami) and "switchboard ready" in text

        wait_for(ready, 30, message="the server to be ready")
        return self

    def rewrite_config(self, old: str, new: str) -> None:
        """Change C{old} to C{new} in this server's configuration (the fault a test injects)."""
        with open(self.config, encoding="utf-8") as f:
            text = f.read()
        assert old in text, f"{old!r} is not in {self.config}"
        with open(self.config, "w", encoding="utf-8") as f:
            f.write(text.replace(old, new))

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


def alarm_server(tmp_path_factory, name, alarm_text) -> Server:
    """A server of its own (not started): C{alarm_text} as its alarm.yaml, the sample registry."""
    workdir = tmp_path_factory.mktemp(name)
    alarm = workdir / "alarm.yaml"
    alarm.write_text(alarm_text)
    server = Server(workdir, alarm=str(alarm))
    server.cli("households", "import", os.path.join(PROJECT, "config", "households.csv"))
    return server


def start_in_step(server) -> Server:
    """Start C{server} and wait until AstDB holds its registry."""
    server.start()
    wait_for(lambda: "AstDB swb_ring" in server.log(), 20, message="the AstDB sync")
    return server


def lab_sounds() -> str:
    """Where the lab Asterisk (in its chroot) reads sounds, seen from the host."""
    root = os.environ.get("SWITCHBOARD_LAB_ROOT", "/var/lib/switchboard/asterisk-root")
    return os.path.join(root, "usr", "share", "asterisk", "sounds")


def first_invite_sent(caller, timeout: float = 10) -> datetime:
    """When the SIPp C{caller} sent its INVITE (waiting for it, bounded)."""
    return wait_for(lambda: [at for at, way, line in caller.messages()
                             if way == "sent" and line.startswith("INVITE")], timeout,
                    message="the caller's INVITE")[0]


def wait_log(server: Server, text: str, timeout: float = 20) -> None:
    wait_for(lambda: text in server.log(), timeout, message=repr(text))


def sleep(seconds: float) -> None:
    """Real time passes in end-to-end tests: Asterisk and the phones run in it."""
    time.sleep(seconds)


class FakeSystemd:
    """
    systemd's part for one server, played by the test: the C{NOTIFY_SOCKET}
    it listens on and the watchdog it keeps. L{watch} does what systemd
    does once C{watchdog_sec} have passed without a C{WATCHDOG=1} (counted
    from C{READY=1}): C{watchdog_signal} then C{SIGCONT}, and C{SIGKILL}
    C{abort_sec} later if the process is still there.
    """

    def __init__(self, workdir, watchdog_sec: float, watchdog_signal=signal.SIGABRT,
                 abort_sec: float = 2):
        self.watchdog_sec = watchdog_sec
        self.watchdog_signal = watchdog_signal
        self.abort_sec = abort_sec
        self.path = os.path.join(str(workdir), "notify")
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind(self.path)
        self._socket.settimeout(0.05)
        self.received: list[tuple[float, str]] = []   # (monotonic time, message)
        self.killed_at: datetime | None = None        # when the watchdog signal went
        self.forced = False                           # SIGKILL was needed
        self._done = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def environment(self) -> dict:
        return {"NOTIFY_SOCKET": self.path, "WATCHDOG_USEC": str(int(self.watchdog_sec * 1e6))}

    def _read(self):
        while not self._done.is_set():
            try:
                data = self._socket.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            self.received.append((time.monotonic(), data.decode()))

    def times(self, message: str) -> list[float]:
        return [at for at, text in list(self.received) if text == message]

    def next(self, message: str, timeout: float = 20) -> float:
        """Wait for the next C{message} from now on; return when it came."""
        seen = len(self.times(message))
        return wait_for(lambda: self.times(message)[seen:] and self.times(message)[seen],
                        timeout, interval=0.01, message=message)

    def watch(self, process) -> threading.Thread:
        """Keep the watchdog over C{process} (in a thread, until it is dead)."""
        def run():
            while process.poll() is None and not self._done.is_set():
                fed = self.times("READY=1")[-1:] + self.times("WATCHDOG=1")[-1:]
                if fed and time.monotonic() - max(fed) > self.watchdog_sec:
                    process.send_signal(self.watchdog_signal)
                    process.send_signal(signal.SIGCONT)
                    self.killed_at = datetime.now()
                    try:
                        process.wait(self.abort_sec)
                    except subprocess.TimeoutExpired:
                        self.forced = True
                        process.kill()
                        process.wait()
                    return
                time.sleep(0.01)
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    def close(self):
        self._done.set()
        self._reader.join(1)
        self._socket.close()


def fastagi_sessions(port: int = 4573) -> int:
    """
    The TCP connections established to C{port} on this host (namespace),
    counted on the listening side: they are there as soon as Asterisk has
    connected, accepted by the server or still waiting in its backlog.
    """
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except FileNotFoundError:
            continue
        for row in rows:
            local, _, state = row.split()[1:4]
            if int(local.rsplit(":", 1)[1], 16) == port and state == "01":
                count += 1
    return count
