"""
Calling a resident back through AMI: the staff phone rings first, and once
it is answered Asterisk dials the resident from it (C{Originate} of the
staff phone with C{Dial(resident)}).

The staff phone shows the resident's number as the caller, so whoever
picks up knows whom they are about to talk to. The resident sees the
staff phone's caller ID as Asterisk sets it for that phone's calls.
"""

from __future__ import annotations

from twisted.internet import defer

from switchboard.dialing import is_channel

#: Seconds the staff phone rings, and then the resident's phone.
STAFF_RING = 30
RESIDENT_RING = 45


class CannotCallBack(ValueError):
    """The request or the phone given cannot be called (the message says why)."""


def staff_channel(dialer, phone: str) -> str:
    """The channel of the staff phone C{phone} (a number or an explicit channel)."""
    phone = (phone or "").strip()
    if is_channel(phone):
        return phone
    number = dialer.numbers.try_normalise(phone)
    if number is None:
        raise CannotCallBack(f"--from {phone!r}: not a phone number or channel")
    return dialer.dial_string(number)


def call_back(ami, dialer, caller: str, from_phone: str, *, trunk: str = "default",
              staff_ring=STAFF_RING, resident_ring=RESIDENT_RING) -> defer.Deferred:
    """
    Ring C{from_phone}; once answered, dial C{caller} from it.

    @param ami: a logged-in L{switchboard.ami.client.AMIClient}.
    @param dialer: the L{switchboard.dialing.Dialer} (numbers to channels).
    @return: a Deferred firing with the staff leg's L{OriginateResult}
        (C{answered}: the resident is being dialled), or failing with
        L{CannotCallBack} before anything is sent.
    """
    try:
        staff = staff_channel(dialer, from_phone)
        number = dialer.numbers.try_normalise(caller or "")
        if number is None and not is_channel(caller or ""):
            raise CannotCallBack(f"the caller {caller!r} has no number to call back")
        resident = dialer.dial_string(number or caller, trunk)
    except CannotCallBack:
        return defer.fail()
    except KeyError as e:
        return defer.fail(CannotCallBack(f"no trunk {e}"))
    shown = number or caller
    return ami.originate(staff, application="Dial", data=f"{resident},{resident_ring}",
                         caller_id=f'"回电 {shown}" <{shown}>', timeout=staff_ring)
