"""
The voice broadcast end to end: a notice to thirty households of the lab,
their SIPp phones answer and press 1, press 2 then 1, are busy, never
answer, hang up without a key, or do one of these and then press 1 when
called again; the report staff get says exactly what the phones did.
"""

import contextlib
import csv
import os
import io
import signal
import sqlite3

import pytest

from lab.sipp import Phones
from tests.conftest import wait_for
from tests.e2e.server import Server

pytestmark = pytest.mark.asterisk

BROADCAST = ("broadcast: {lines: 4, retries: 1, retry_after: 4, ring_timeout: 6, "
             "quiet_hours: null, plays: 3}\n")
NOTICE = "明天上午九点到下午三点，三号楼到五号楼停水。"


def lab_numbers(first, count):
    return [f"876500{n:02d}" for n in range(first, first + count)]


# What each household's phones do, call after call (each SIPp phone takes one
# call), and the report's row that must follow: heard, why not, calls counted
# (busy, no answer, no 1: at most retries + 1), calls placed.
ANSWER = dict(ring_ms=500, before_ms=2500)
PRESS_1 = ("answer", dict(ANSWER, keys="1"))
PRESS_2_THEN_1 = ("answer", dict(ANSWER, keys="21"))
BUSY = ("busy", {})
RING = ("ring", {})
HANG_UP = ("hangup", dict(ring_ms=500, before_ms=1500))
BEHAVIOURS = [
    # (households, their phones' calls, the report's row)
    (lab_numbers(21, 10), [PRESS_1], ("yes", "", "0", "1")),
    (lab_numbers(31, 5), [PRESS_2_THEN_1], ("yes", "", "0", "1")),
    (lab_numbers(36, 4), [BUSY, PRESS_1], ("yes", "", "1", "2")),
    (lab_numbers(40, 3), [RING, RING], ("no", "no-answer", "2", "2")),
    (lab_numbers(43, 3), [BUSY, BUSY], ("no", "busy", "2", "2")),
    (lab_numbers(46, 2), [RING, PRESS_1], ("yes", "", "1", "2")),
    (lab_numbers(48, 1), [HANG_UP, PRESS_2_THEN_1], ("yes", "", "1", "2")),
    (lab_numbers(49, 2), [HANG_UP, HANG_UP], ("no", "unconfirmed", "2", "2")),
]
ALL = [n for group, _, _ in BEHAVIOURS for n in group]
PRESSES_1 = lab_numbers(21, 10)
PRESSES_2_THEN_1 = lab_numbers(31, 5)


def households_csv(path, numbers):
    lines = ["numbers,community,building,unit,room,residents"]
    for i, n in enumerate(numbers):
        lines.append(f"{n},Hualin Garden,{3 + i % 3},1,{101 + i},Resident {i}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture
def server(asterisk, tmp_path):
    server = Server(tmp_path, extra=BROADCAST)
    csv_path = tmp_path / "households.csv"
    households_csv(csv_path, ALL)
    server.cli("households", "import", str(csv_path))
    yield server
    server.stop()


def report(server, campaign):
    rows = list(csv.reader(io.StringIO(server.cli("broadcast", "report", campaign,
                                                  "--csv", "-"))))
    header = rows[0]
    return {r[2].lstrip("'")[-8:]: dict(zip(header, r)) for r in rows[1:]}


def test_a_notice_reaches_every_household_and_the_report_says_what_the_phones_did(
        asterisk, sipp, tmp_path):
    server = Server(tmp_path, extra=BROADCAST.replace("lines: 4", "lines: 8"))
    csv_path = tmp_path / "households.csv"
    households_csv(csv_path, ALL)
    server.cli("households", "import", str(csv_path))
    plans = {n: calls for group, calls, _ in BEHAVIOURS for n in group}
    phones = Phones(sipp, plans)
    try:
        server.start()
        out = server.cli("broadcast", "send", "--text", NOTICE, "--to", "all")
        assert out.startswith("campaign 1: 30 households")
        wait_for(lambda: "done:" in server.cli("broadcast", "status", "1"), 150,
                 interval=1.0, message="the campaign to end")
    finally:
        phones.stop()
        server.stop()
    status = server.cli("broadcast", "status", "1")
    heard = sum(len(group) for group, _, row in BEHAVIOURS if row[0] == "yes")
    assert f"30/30 done  {heard} heard  {30 - heard} failed  0 pending" in status
    rows = report(server, "1")
    columns = ("heard", "why not", "calls counted", "calls placed")
    got = {n: tuple(rows[n][c] for c in columns) for n in ALL}
    assert got == {n: row for group, _, row in BEHAVIOURS for n in group}
    # Each call the report counts reached the phone: no more, no fewer.
    assert {n: phones.calls(n) for n in ALL} == {n: int(got[n][3]) for n in ALL}
    # Who pressed 2 first heard the notice twice; who pressed 1, once.
    with sqlite3.connect(server.db) as db:
        repeats = dict(db.execute(
            "SELECT substr(d.number, -8), max(a.repeats) FROM broadcast_attempt a "
            "JOIN broadcast_delivery d ON d.id = a.delivery_id GROUP BY d.number").fetchall())
    twice = PRESSES_2_THEN_1 + lab_numbers(48, 1)
    assert {n: repeats[n] for n in twice} == {n: 1 for n in twice}
    assert {n: repeats[n] for n in PRESSES_1} == {n: 0 for n in PRESSES_1}
    assert "broadcast: campaign 1 done" in server.log()


def heard_count(server) -> int:
    with contextlib.closing(sqlite3.connect(server.db)) as db:
        return db.execute("SELECT count(*) FROM broadcast_delivery "
                          "WHERE state = 'heard'").fetchone()[0]


def test_kill_9_mid_campaign_then_every_household_is_reached_once(server, sipp, tmp_path):
    """Killed while calls are up: after the restart nobody who pressed 1 is called again."""
    numbers = PRESSES_1[:5] + PRESSES_2_THEN_1[:3]     # 8 households, 4 lines: two waves
    slow = dict(ring_ms=500, before_ms=2500)
    plans = {n: [("answer", dict(slow, keys="1")), ("answer", dict(slow, keys="1"))]
             for n in numbers}
    phones = Phones(sipp, plans)
    try:
        server.start()
        visit = tmp_path / "visit.csv"
        visit.write_text("numbers\n" + "\n".join(numbers) + "\n", encoding="utf-8")
        out = server.cli("broadcast", "send", "--text", NOTICE, "--to", str(visit))
        assert out.startswith("campaign 1: 8 households")
        # The first wave has answered and pressed 1; kill during the second. The
        # database is read directly: a CLI process a poll (a second or more on a
        # loaded machine) could step over the second wave's few seconds.
        try:
            wait_for(lambda: 4 <= heard_count(server) < len(numbers), 60, interval=0.05,
                     message="the first wave to hear it")
        except AssertionError as e:
            raise AssertionError(f"{e}\n{server.cli('broadcast', 'status', '1')}"
                                 f"calls reached: {[phones.calls(n) for n in numbers]}\n"
                                 f"server log:\n{server.log()[-6000:]}") from None
        server.process.send_signal(signal.SIGKILL)
        server.process.wait()
        with sqlite3.connect(server.db) as db:
            heard_before = {r[0][-8:] for r in db.execute(
                "SELECT number FROM broadcast_delivery WHERE state = 'heard'")}
        assert heard_before
        server.start()
        wait_for(lambda: "done:" in server.cli("broadcast", "status", "1"), 120,
                 interval=1.0, message="the campaign to end after the restart")
    finally:
        phones.stop()
    rows = report(server, "1")
    assert sorted(rows) == sorted(numbers)
    assert all(rows[n]["heard"] == "yes" for n in numbers), rows
    for n in heard_before:
        assert rows[n]["calls placed"] == "1", (n, rows[n])   # never called again


def test_a_hash9_mid_campaign_rings_its_neighbours_at_once_and_broadcast_legs_yield(
        asterisk, sipp, tmp_path):
    """Trunk of 10 lines, 4 of them the broadcast's: a #9's ten legs take the trunk."""
    from tests.conftest import PROJECT
    from tests.e2e.server import first_invite_sent
    server = Server(tmp_path, extra=BROADCAST.replace("lines: 4,", "lines: 4, trunk_lines: 10,")
                    .replace("ring_timeout: 6", "ring_timeout: 20"))
    server.cli("households", "import", os.path.join(PROJECT, "config", "households.csv"))
    csv_path = tmp_path / "extra.csv"
    notice_numbers = PRESSES_1[:4]
    households_csv(csv_path, notice_numbers)
    server.cli("households", "import", str(csv_path))
    visit = tmp_path / "visit.csv"
    visit.write_text("numbers\n" + "\n".join(notice_numbers) + "\n", encoding="utf-8")
    neighbours = [f"876500{n:02d}" for n in range(2, 12)]
    plans = {n: [("ring", {}), ("answer", dict(ring_ms=500, before_ms=2500, keys="1"))]
             for n in notice_numbers}
    phones = Phones(sipp, plans)
    ringing = {n: sipp.phone(n, "answer", ring_ms=1500, keys="1", before_ms=5000, timeout_s=60)
               if n == "87650005" else sipp.phone(n, "ring", timeout_s=60) for n in neighbours}
    try:
        server.start()
        server.cli("broadcast", "send", "--text", NOTICE, "--to", str(visit))
        wait_for(lambda: all(phones.current[n].invite_times() for n in notice_numbers), 20,
                 message="the notice's four calls to ring")
        caller = sipp.call("#9", "87650001", before_ms=300, hold_ms=16000, timeout_s=60)
        sent = first_invite_sent(caller)
        firsts = [wait_for(lambda p=p: p.invite_times(), 10, message="a neighbour's INVITE")[0]
                  for p in ringing.values()]
        latency = (max(firsts) - sent).total_seconds()
        print(f"#9 mid-campaign: ten neighbours rang {latency * 1000:.0f} ms after the #9 INVITE")
        assert latency < 1.0, f"the last neighbour rang {latency:.3f} s after the #9"
        wait_for(lambda: server.log().count("gives its line to an urgent call") == 4, 10,
                 message="the notice's calls to yield")
        for n in notice_numbers:   # cancelled phones: the next ones answer the calls again
            phones.current[n].stop()
        wait_for(lambda: "done:" in server.cli("broadcast", "status", "1"), 120,
                 interval=1.0, message="the campaign to end after the alarm")
        caller.wait(40)
    finally:
        phones.stop()
        server.stop()
    assert "gives its line to an urgent call" in server.log()
    with sqlite3.connect(server.db) as db:
        outcomes = [r[0] for r in db.execute("SELECT outcome FROM broadcast_attempt")]
    assert outcomes.count("yielded") == 4, outcomes
    rows = report(server, "1")
    for n in notice_numbers:
        assert (rows[n]["heard"], rows[n]["calls counted"]) == ("yes", "0"), rows[n]


def test_a_text_notice_reaches_each_households_phone_as_a_sip_message(server, sipp, tmp_path):
    numbers = PRESSES_1[:3]
    phones = {n: sipp.phone(n, "text", timeout_s=30) for n in numbers}
    server.start()
    visit = tmp_path / "visit.csv"
    visit.write_text("numbers\n" + "\n".join(numbers) + "\n", encoding="utf-8")
    text = "周六上午九点，社区中心免费体检。"
    out = server.cli("broadcast", "send", "--channel", "text", "--text", text, "--to",
                     str(visit))
    assert out.startswith("campaign 1: 3 households, normal, by text")
    wait_for(lambda: "done:" in server.cli("broadcast", "status", "1"), 30, interval=0.5,
             message="the text campaign to end")
    assert {n: phone.texts() for n, phone in phones.items()} == {n: [text] for n in numbers}
    rows = report(server, "1")
    assert {n: (rows[n]["heard"], rows[n]["calls placed"]) for n in numbers} == \
        {n: ("sent", "1") for n in numbers}


def test_a_text_notice_reaches_residents_mobiles_through_the_sms_gateway(
        asterisk, sipp, tmp_path):
    """
    Household 1 registered two mobiles, household 2 none: the mobiles'
    texts go to the SMS gateway (a SIPp UAS taking SIP MESSAGE for any
    number), household 2's to its SIP phone; the log never has a mobile in full.
    """
    gateway = sipp.gateway(21000, messages=2, timeout_s=30)
    server = Server(tmp_path, extra=BROADCAST + "texting: {mobile_address: "
                    "'pjsip:lab-exchange/sip:{number}@127.0.0.1:21000'}\n")
    households = tmp_path / "households.csv"
    households.write_text("numbers,building,unit,room,residents,mobiles\n"
                          "87650021,3,1,101,陈梅,13800138000=陈梅;19912345678=女儿\n"
                          "87650022,3,1,102,林涛,\n", encoding="utf-8")
    server.cli("households", "import", str(households))
    phone = sipp.phone("87650022", "text", timeout_s=30)
    text = "周六上午九点，社区中心免费体检。"
    try:
        server.start()
        out = server.cli("broadcast", "send", "--channel", "text", "--text", text,
                         "--to", "all")
        assert out.startswith("campaign 1: 2 households, normal, by text to 3 phones")
        wait_for(lambda: "done:" in server.cli("broadcast", "status", "1"), 30, interval=0.5,
                 message="the text campaign to end")
        wait_for(lambda: len(gateway.texts_to()) == 2, 10, message="the gateway's two texts")
    finally:
        server.stop()
    assert sorted(gateway.texts_to()) == [("13800138000", text), ("19912345678", text)]
    assert phone.texts() == [text]
    rows = list(csv.reader(io.StringIO(server.cli("broadcast", "report", "1", "--csv", "-"))))
    assert [(r[1], r[2].lstrip("'"), r[3]) for r in rows[1:]] == [
        ("building 3, unit 1, room 101 (陈梅)", "+8613800138000", "sent"),
        ("building 3, unit 1, room 101 (女儿)", "+8619912345678", "sent"),
        ("building 3, unit 1, room 102", "+8659187650022", "sent")]
    log = server.log()
    assert "+86138****8000" in log
    assert "13800138000" not in log and "19912345678" not in log
