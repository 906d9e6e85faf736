"""
The lab harness itself: between two tests every call in Asterisk ends, so
that no earlier test's ringing leg reaches a later test's phone.
"""

import pytest

from tests.conftest import active_channels, wait_for

COUNT = """No ethernet interface found for seeding global EID. You will have to set it manually.
{n} active channel{s}
0 of 4000 max active calls ( 0.00% of capacity)
7 calls processed
"""


@pytest.mark.parametrize("n", [0, 1, 9, 10, 20, 100, 110])
def test_the_channel_count_is_read_as_a_number(n):
    assert active_channels(COUNT.format(n=n, s="" if n == 1 else "s")) == n


def test_no_count_is_an_error_not_zero():
    with pytest.raises(ValueError, match="no channel count"):
        active_channels("Unable to connect to remote asterisk (does /run/asterisk.ctl exist?)\n")


@pytest.mark.asterisk
def test_ten_ringing_calls_are_all_ended_between_tests(asterisk, sipp):
    # An alarm's ten legs: "10 active channels" was once read as none left,
    # and the legs rang on into the next test's phones.
    numbers = [f"8765{n:04d}" for n in range(2, 12)]
    phones = [sipp.phone(n, "ring", timeout_s=30) for n in numbers]
    wait_for(lambda: all(p.process.poll() is None for p in phones), 5, message="the phones")
    for n in numbers:
        asterisk.cli(f"channel originate PJSIP/{n} application Wait 20")
    wait_for(lambda: all(p.invite_times() for p in phones), 10, message="ten rings")
    assert asterisk.active_channels() == 10
    asterisk.hang_up_all()
    assert asterisk.active_channels() == 0
    wait_for(lambda: all(p.received("CANCEL") for p in phones), 5, message="ten CANCELs")
