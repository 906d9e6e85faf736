"""
The server is down: Asterisk must still serve #9 and the hotline natively
(dialplans/switchboard.conf, AGISTATUS = FAILURE).
"""

import pytest

from tests.conftest import port_open

pytestmark = pytest.mark.asterisk


@pytest.fixture
def server_down(asterisk):
    if port_open("127.0.0.1", 4573):
        pytest.fail("something listens on 4573: these tests need the switchboard server down")
    yield asterisk


def test_alarm_rings_neighbours_from_astdb_and_confirmed_one_is_connected(server_down, sipp):
    server_down.cli("database deltree swb_alarm")
    server_down.cli("database put swb_alarm 87650011 PJSIP/87650012&PJSIP/87650013&PJSIP/87650014")
    confirming = sipp.phone("87650012", "answer", ring_ms=800, keys="1", before_ms=800, timeout_s=40)
    ringing = [sipp.phone(n, "ring", timeout_s=40) for n in ("87650013", "87650014")]
    caller = sipp.call("#9", "87650011", before_ms=200, hold_ms=9000, timeout_s=40)

    assert caller.wait(40) == 0, open(caller.messages_path).read()[-3000:]
    invites = [confirming.invite_times()] + [p.invite_times() for p in ringing]
    assert all(len(times) == 1 for times in invites), invites
    first = [times[0] for times in invites]
    assert (max(first) - min(first)).total_seconds() < 0.5  # rung at once
    assert confirming.received("ACK")
    for phone in ringing:
        phone.wait(10)
        assert phone.received("CANCEL")  # released once a neighbour confirmed
    log = server_down.log(400)
    assert "ALARM from 87650011 rung natively (AGISTATUS=FAILURE" in log
    assert "SHARED(SWB_CONFIRMED" in log


def test_alarm_without_astdb_entry_rings_the_duty_phone(server_down, sipp):
    server_down.cli("database deltree swb_alarm")
    duty = sipp.phone("87650190", "answer", ring_ms=300, keys="1", before_ms=500, timeout_s=30)
    caller = sipp.call("#9", "87650021", before_ms=200, hold_ms=5000, timeout_s=30)
    assert caller.wait(30) == 0
    assert len(duty.invite_times()) == 1
    assert duty.received("ACK")


def test_hotline_goes_to_the_operator(server_down, sipp):
    operator = sipp.phone("87650100", "answer", ring_ms=300, timeout_s=30)
    caller = sipp.call("12345", "87650031", before_ms=200, hold_ms=3000, timeout_s=30)
    assert caller.wait(30) == 0
    assert len(operator.invite_times()) == 1
    assert "hotline served natively (AGISTATUS=FAILURE" in server_down.log(400)


def test_asterisk_loaded_every_context_of_the_shipped_dialplan(asterisk):
    from switchboard.dialplan_check import parse
    import os
    from tests.conftest import PROJECT
    contexts = parse(os.path.join(PROJECT, "dialplans", "switchboard.conf"))
    for context, extens in contexts.items():
        shown = asterisk.cli(f"dialplan show {context}")
        assert f"[ Context '{context}' created by 'pbx_config' ]" in shown, shown
        for exten in extens:
            assert f"'{exten}' =>" in shown
