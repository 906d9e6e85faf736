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


THREE = "PJSIP/87650012&PJSIP/87650013&PJSIP/87650014"


def astdb(asterisk, *puts):
    """AstDB holds C{puts} ((family, key, value)) and nothing else of the alarm's."""
    asterisk.cli("database deltree swb_ring")
    asterisk.cli("database deltree swb_alarm")
    for family, key, value in puts:
        asterisk.cli(f"database put {family} {key} {value}")


def test_alarm_rings_neighbours_from_astdb_and_confirmed_one_is_connected(server_down, sipp):
    astdb(server_down, ("swb_ring", "area", "591"), ("swb_ring", "11/8659187650011", THREE))
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


def rings_the_three(sipp, callerid):
    """#9 from C{callerid}: 87650012-14 ring at once; 87650012 confirms."""
    confirming = sipp.phone("87650012", "answer", ring_ms=500, keys="1", before_ms=500,
                            timeout_s=30)
    ringing = [sipp.phone(n, "ring", timeout_s=30) for n in ("87650013", "87650014")]
    caller = sipp.call("#9", callerid, before_ms=200, hold_ms=6000, timeout_s=30)
    assert caller.wait(30) == 0, open(caller.messages_path).read()[-3000:]
    assert [len(p.invite_times()) for p in [confirming] + ringing] == [1, 1, 1], callerid
    assert confirming.received("ACK")
    for phone in ringing:
        phone.wait(10)


# Every form NumberPlan.variants gives 87650011 (area code 591), as the
# exchange may present it; the lab takes a From it knows no phone for as the
# exchange's, and trusts its caller ID.
FORMS = ("87650011", "059187650011", "59187650011", "+8659187650011", "8659187650011",
         "008659187650011")


@pytest.mark.parametrize("callerid", FORMS)
def test_alarm_from_any_form_of_the_caller_id_rings_the_households_neighbours(
        server_down, sipp, callerid):
    from switchboard.numbers import NumberPlan
    assert set(FORMS) == set(NumberPlan("CN", "591").variants("+8659187650011"))
    astdb(server_down, ("swb_ring", "area", "591"), ("swb_ring", "11/8659187650011", THREE))
    rings_the_three(sipp, callerid)
    assert f"ALARM from {callerid} rung natively" in server_down.log(400)


def test_alarm_from_astdb_an_older_server_wrote_while_it_is_there(server_down, sipp):
    # Before the server has moved it to swb_ring: one flat key per form.
    astdb(server_down, ("swb_alarm", "+8659187650011", THREE))
    rings_the_three(sipp, "+8659187650011")


def test_alarm_without_astdb_entry_rings_the_duty_phone(server_down, sipp):
    astdb(server_down)
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
