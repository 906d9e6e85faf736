"""
bench.two_instances' reading of SIPp traces: each INVITE's parties, and the
legs of a burst counted household by household (rung, missing, twice, at
the other Asterisk's trunk) with each alarm's latency.
"""

from bench import two_instances
from bench.alarm_lab import Trace
from bench.alarm_fanout import landline


def record(path, clock, way, first_line, call_id, caller):
    with open(path, "a", newline="") as f:
        f.write(f"----------------------------------------------- 2026-12-03\t{clock}\n"
                f"UDP message {way} [400] bytes :\n\n{first_line}\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\n"
                f'From: "x" <sip:{caller}@127.0.0.1:5060>;tag=1\r\n'
                f"To: <sip:someone@127.0.0.1>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\n\r\n")


class Traced:
    """A SIPp process as the bench reads it: its trace only."""

    def __init__(self, path):
        self.trace = Trace(str(path))

    def calls(self):
        return self.trace.poll()

    def parties(self):
        self.trace.poll()
        return self.trace.parties


def test_the_trace_keeps_each_invites_parties(tmp_path):
    path = tmp_path / "t.messages"
    record(path, "14:00:00.100000", "sent", "INVITE sip:%239@127.0.0.2:5060 SIP/2.0", "1-9@h",
           "87660001")
    record(path, "14:00:00.200000", "received", "SIP/2.0 180 Ringing", "1-9@h", "87660001")
    trace = Traced(path)
    assert trace.parties() == {"1-9@h": ("87660001", "%239")}
    assert set(trace.calls()["1-9@h"]) == {"< INVITE", "> 180"}


def test_legs_are_counted_household_by_household(tmp_path):
    callers, a, b = (Traced(tmp_path / f"{n}.messages") for n in ("callers", "a", "b"))
    for i, clock in ((0, "14:00:00.000000"), (1, "14:00:00.100000")):
        record(callers.trace.path, clock, "sent", "INVITE sip:%239@127.0.0.1:5060 SIP/2.0",
               f"{i}-1@h", landline(i))
    # Household 0 (on a): all ten on a, the last at +0.5 s, neighbour 3 twice.
    for k in range(10):
        record(a.trace.path, f"14:00:00.{(k + 1) * 50:03d}000", "received",
               f"INVITE sip:{two_instances.neighbour(0, k)}@127.0.0.1:21200 SIP/2.0",
               f"a{k}", "12345")
    record(a.trace.path, "14:00:01.000000", "received",
           f"INVITE sip:{two_instances.neighbour(0, 3)}@127.0.0.1:21200 SIP/2.0", "again", "1")
    # Household 1 (on b): nine on b, one on a's trunk, none for neighbour 9.
    for k in range(8):
        record(b.trace.path, "14:00:00.300000", "received",
               f"INVITE sip:{two_instances.neighbour(1, k)}@127.0.0.1:21201 SIP/2.0",
               f"b{k}", "12345")
    record(a.trace.path, "14:00:00.300000", "received",
           f"INVITE sip:{two_instances.neighbour(1, 8)}@127.0.0.1:21200 SIP/2.0", "b8", "1")
    record(b.trace.path, "14:00:00.300000", "received",
           "INVITE sip:87650198@127.0.0.1:21201 SIP/2.0", "duty", "12345")
    out = two_instances.legs_rung({"a": [0], "b": [1]}, {"a": callers},
                                  {"a": a, "b": b}, {"a": set(), "b": set()})
    assert out["missing"] == 1 and out["twice"] == 1 and out["elsewhere"] == 1
    assert out["outsiders"] == 1          # the duty phone
    assert out["whole"] == 1 and sorted(out["sent"]) == [0, 1]
    assert [round(x, 3) for x in out["latency"]] == [0.5]   # household 0: sent +0, tenth +0.5
    assert two_instances.faults(dict(out, missing_alarms=0, duplicate_alarms=0,
                                     shared_rooms=0, wrong_asterisk=0, hand_overs={})) == [
        "1 legs not rung", "1 legs rung twice", "1 legs on the other Asterisk"]
