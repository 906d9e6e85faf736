"""
SIPp phones for end-to-end tests: residents who dial, neighbours and
departments whose phones ring, answer and press keys (RTP DTMF from the
pcaps Debian's sip-tester ships).

Lab phone 8765NNNN listens on 127.0.0.1:(20000+NNNN), as the lab's
pjsip.conf expects; callers use ports from 5070 up.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import struct
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

ASTERISK = "127.0.0.1:5060"
PCAPS = "/usr/share/sip-tester"
_media_ports = itertools.count(40000, 4)
_caller_ports = itertools.count(5070)

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


def dtmf_pcap(key: str, press: int = 0) -> str:
    """
    The pcap of C{key} as the C{press}-th key of a call. Every shipped pcap
    carries the same RTP timestamp, and Asterisk takes an event with the
    timestamp of the one that just ended for its repeat (and drops it): a
    later press gets a copy whose timestamps and sequence numbers are moved on.
    """
    name = {"*": "star", "#": "pound"}.get(key, key)
    shipped = f"{PCAPS}/dtmf_2833_{name}.pcap"
    if not press:
        return shipped
    # Beyond the spread of the shipped pcaps' own (sequence 7984-12080,
    # timestamp 13280-92640): each press comes after any key before it.
    timestamp, sequence = press * 160000, press * 5000
    folder = os.path.join(tempfile.gettempdir(), "switchboard-sipp-pcaps")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"dtmf_2833_{name}_t{timestamp}_s{sequence}.pcap")
    if not os.path.exists(path):
        _shifted_pcap(shipped, path, timestamp=timestamp, sequence=sequence)
    return path


def _shifted_pcap(source: str, target: str, *, timestamp: int, sequence: int) -> None:
    """Copy the Ethernet/IPv4/UDP/RTP pcap C{source} with its RTP clock moved on."""
    with open(source, "rb") as f:
        data = bytearray(f.read())
    offset = 24
    while offset + 16 <= len(data):
        length = struct.unpack_from("<I", data, offset + 8)[0]
        packet = offset + 16
        udp = packet + 14 + (data[packet + 14] & 0x0F) * 4
        rtp = udp + 8
        seq, ts = struct.unpack_from(">HI", data, rtp + 2)
        struct.pack_into(">HI", data, rtp + 2, (seq + sequence) & 0xFFFF,
                         (ts + timestamp) & 0xFFFFFFFF)
        struct.pack_into(">H", data, udp + 6, 0)  # no UDP checksum (IPv4 allows it)
        offset = packet + length
    partial = target + f".{os.getpid()}"
    with open(partial, "wb") as f:
        f.write(data)
    os.replace(partial, target)


def _press(keys: str, gap_ms: int = 400) -> str:
    steps = []
    for press, key in enumerate(keys):
        steps.append(f'<nop><action><exec play_pcap_audio="{dtmf_pcap(key, press)}"/>'
                     f'</action></nop>')
        steps.append(f'<pause milliseconds="{gap_ms}"/>')
    return "\n".join(steps)


def caller_scenario(service: str, caller_id: str, keys: str = "", before_ms: int = 1500,
                    hold_ms: int = 5000) -> str:
    """A resident who dials C{service}, waits, presses C{keys}, and hangs up after C{hold_ms}."""
    uri_user = service.replace("#", "%23")
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="resident calls {service}">
  <send retrans="500"><![CDATA[
INVITE sip:{uri_user}@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "{caller_id}" <sip:{caller_id}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:{uri_user}@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: sip:{caller_id}@[local_ip]:[local_port]
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

{_SDP}
]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true"/>
  <send><![CDATA[
ACK sip:{uri_user}@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "{caller_id}" <sip:{caller_id}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:{uri_user}@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Contact: sip:{caller_id}@[local_ip]:[local_port]
Max-Forwards: 70
Content-Length: 0

]]></send>
  <pause milliseconds="{before_ms}"/>
  {_press(keys)}
  <pause milliseconds="{hold_ms}"/>
  <send retrans="500"><![CDATA[
BYE sip:{uri_user}@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "{caller_id}" <sip:{caller_id}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:{uri_user}@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 BYE
Contact: sip:{caller_id}@[local_ip]:[local_port]
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200" crlf="true"/>
</scenario>
"""


_UAS_RESPONSE = """  <send><![CDATA[
SIP/2.0 {code} {reason}
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
{extra}Content-Length: [len]
{body}]]></send>
"""


_HANG_UP = """  <send retrans="500"><![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <[$me]>;tag=[pid]SIPpTag01[call_number]
To:[$caller]
Call-ID: [call_id]
CSeq: 1 BYE
Max-Forwards: 70
Content-Length: 0

]]></send>
"""


def _respond(code: int, reason: str, sdp: bool = False) -> str:
    if sdp:
        return _UAS_RESPONSE.format(code=code, reason=reason,
                                    extra="Content-Type: application/sdp\n", body="\n" + _SDP)
    return _UAS_RESPONSE.format(code=code, reason=reason, extra="", body="\n")


def phone_scenario(behaviour: str, ring_ms: int = 1000, keys: str = "", before_ms: int = 3000) -> str:
    """
    A phone that receives one call. C{behaviour}: C{ring} (rings until
    cancelled), C{busy}, C{answer} (answers after C{ring_ms}, presses
    C{keys} after C{before_ms}, stays until the far end hangs up),
    C{hangup} (answers after C{ring_ms} and hangs up itself after
    C{before_ms}, no key: an answering machine, or a resident who puts the
    phone down), or C{text} (takes one SIP MESSAGE, a text, instead of a call).
    """
    if behaviour == "text":
        return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="phone text">
  <recv request="MESSAGE" crlf="true"/>
{_respond(200, "OK")}
</scenario>
"""
    steps = ['  <recv request="INVITE" crlf="true"/>']
    if behaviour == "hangup":
        # Its own BYE goes to the INVITE's Contact, From and To swapped.
        steps = ['  <recv request="INVITE" crlf="true" rrs="true"><action>'
                 '<ereg regexp=".*" search_in="hdr" header="From:" assign_to="caller"/>'
                 '<ereg regexp="sip:[^>;]*" search_in="hdr" header="To:" assign_to="me"/>'
                 '</action></recv>',
                 _respond(180, "Ringing"), f'  <pause milliseconds="{ring_ms}"/>',
                 _respond(200, "OK", sdp=True), '  <recv request="ACK"/>',
                 f'  <pause milliseconds="{before_ms}"/>', _HANG_UP,
                 '  <recv response="200" crlf="true"/>']
    elif behaviour == "busy":
        steps.append(_respond(486, "Busy Here"))
        steps.append('  <recv request="ACK"/>')
    elif behaviour == "ring":
        # The 487 answers the INVITE: its CSeq is the INVITE's, not the
        # CANCEL's (a 487 with the CANCEL's is never ACKed, and the phone,
        # still in the call, ignores the next one).
        steps = ['  <recv request="INVITE" crlf="true"><action>'
                 '<ereg regexp="[0-9]+" search_in="hdr" header="CSeq:" assign_to="cseq"/>'
                 '</action></recv>']
        steps.append(_respond(180, "Ringing"))
        steps.append('  <recv request="CANCEL"/>')
        steps.append(_respond(200, "OK"))
        steps.append(_respond(487, "Request Terminated").replace(
            "[last_CSeq:]", "CSeq: [$cseq] INVITE"))
        steps.append('  <recv request="ACK"/>')
    elif behaviour == "answer":
        steps.append(_respond(180, "Ringing"))
        steps.append(f'  <pause milliseconds="{ring_ms}"/>')
        steps.append(_respond(200, "OK", sdp=True))
        steps.append('  <recv request="ACK" optional="false" rrs="true"/>')
        steps.append(f'  <pause milliseconds="{before_ms}"/>')
        steps.append(_press(keys))
        # The far end (Asterisk) ends the call; the global -timeout bounds it.
        steps.append('  <recv request="BYE"/>')
        steps.append(_respond(200, "OK"))
    else:
        raise ValueError(behaviour)
    body = "\n".join(steps)
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="phone {behaviour}">
{body}
</scenario>
"""


@dataclass
class Sipp:
    """One running SIPp process and what it saw."""

    name: str
    port: int
    workdir: str
    process: subprocess.Popen
    started: float = field(default_factory=time.time)
    media: int = 0  # the RTP port it offers (what Asterisk sends audio to)

    @property
    def messages_path(self) -> str:
        return os.path.join(self.workdir, f"{self.name}.messages")

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            return -1

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(3)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def messages(self) -> list[tuple[datetime, str, str]]:
        """(time, 'sent'|'received', first line) of every SIP message traced."""
        try:
            with open(self.messages_path, encoding="latin-1") as f:
                text = f.read()
        except FileNotFoundError:
            return []
        out = []
        pattern = re.compile(
            r"-{10,} (\d{4}-\d\d-\d\d)[ \t](\d\d:\d\d:\d\d\.\d+)\n(UDP|TCP) message (sent|received)[^\n]*\n\n([^\n]*)")
        for m in pattern.finditer(text):
            at = datetime.strptime(f"{m.group(1)} {m.group(2)[:15]}", "%Y-%m-%d %H:%M:%S.%f")
            out.append((at, m.group(4), m.group(5).strip()))
        return out

    def texts(self) -> list[str]:
        """The bodies of the SIP MESSAGEs received (UTF-8 text)."""
        return [body for _, body in self.texts_to()]

    def texts_to(self) -> list[tuple[str, str]]:
        """(the number in the request URI, the body) of each SIP MESSAGE received."""
        try:
            with open(self.messages_path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return []
        out = []
        for part in re.split(rb"\n-{10,} [^\n]*\n", b"\n" + raw):
            head, _, rest = part.partition(b"\n\n")
            if b"message received" not in head or not rest.startswith(b"MESSAGE "):
                continue
            message = rest.replace(b"\r\n", b"\n")
            to = re.match(rb"MESSAGE sip:([^@;> ]+)", message).group(1).decode()
            _, _, body = message.partition(b"\n\n")
            out.append((to, body.rstrip(b"\n").decode("utf-8", "replace")))
        return out

    def invite_times(self) -> list[datetime]:
        return [at for at, way, line in self.messages() if way == "received" and line.startswith("INVITE")]

    def received(self, method_or_code: str) -> bool:
        return any(way == "received" and line.startswith(method_or_code) or
                   way == "received" and line.startswith("SIP/2.0 " + method_or_code)
                   for _, way, line in self.messages())


class SippFactory:
    """Starts SIPp processes in a scratch folder and stops them all at the end."""

    def __init__(self, workdir: str | None = None, address: str = "127.0.0.1"):
        """
        C{address}: the lab Asterisk's (a second one runs on 127.0.0.2): its
        phones listen there and its callers call it there.
        """
        self.address = address
        self.workdir = workdir or tempfile.mkdtemp(prefix="switchboard-sipp-")
        self.running: list[Sipp] = []
        self.phones: dict = {}    # phone-NUMBER -> phones started for it
        self.binary = shutil.which("sipp")

    def _start(self, name: str, scenario: str, port: int, extra: list[str], timeout_s: int,
               calls: int = 1) -> Sipp:
        path = os.path.join(self.workdir, f"{name}.xml")
        with open(path, "w") as f:
            f.write(scenario)
        media = next(_media_ports)
        argv = [self.binary, "-sf", path, "-i", self.address, "-p", str(port),
                "-mi", self.address, "-mp", str(media), "-m", str(calls), "-nostdin",
                "-timeout", f"{timeout_s}s", "-trace_msg",
                "-message_file", os.path.join(self.workdir, f"{name}.messages"),
                "-trace_err", "-error_file", os.path.join(self.workdir, f"{name}.errors"),
                *extra]
        log = open(os.path.join(self.workdir, f"{name}.out"), "w")
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, cwd=self.workdir)
        sipp = Sipp(name, port, self.workdir, process, media=media)
        self.running.append(sipp)
        return sipp

    def phone(self, number: str, behaviour: str = "answer", timeout_s: int = 60, **kw) -> Sipp:
        """Start the lab phone for C{number} (8765NNNN)."""
        port = 20000 + int(number[-4:])
        # A number's second phone gets files of its own (what each phone saw).
        name = f"phone-{number}"
        self.phones[name] = self.phones.get(name, 0) + 1
        if self.phones[name] > 1:
            name += f"-{self.phones[name]}"
        return self._start(name, phone_scenario(behaviour, **kw), port, [], timeout_s)

    def gateway(self, port: int, messages: int, timeout_s: int = 60) -> Sipp:
        """An SMS gateway on C{port}: takes C{messages} SIP MESSAGEs, to any number."""
        return self._start(f"gateway-{port}", phone_scenario("text"), port, [], timeout_s,
                           calls=messages)

    def call(self, service: str, caller_id: str, keys: str = "", timeout_s: int = 60, **kw) -> Sipp:
        """A resident C{caller_id} dials C{service} through the lab Asterisk."""
        port = next(_caller_ports)
        return self._start(f"caller-{caller_id}-{port}", caller_scenario(service, caller_id, keys, **kw),
                           port, [f"{self.address}:5060"], timeout_s)

    def stop_all(self) -> None:
        for sipp in self.running:
            sipp.stop()
        self.running.clear()


class Phones:
    """
    Each number's phones one after another: a SIPp phone handles one call.
    The next starts C{gap} seconds after one ended, clear of the last SIP
    retransmissions of its call (a stray BYE ends a fresh phone's call).

    @param sipp: the L{SippFactory} that starts them.
    @param plans: number -> [(behaviour, keyword arguments of L{phone_scenario})],
        one a call, in order.
    """

    def __init__(self, sipp, plans, gap=1.5):
        self.sipp = sipp
        self.plans = {n: list(p) for n, p in plans.items()}
        self.gap = gap
        self.ended = {}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.current = {}
        self.started = {n: [] for n in plans}   # every phone of each number
        for number in self.plans:
            self._next(number)
        self.thread.start()

    def _next(self, number):
        if self.plans[number]:
            behaviour, kw = self.plans[number].pop(0)
            phone = self.sipp.phone(number, behaviour, timeout_s=120, **kw)
            self.current[number] = phone
            self.started[number].append(phone)
        else:
            self.current.pop(number, None)

    def _run(self):
        while not self.done.is_set():
            for number, phone in list(self.current.items()):
                if phone.process.poll() is None:
                    continue
                ended = self.ended.setdefault(number, time.monotonic())
                if time.monotonic() - ended >= self.gap:
                    del self.ended[number]
                    self._next(number)
            time.sleep(0.05)

    def calls(self, number) -> int:
        """The calls that reached C{number}'s phones (one a phone)."""
        return sum(1 for phone in self.started[number] if phone.invite_times())

    def stop(self):
        self.done.set()
        self.thread.join(5)
