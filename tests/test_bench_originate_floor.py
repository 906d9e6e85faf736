"""
bench.originate_floor's actions and bench.alarm_lab's CPU accounting (the
lab Asterisk's pid from its root, a process's CPU seconds from /proc).
"""

import os

from bench import alarm_lab, originate_floor


def parse(raw: bytes):
    """The actions written, each a dict of its headers."""
    return [dict(line.split(": ", 1) for line in block.split("\r\n"))
            for block in raw.decode().split("\r\n\r\n") if block]


def test_one_originate_a_leg_each_phone_in_turn():
    sent = parse(originate_floor.actions("originate", 20))
    assert len(sent) == 20
    assert {a["Action"] for a in sent} == {"Originate"}
    assert [a["Channel"] for a in sent[:2]] == ["PJSIP/87650002", "PJSIP/87650003"]
    assert sent[10]["Channel"] == "PJSIP/87650002"
    assert {a["Async"] for a in sent} == {"true"}
    assert {a["Timeout"] for a in sent} == {str(originate_floor.RING_MS)}
    assert len({a["ActionID"] for a in sent}) == 20


def test_dial_rings_ten_a_call_and_refused_names_no_endpoint():
    dial = parse(originate_floor.actions("dial", 20))
    assert [a["Channel"] for a in dial] == ["Local/native@switchboard-bench/n"] * 2
    refused = parse(originate_floor.actions("refused", 20))
    assert {a["Channel"] for a in refused} == {"PJSIP/no-such-endpoint"}
    assert len(refused) == 20


def test_lab_pid_is_read_from_the_root(tmp_path):
    (tmp_path / "run" / "asterisk").mkdir(parents=True)
    assert alarm_lab.lab_pid(str(tmp_path)) is None
    (tmp_path / "run" / "asterisk" / "asterisk.pid").write_text("4242\n")
    assert alarm_lab.lab_pid(str(tmp_path)) == 4242
    (tmp_path / "run" / "asterisk" / "asterisk.pid").write_text("not a pid")
    assert alarm_lab.lab_pid(str(tmp_path)) is None


def test_cpu_seconds_of_a_process_and_of_none():
    busy = sum(i * i for i in range(300_000))  # some CPU of our own
    assert busy and alarm_lab.cpu_seconds(os.getpid()) > 0
    assert alarm_lab.cpu_seconds(None) == 0.0
    assert alarm_lab.cpu_seconds(2 ** 22 + 1) == 0.0  # above the kernel's pid limit


def test_cpu_spent_counts_from_creation_to_stop():
    spent = alarm_lab.CpuSpent(os.getpid(), asterisk_pid=None)
    sum(i * i for i in range(300_000))
    out = spent.stop()
    assert set(out) == {"asterisk", "server", "machine", "wall"}
    assert out["server"] >= 0 and out["wall"] > 0 and out["machine"] >= out["server"] - 0.02
    assert spent.spent == out
