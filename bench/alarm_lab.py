"""
The lab pieces of the #9 fan-out bench (L{bench.alarm_fanout}):

  - SIPp: long-lived neighbour phones that ring for as many calls as come,
    callers (an alarm the caller cancels with C{*}, a native ring-all the
    caller abandons), and readers of SIPp's C{-trace_msg} files, whose
    timestamps (one host clock) are what the bench measures with;
  - the C{switchboard run} under test, with its own configuration;
  - the lab Asterisk: its status, log and RTP port range.

Lab phone 8765NNNN listens on 127.0.0.1:(20000+NNNN), as the lab's
pjsip.conf expects.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from datetime import datetime

from lab.sipp import ASTERISK, dtmf_pcap

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAB = os.path.join(PROJECT, "lab", "asterisk-lab")
LAB_ROOT = os.environ.get("SWITCHBOARD_LAB_ROOT", "/var/lib/switchboard/asterisk-root")
LAB_LOG = os.path.join(LAB_ROOT, "var/log/asterisk/messages.log")

# The second lab Asterisk (several Asterisk servers): lab/asterisk-lab with
# these, on its own loopback address, from a root copied beside the first's.
SECOND = "127.0.0.2"
SECOND_ENV = {"SWITCHBOARD_LAB_ROOT": LAB_ROOT + "2", "SWITCHBOARD_LAB_SOURCE": LAB_ROOT,
              "SWITCHBOARD_LAB_ADDRESS": SECOND, "SWITCHBOARD_LAB_NAME": "b",
              "SWITCHBOARD_LAB_PEER": "127.0.0.1", "SWITCHBOARD_LAB_RTP": "30000-39999"}
SECOND_LOG = os.path.join(LAB_ROOT + "2", "var/log/asterisk/messages.log")

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

_SDP = """v=0
o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
"""

# The INVITE's branch: its CANCEL, and the ACK of a failure, must repeat it.
_INVITE_BRANCH = "z9hG4bK-[pid]-[call_number]-inv"


def _request(method, user, caller, cseq, *, branch="[branch]", dialog=False, sdp=False):
    uri = f"sip:{user}@[remote_ip]:[remote_port]"
    lines = [f"{method} {uri} SIP/2.0",
             f"Via: SIP/2.0/[transport] [local_ip]:[local_port];branch={branch}",
             f'From: "{caller}" <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]',
             f"To: <{uri}>" + ("[peer_tag_param]" if dialog else ""),
             "Call-ID: [call_id]",
             f"CSeq: {cseq} {method}",
             f"Contact: sip:{caller}@[local_ip]:[local_port]",
             "Max-Forwards: 70"]
    if sdp:
        lines += ["Content-Type: application/sdp", "Content-Length: [len]", "", _SDP]
    else:
        lines += ["Content-Length: 0", "", ""]
    return "\n".join(lines)


def _response(code, reason, cseq="[last_CSeq:]"):
    return "\n".join([f"SIP/2.0 {code} {reason}", "[last_Via:]", "[last_From:]",
                      "[last_To:];tag=[pid]SIPpTag01[call_number]", "[last_Call-ID:]", cseq,
                      "Contact: <sip:[local_ip]:[local_port];transport=[transport]>",
                      "Content-Length: 0", "", ""])


def _send(text, retrans=False, extra=""):
    attrs = ' retrans="500"' if retrans else ""
    return f"  <send{attrs}{extra}><![CDATA[\n{text}]]></send>"


def _scenario(name, steps):
    body = "\n".join(steps)
    return f'<?xml version="1.0" encoding="ISO-8859-1" ?>\n<scenario name="{name}">\n{body}\n</scenario>\n'


def phone_scenario() -> str:
    """A phone that rings (180) until the call is cancelled: one SIPp call per INVITE."""
    return _scenario("bench phone: rings until cancelled", [
        '  <recv request="INVITE" crlf="true">',
        '    <action><ereg regexp="[0-9]+" search_in="hdr" header="CSeq:" assign_to="cseq"/>'
        '</action>',
        '  </recv>',
        _send(_response(180, "Ringing")),
        '  <recv request="CANCEL" timeout="300000"/>',
        _send(_response(200, "OK")),
        # The INVITE's own CSeq, not the CANCEL's.
        _send(_response(487, "Request Terminated", cseq="CSeq: [$cseq] INVITE")),
        '  <recv request="ACK"/>',
    ])


def alarm_scenario(caller: str, before_ms: int, press_every_ms: int = 1000,
                   exten: str = "%239") -> str:
    """
    A resident C{caller} dials #9 (or C{exten}), is answered, presses C{*} after
    C{before_ms} (and again every C{press_every_ms} until the server hangs
    up: a key pressed before the caller is in the room is not heard), and
    takes the server's BYE.
    """
    star = f'<exec play_pcap_audio="{dtmf_pcap("*")}"/>'
    return _scenario("#9 alarm cancelled with *", [
        _send(_request("INVITE", exten, caller, 1, branch=_INVITE_BRANCH, sdp=True), True),
        '  <recv response="100" optional="true"/>',
        '  <recv response="180" optional="true"/>',
        '  <recv response="183" optional="true"/>',
        '  <recv response="200" rtd="true"/>',
        _send(_request("ACK", exten, caller, 1, dialog=True)),
        f'  <pause milliseconds="{before_ms}"/>',
        '  <label id="press"/>',
        f'  <nop><action>{star}</action></nop>',
        f'  <recv request="BYE" timeout="{press_every_ms}" ontimeout="press"/>',
        _send(_response(200, "OK")),
    ])


def native_scenario(caller: str, hold_ms: int) -> str:
    """A resident C{caller} dials *99 (the lab's native ring-all), hears it ring, hangs up."""
    return _scenario("*99 native ring-all, abandoned", [
        _send(_request("INVITE", "*99", caller, 1, branch=_INVITE_BRANCH, sdp=True), True),
        '  <recv response="100" optional="true"/>',
        '  <recv response="180" timeout="20000"/>',
        f'  <pause milliseconds="{hold_ms}"/>',
        _send(_request("CANCEL", "*99", caller, 1, branch=_INVITE_BRANCH), True),
        '  <recv response="200" optional="true"/>',
        '  <recv response="487"/>',
        _send(_request("ACK", "*99", caller, 1, branch=_INVITE_BRANCH, dialog=True)),
    ])


# Reading -trace_msg files ---------------------------------------------------

_START = re.compile(r"^-{10,} (\d{4}-\d\d-\d\d)[ \t](\d\d:\d\d:\d\d\.\d+)\n", re.M)
_RECORD = re.compile(r"(?:UDP|TCP) message (sent|received)[^\n]*\n\n([^\n]*)\n")
_CALL_ID = re.compile(r"^Call-ID:[ \t]*([^\r\n]+)\r?\n", re.M | re.I)
_FROM_USER = re.compile(r"^From:[^\r\n]*?<?sips?:([^@>;\r\n]+)@", re.M | re.I)


def _seconds(day, clock) -> float:
    return datetime.strptime(f"{day} {clock[:15]}", "%Y-%m-%d %H:%M:%S.%f").timestamp()


class Trace:
    """
    A SIPp C{-trace_msg} file read as it grows: C{calls} maps each Call-ID
    to {method or status code: time first seen} for each direction
    (C{"> INVITE"} received, C{"< 200"} sent); C{parties} maps it to its
    INVITE's (From user, Request-URI user): who called whom.
    """

    def __init__(self, path):
        self.path = path
        self.calls: dict = {}
        self.parties: dict = {}
        self._offset = 0

    def poll(self) -> dict:
        try:
            # No newline translation: offsets stay byte offsets.
            with open(self.path, encoding="latin-1", newline="") as f:
                f.seek(self._offset)
                text = f.read()
        except FileNotFoundError:
            return self.calls
        starts = list(_START.finditer(text))
        if not starts:
            return self.calls
        # Records before the last start are complete; the last one is read
        # again next time (taking it in twice is harmless: first times kept).
        self._offset += starts[-1].start()
        ends = [m.start() for m in starts[1:]] + [len(text)]
        for start, end in zip(starts, ends):
            record = text[start.end():end]
            m, call_id = _RECORD.match(record), _CALL_ID.search(record)
            if m is None or call_id is None:
                continue
            way, first = m.groups()
            words = first.split()
            if len(words) < 2:
                continue
            what = words[1] if words[0] == "SIP/2.0" else words[0]
            key = ("> " if way == "received" else "< ") + what
            call = call_id.group(1).strip()
            self.calls.setdefault(call, {}).setdefault(key, _seconds(*start.groups()))
            if what == "INVITE" and call not in self.parties:
                caller = _FROM_USER.search(record)
                self.parties[call] = (caller.group(1) if caller else "",
                                      words[1].split(":", 1)[-1].split("@", 1)[0])
        return self.calls


# Processes --------------------------------------------------------------------

class SippProcess:
    """One SIPp process (started by L{start}) and its trace."""

    def __init__(self, name, workdir, process):
        self.name = name
        self.process = process
        self.trace = Trace(os.path.join(workdir, f"{name}.messages"))

    def calls(self) -> dict:
        return self.trace.poll()

    def parties(self) -> dict:
        """Call-ID -> its INVITE's (From user, Request-URI user), as far as read."""
        self.trace.poll()
        return self.trace.parties

    def running(self) -> bool:
        return self.process.poll() is None

    def wait(self, timeout) -> int | None:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(name, workdir, scenario, port, media_port, *, remote=None, calls=1, timeout_s=None,
          extra=()) -> SippProcess:
    """Start SIPp with C{scenario} (text) on 127.0.0.1:C{port}, tracing every message."""
    binary = shutil.which("sipp")
    if binary is None:
        raise SystemExit("sipp is not installed (Debian package sip-tester)")
    path = os.path.join(workdir, f"{name}.xml")
    with open(path, "w") as f:
        f.write(scenario)
    argv = [binary, "-sf", path, "-i", "127.0.0.1", "-p", str(port), "-mi", "127.0.0.1",
            "-mp", str(media_port), "-m", str(calls), "-nostdin", "-trace_msg",
            "-message_file", os.path.join(workdir, f"{name}.messages"),
            "-trace_err", "-error_file", os.path.join(workdir, f"{name}.errors"), *extra]
    if timeout_s:
        argv += ["-timeout", f"{timeout_s}s"]
    if remote:
        argv.append(remote)
    log = open(os.path.join(workdir, f"{name}.out"), "w")
    try:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, cwd=workdir)
    finally:
        log.close()
    return SippProcess(name, workdir, process)


def phone(number, workdir) -> SippProcess:
    """The long-lived lab phone for C{number} (8765NNNN), ringing for every call."""
    n = int(number[-4:])
    return start(f"phone-{number}", workdir, phone_scenario(), 20000 + n, 42000 + 4 * n,
                 calls=10_000_000)


def caller(name, workdir, scenario, port, media_port, *, calls=1, timeout_s=60,
           extra=(), remote=ASTERISK) -> SippProcess:
    """A caller process placing C{calls} calls to the lab Asterisk (or the one at C{remote})."""
    return start(name, workdir, scenario, port, media_port, remote=remote, calls=calls,
                 timeout_s=timeout_s, extra=extra)


# The switchboard under test ------------------------------------------------------

def wait_for(predicate, timeout, interval=0.05):
    """Poll C{predicate} until it is true or C{timeout} s passed; its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


class Server:
    """
    A C{switchboard run} with its own workdir, database and alarm.yaml
    (C{alarm}). C{database}: a URL (default: SQLite in C{workdir});
    C{port}: its FastAGI port; C{extra}: more lines of switchboard.yaml.
    """

    def __init__(self, workdir: str, alarm: str, probe: str | None = None, *,
                 database: str | None = None, port: int = 4573, extra: str = ""):
        self.workdir = workdir
        # bench.alarm_probe's notes go there when the server stops.
        self.probe = probe
        self.db = os.path.join(workdir, "switchboard.db")
        self.url = database or f"sqlite:///{self.db}"
        self.port = port
        self._engine = None
        self.config = os.path.join(workdir, "switchboard.yaml")
        self.logfile = os.path.join(workdir, "server.log")
        alarm_path = os.path.join(workdir, "alarm.yaml")
        with open(alarm_path, "w") as f:
            f.write(alarm)
        # Readable by its owner only: it holds the AMI secret.
        fd = os.open(self.config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(CONFIG.format(database=self.url, port=port, alarm=alarm_path,
                                  routing=os.path.join(PROJECT, "config", "routing.yaml"))
                    + extra)
        self.process = None

    def cli(self, *args) -> str:
        result = subprocess.run([sys.executable, "-m", "switchboard.cli", "--config",
                                 self.config, *args], cwd=PROJECT, capture_output=True,
                                text=True, timeout=120)
        if result.returncode:
            raise SystemExit(f"switchboard {' '.join(args)} failed:\n{result.stderr}")
        return result.stdout

    def log(self) -> str:
        with open(self.logfile, encoding="utf-8", errors="replace") as f:
            return f.read()

    def start(self, synced: bool = True) -> None:
        """Start it; wait until it serves and (C{synced}: it leads) AstDB holds the registry."""
        with open(self.logfile, "a") as log:
            launcher = (["bench.alarm_probe", self.probe, "--"] if self.probe
                        else ["switchboard.cli"])
            self.process = subprocess.Popen(
                [sys.executable, "-m", *launcher, "--config", self.config, "run"],
                cwd=PROJECT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        ready = wait_for(lambda: self.process.poll() is not None or (
            "switchboard ready" in self.log() and ("AstDB swb_ring" in self.log() or not synced)),
            60, 0.2)
        if not ready or self.process.poll() is not None:
            raise SystemExit(f"switchboard did not start:\n{self.log()[-3000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def query(self, sql, *args) -> list:
        """Rows of C{sql} (C{?} for each of C{args}) read straight from the database."""
        if self.url.startswith("sqlite:///"):
            with sqlite3.connect(self.db, timeout=10) as db:
                return db.execute(sql, args).fetchall()
        if self._engine is None:
            from sqlalchemy import create_engine
            self._engine = create_engine(self.url, pool_size=1)
        with self._engine.connect() as connection:
            # psycopg's placeholders are %s.
            return [tuple(r) for r in connection.exec_driver_sql(sql.replace("?", "%s"),
                                                                 tuple(args)).fetchall()]

    def last_alarm(self) -> int:
        return self.query("SELECT max(id) FROM alarm")[0][0] or 0


# The lab Asterisk ---------------------------------------------------------------

def lab(*args, env=None) -> subprocess.CompletedProcess:
    """lab/asterisk-lab C{args}; C{env}: another lab Asterisk's (L{SECOND_ENV})."""
    return subprocess.run([LAB, *args], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, **(env or {})))


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def udp_ports_taken(ports) -> list:
    out = subprocess.run(["ss", "-lunH"], capture_output=True, text=True).stdout
    bound = {line.split()[3].rsplit(":", 1)[-1] for line in out.splitlines() if line.split()}
    return [p for p in ports if str(p) in bound]


def rtp_pairs() -> int:
    """RTP port pairs of the lab Asterisk (lab/asterisk/rtp.conf): one per SIP channel."""
    start, end = 10000, 20000  # Asterisk's defaults
    with open(os.path.join(PROJECT, "lab", "asterisk", "rtp.conf")) as f:
        for line in f:
            key, _, value = line.partition("=")
            if key.strip() == "rtpstart":
                start = int(value.split(";")[0])
            elif key.strip() == "rtpend":
                end = int(value.split(";")[0])
    return (end - start + 1) // 2


def log_size(path: str = LAB_LOG) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def log_problems(offset, path: str = LAB_LOG) -> list:
    """
    The lab Asterisk's errors and warnings logged after C{offset}: (count,
    message); C{path}: another lab Asterisk's log.
    """
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            f.seek(offset)
            text = f.read()
    except OSError:
        return []
    counts: dict = {}
    for line in text.splitlines():
        if "ERROR[" in line or "WARNING[" in line:
            message = line.split("] ", 1)[-1]
            message = message.split(": ", 1)[-1] if ".c:" in message else message
            counts[message[:100]] = counts.get(message[:100], 0) + 1
    return sorted(((n, m) for m, n in counts.items()), reverse=True)


class CpuWatch:
    """
    How busy the rest of the machine was while a bench ran: CPU time of the
    whole machine less this process's, its waited-for children's and the
    lab Asterisk's. Read L{others} after the children have been waited for.
    """

    def __init__(self):
        self._start = self._sample()

    @staticmethod
    def _sample():
        tick = os.sysconf("SC_CLK_TCK")
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        machine = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / tick
        ours = 0.0
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
            usage = resource.getrusage(who)
            ours += usage.ru_utime + usage.ru_stime
        for pid in os.listdir("/proc"):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    stat = f.read()
            except (OSError, ValueError):
                continue
            if pid.isdigit() and stat.split(" (", 1)[1].startswith("asterisk)"):
                fields = stat.rsplit(") ", 1)[1].split()
                ours += (int(fields[11]) + int(fields[12])) / tick
        return time.monotonic(), machine, ours

    def others(self) -> str:
        """A line saying how many cores other work used on average."""
        (t0, m0, o0), (t1, m1, o1) = self._start, self._sample()
        cores = max(0.0, (m1 - m0) - (o1 - o0)) / max(1e-9, t1 - t0)
        return (f"machine: {os.cpu_count()} cores; other processes used {cores:.2f} of them on "
                f"average during the run (other work skews the figures)")


def lab_pid(root: str = LAB_ROOT) -> int | None:
    """The lab Asterisk's pid (its pid file in C{root}), or None."""
    try:
        with open(os.path.join(root, "run/asterisk/asterisk.pid")) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def cpu_seconds(pid) -> float:
    """CPU time (user + system) process C{pid} has used so far, every thread; 0 if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(") ", 1)[1].split()
    except (OSError, TypeError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuSpent:
    """
    CPU seconds the lab Asterisk, the server under test and the whole
    machine spent from creation until L{stop}: how much work a burst cost,
    which on a shared 2-core machine says more than its duration.
    """

    def __init__(self, server_pid, asterisk_pid=None):
        self._pids = {"asterisk": asterisk_pid or lab_pid(), "server": server_pid}
        self._start = self._sample()
        self.spent: dict = {}

    def _sample(self) -> dict:
        tick = os.sysconf("SC_CLK_TCK")
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        out = {name: cpu_seconds(pid) for name, pid in self._pids.items()}
        out["machine"] = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / tick
        out["wall"] = time.monotonic()
        return out

    def stop(self) -> dict:
        end = self._sample()
        self.spent = {k: end[k] - self._start[k] for k in end}
        return self.spent


def hang_up_callers(prefix: str, env=None) -> int:
    """Hang up calls from numbers starting with C{prefix} still up in the lab Asterisk."""
    out = lab("cli", "core show channels concise", env=env).stdout
    left = [f[0] for f in (line.split("!") for line in out.splitlines())
            if len(f) > 7 and f[7].startswith(prefix) and f[0].startswith("PJSIP/lab-exchange")]
    for channel in left:
        lab("cli", f"channel request hangup {channel}", env=env)
    return len(left)


def clean_up(cpu: CpuWatch, workdir: str, keep: bool) -> None:
    """
    After a lab bench: how busy the machine was, callers left in the lab
    Asterisk hung up, the bench's households out of AstDB (the next server
    resyncs in full), the work folder removed unless C{keep}.
    """
    print(cpu.others())
    left = hang_up_callers("8766")  # a caller SIPp gave up on, still in a room
    if left:
        print(f"hung up {left} bench caller(s) left in the lab Asterisk")
    if not port_open(4573):
        lab("cli", "database deltree swb_ring")
    if keep:
        print(f"work folder: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


def ready(ports, agi_ports=(4573,), second=False) -> None:
    """
    Before a lab bench: the lab Asterisk (and, with C{second}, the second)
    started if it is not up, no other switchboard on the FastAGI
    C{agi_ports}, none of the UDP C{ports} (the bench's phones) bound by
    someone else; L{SystemExit} saying which otherwise.
    """
    for name, env in [("the lab Asterisk", None)] + ([("the second lab Asterisk", SECOND_ENV)]
                                                      if second else []):
        if lab("status", env=env).returncode != 0:
            print(f"starting {name}", flush=True)
            started = lab("start", env=env)
            if started.returncode != 0:
                raise SystemExit(f"{name} does not start (lab/asterisk-lab start):\n"
                                 + started.stderr[-2000:])
    for port in agi_ports:
        if port_open(port):
            raise SystemExit(f"port {port} is taken: another switchboard is running; try later")
    taken = udp_ports_taken(ports)
    if taken:
        raise SystemExit(f"UDP ports {taken} are taken: the lab phones are in use; try later")
