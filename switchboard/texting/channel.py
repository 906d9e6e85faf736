"""
What sends a text message (L{ITextChannel}), and SIP MESSAGE through
Asterisk's AMI C{MessageSend}: the text reaches SIP phones (the duty
office's desk phone, a resident's SIP handset) on the same Asterisk that
carries the calls.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from twisted.internet import defer
from zope.interface import Attribute, Interface, implementer

from switchboard.community.mobiles import is_mobile, mask
from switchboard.dialing import is_channel

#: Bytes of a body Asterisk takes: C{MessageSend} decodes C{Base64Body}
#: into a buffer of 1301 bytes (main/message.c), cutting anything longer.
MAX_BODY_BYTES = 1300
_ELLIPSIS = "…"


@dataclass(frozen=True)
class TextResult:
    """
    A message's fate: C{sent} (handed on: for SIP MESSAGE, Asterisk took it
    for sending; SIP gives no delivery receipt through AMI) or not, with
    C{detail} for people.
    """

    to: str
    sent: bool
    detail: str


class ITextChannel(Interface):
    """A way of sending text messages to phone numbers."""

    name = Attribute("A short name for records and logs (C{sip}).")

    def send(to, body):
        """
        Send C{body} (text) to C{to} (an E.164 number or an explicit
        channel such as C{PJSIP/duty-office}). Returns a Deferred firing
        with a L{TextResult}; it never fails.
        """


def fit(body: str, limit: int = MAX_BODY_BYTES) -> str:
    """
    C{body} cut to at most C{limit} bytes of UTF-8 on a character boundary,
    ending in an ellipsis when cut (a Chinese character is 3 bytes: a
    half character must never be sent).
    """
    raw = body.encode("utf-8")
    if len(raw) <= limit:
        return body
    room = limit - len(_ELLIPSIS.encode("utf-8"))
    return raw[:room].decode("utf-8", "ignore") + _ELLIPSIS


@implementer(ITextChannel)
class SipMessageChannel:
    """
    Text as SIP MESSAGE, sent by Asterisk (AMI C{MessageSend}, which needs
    the manager user's C{message} write permission and Asterisk's
    C{res_pjsip_messaging}).

    The body travels base64-encoded (C{Base64Body}): any text, Chinese and
    line breaks included, without a byte of it read as AMI framing.

    @param ami: the L{switchboard.ami.AMIClient}.
    @param dialer: the L{switchboard.dialing.Dialer}, for the number a
        trunk dials.
    @param address: the C{Destination} for a number: C{{number}} is the
        number as the exchange dials it (e.g. C{pjsip:{number}}, the
        endpoint of that name). An explicit channel C{PJSIP/x} is sent to
        C{pjsip:x}.
    @param sender: the C{From} (e.g. C{"Switchboard" <sip:alarm@community>});
        empty: the endpoint's own.
    @param mobile_address: the C{Destination} for a mobile number (a
        resident's, registered for text notices): an SMS gateway that takes
        SIP MESSAGE, e.g. C{pjsip:sms-gateway/sip:{number}@gateway}; empty:
        C{address}.
    """

    name = "sip"

    def __init__(self, ami, dialer, *, address="pjsip:{number}", sender="", mobile_address=""):
        self.ami = ami
        self.dialer = dialer
        self.address_template = address
        self.mobile_template = mobile_address or address
        self.sender = sender

    def address(self, to: str) -> str:
        if is_channel(to):
            tech, _, resource = to.partition("/")
            return f"{tech.lower()}:{resource}"
        template = self.mobile_template if is_mobile(to) else self.address_template
        return template.format(number=self.dialer.numbers.dialable(to))

    def send(self, to, body):
        try:
            headers = [("Destination", self.address(to))]
        except Exception as e:
            return defer.succeed(TextResult(to, False, f"no address for {mask(to)}: {e}"))
        if self.sender:
            headers.append(("From", self.sender))
        encoded = base64.b64encode(fit(body).encode("utf-8")).decode("ascii")
        headers.append(("Base64Body", encoded))
        d = self.ami.send_action("MessageSend", headers)
        d.addCallbacks(lambda _: TextResult(to, True, "taken by Asterisk for sending"),
                       lambda failure: TextResult(to, False, _why(failure)))
        return d


def _why(failure) -> str:
    value = failure.value
    return (getattr(value, "message", None) or str(value) or type(value).__name__)[:200]
