"""
Residents' mobile numbers, registered for text notices (a broadcast sent as
text, L{broadcast}): each is checked with phonenumbers to be a Chinese
mobile, stored in E.164, and private: a log line never carries one in full
(L{mask}).
"""

from __future__ import annotations

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

from switchboard.numbers import InvalidNumber

REGION = "CN"
#: Mobiles a household may register (one for each resident, a few to spare).
MAX_MOBILES = 10
_SEPARATORS = str.maketrans("", "", " -().\u00a0\u3000")
_MOBILE_TYPES = (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE)


def parse_mobile(text) -> str:
    """
    C{text} (138 0013 8000, +86 138..., 0086..., 86...) as the E.164 of a
    Chinese mobile; L{InvalidNumber} saying why not (never the number in
    full: the message may reach a log).
    """
    raw = str(text if text is not None else "").strip()
    digits = raw.translate(_SEPARATORS)
    if not digits:
        raise InvalidNumber("empty mobile number")
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    elif digits.startswith("86") and len(digits) == 13:
        digits = "+" + digits
    shown = mask(digits)
    if not digits.lstrip("+").isdigit():
        raise InvalidNumber(f"{shown} is not a phone number (only digits, spaces, -, + allowed)")
    try:
        number = phonenumbers.parse(digits, REGION)
    except NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise InvalidNumber(f"{shown} is not a valid Chinese mobile number "
                            "(11 digits starting 13-19)")
    if phonenumbers.region_code_for_number(number) != REGION:
        raise InvalidNumber(f"{shown} is not a Chinese (+86) number")
    if phonenumbers.number_type(number) not in _MOBILE_TYPES:
        raise InvalidNumber(f"{shown} is a landline, not a mobile")
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def parse_entry(text) -> tuple:
    """C{"13800138000"} or C{"13800138000=陈梅"} -> (E.164, resident's name)."""
    number, _, name = str(text).partition("=")
    return parse_mobile(number), name.strip()


def mask(number) -> str:
    """
    C{+8613800138000} -> C{+86138****8000}: enough to tell two apart on a
    screen or in a log, not enough to call. Short texts keep only their
    last two characters.
    """
    text = str(number or "")
    if len(text) >= 11:
        return text[:-8] + "****" + text[-4:]
    return "*" * max(0, len(text) - 2) + text[-2:]


def is_mobile(number) -> bool:
    """Whether the E.164 C{number} is a mobile (a text may go to it)."""
    try:
        parsed = phonenumbers.parse(str(number), REGION)
    except NumberParseException:
        return False
    return phonenumbers.number_type(parsed) in _MOBILE_TYPES
