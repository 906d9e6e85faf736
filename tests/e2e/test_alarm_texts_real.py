"""
The duty officer is texted when an alarm opens: SIP MESSAGE through the lab
Asterisk's AMI MessageSend to a SIPp phone, and the text's fate on the
alarm's timeline.
"""

import re

import pytest

from tests.conftest import wait_for
from tests.e2e.server import alarm_server, start_in_step

pytestmark = pytest.mark.asterisk

ALARM = """\
neighbours: {max: 10, ring_timeout: 8, confirm_within: 20, retry_unanswered: 0}
escalation:
  repeat_every: 0
  stages:
    - {name: duty officer, after: 30, phones: ["87650190"]}
responder: {attempts: 3, digit_timeout: 4}
notify: {text: ["87650195"], when: [opened]}
"""


@pytest.fixture(scope="module")
def server(asterisk, tmp_path_factory):
    server = start_in_step(alarm_server(tmp_path_factory, "texts", ALARM))
    yield server
    server.stop()


def test_the_duty_officer_is_texted_who_needs_help_and_where(server, sipp):
    text_phone = sipp.phone("87650195", "text", timeout_s=30)
    ringing = [sipp.phone(n, "ring", timeout_s=40) for n in ("87650002", "87650003")]
    caller = sipp.call("#9", "87650001", keys="*", before_ms=4000, hold_ms=2000, timeout_s=40)
    texts = wait_for(text_phone.texts, 10, message="a text at the duty officer's phone")
    assert len(texts) == 1
    assert "【紧急求助】" in texts[0]
    assert "Hualin Garden, building 3, unit 1, room 101" in texts[0]
    assert "Chen Mei" in texts[0] and "87650001" in texts[0]
    assert "hard of hearing" not in texts[0]   # notes only with notify.notes: true
    caller.wait(30)
    for phone in ringing:
        wait_for(lambda p=phone: p.received("CANCEL"), 10, message="ringing legs stopped")
    alarm_id = max(int(i) for i in re.findall(r"(?m)^\s+(\d+)\s+\d{4}-", server.cli("alarms")))
    timeline = server.cli("alarms", "show", str(alarm_id))
    assert re.search(r"texted\s+\+8659187650195\s+opened: sent", timeline), timeline
