"""
C{texting:} in switchboard.yaml: how text messages leave.

    texting:
      via: sip                  # SIP MESSAGE through Asterisk (AMI MessageSend)
      address: pjsip:{number}   # the Destination of a number ({number}: as dialled)
      mobile_address: "pjsip:sms-gateway/sip:{number}@gw"   # optional: for residents'
                                # mobiles (an SMS gateway taking SIP MESSAGE); default: address
      from: '"Switchboard" <sip:switchboard@community>'   # optional
      retries: 3                # tries again, 5 s apart then doubling
"""

from __future__ import annotations

from dataclasses import dataclass

from switchboard import yamlconf
from switchboard.texting.channel import SipMessageChannel
from switchboard.texting.sender import TextSender

_KEYS = {"via", "address", "mobile_address", "from", "retries"}
_CHANNELS = ("sip",)


@dataclass(frozen=True)
class TextingSettings:
    via: str = "sip"
    address: str = "pjsip:{number}"
    sender: str = ""
    mobile_address: str = ""
    retries: int = 3


def read_settings(check, data) -> TextingSettings:
    """The checked C{texting:} section of C{data} (problems added to C{check})."""
    m = check.mapping(data.get("texting", yamlconf.LocatedDict()), "texting",
                      data.where("texting"), allowed=_KEYS)
    default = TextingSettings()
    via = check.typed(m, "via", str, "texting.via", default.via)
    if via not in _CHANNELS:
        check.add(m.where("via"), "texting.via", f"unknown text channel {via!r}",
                  "one of: " + ", ".join(_CHANNELS))
        via = default.via
    address = check.typed(m, "address", str, "texting.address", default.address)
    if "{number}" not in address or any(c in address for c in "\r\n\0"):
        check.add(m.where("address"), "texting.address",
                  "must be one line containing {number}", "e.g. pjsip:{number}")
        address = default.address
    mobile_address = check.typed(m, "mobile_address", str, "texting.mobile_address", "")
    if mobile_address and ("{number}" not in mobile_address
                           or any(c in mobile_address for c in "\r\n\0")):
        check.add(m.where("mobile_address"), "texting.mobile_address",
                  "must be one line containing {number}",
                  "e.g. pjsip:sms-gateway/sip:{number}@gateway")
        mobile_address = ""
    sender = check.typed(m, "from", str, "texting.from", default.sender)
    if any(c in sender for c in "\r\n\0"):
        check.add(m.where("from"), "texting.from", "must be one line")
        sender = ""
    retries = check.typed(m, "retries", int, "texting.retries", default.retries)
    if not 0 <= retries <= 10:
        check.add(m.where("retries"), "texting.retries", f"{retries} is out of range",
                  "a whole number from 0 to 10")
        retries = default.retries
    return TextingSettings(via=via, address=address, sender=sender, retries=retries,
                           mobile_address=mobile_address)


def channel_from_settings(settings, ami, clock) -> TextSender:
    """The L{TextSender} that C{settings.texting} describes, over C{ami}."""
    texting = getattr(settings, "texting", None) or TextingSettings()
    channel = SipMessageChannel(ami, settings.dialer, address=texting.address,
                                sender=texting.sender, mobile_address=texting.mobile_address)
    return TextSender(channel, clock, retries=texting.retries)
