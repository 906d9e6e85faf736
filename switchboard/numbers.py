"""
Phone-number normalisation.

Staff write numbers as C{0591-87654321}, C{87654321}, C{+86 591 8765 4321} or a
mobile; exchanges present caller IDs with or without the area code, the trunk
prefix C{0} or C{+86}. Everything is stored and compared in E.164
(C{+8659187654321}); L{NumberPlan.variants} lists the forms an exchange may
present so native dialplan lookups (AstDB) match too.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat


class InvalidNumber(ValueError):
    """A text that is not a valid phone number for the configured plan."""


_SEPARATORS = str.maketrans("", "", " -().\u00a0\u3000")


@dataclass(frozen=True)
class NumberPlan:
    """
    The numbering context of one community.

    @ivar region: ISO country code (C{CN}).
    @ivar area_code: the local area code without trunk prefix (C{591} for
        Fuzhou), used for numbers written without one; empty if none.
    """

    region: str = "CN"
    area_code: str = ""

    def parse(self, text) -> phonenumbers.PhoneNumber:
        raw = str(text).strip() if text is not None else ""
        digits = raw.translate(_SEPARATORS)
        if not digits:
            raise InvalidNumber("empty phone number")
        if digits.startswith("00"):
            digits = "+" + digits[2:]
        if not (digits.lstrip("+").isdigit()):
            raise InvalidNumber(f"{raw!r} is not a phone number (only digits, spaces, -, + allowed)")
        candidates = [digits]
        if not digits.startswith(("+", "0")) and self.area_code:
            # A local subscriber number as dialled inside the area; a mobile
            # (1xx, 11 digits in CN) stays as it is.
            candidates.insert(0, "0" + self.area_code + digits)
        if digits.startswith("86") and not digits.startswith("+") and len(digits) > 11:
            candidates.append("+" + digits)
        for candidate in candidates:
            try:
                number = phonenumbers.parse(candidate, self.region)
            except NumberParseException:
                continue
            if phonenumbers.is_valid_number(number) and self._long_enough(number):
                return number
        raise InvalidNumber(f"{raw!r} is not a valid {self.region} phone number"
                            + ("" if self.area_code else " (is an area code set?)"))

    @staticmethod
    def _long_enough(number) -> bool:
        # phonenumbers' metadata for China accepts area code + 4 digits;
        # real subscriber numbers there have 7 or 8 digits after the area code.
        if number.country_code == 86:
            return len(str(number.national_number)) >= 10
        return True

    def normalise(self, text) -> str:
        """Return C{text} in E.164 or raise L{InvalidNumber}."""
        e164, problem = _normalise(self, str(text) if text is not None else "")
        if e164 is None:
            raise InvalidNumber(problem)
        return e164

    def try_normalise(self, text) -> str | None:
        """Like L{normalise} but return C{None} for a bad number (caller IDs)."""
        return _normalise(self, str(text) if text is not None else "")[0]

    def variants(self, e164: str) -> list[str]:
        """The forms in which an exchange may present C{e164} as a caller ID."""
        number = phonenumbers.parse(e164, self.region)
        national = str(number.national_number)
        forms = [e164, e164.lstrip("+"), "00" + e164.lstrip("+")]
        if number.country_code == phonenumbers.country_code_for_region(self.region):
            forms += [national, "0" + national]
            if self.area_code and national.startswith(self.area_code):
                forms.append(national[len(self.area_code):])
        seen, out = set(), []
        for f in forms:
            if f not in seen:
                seen.add(f)
                out.append(f)
        return out

    def dialable(self, e164: str) -> str:
        return _dialable(self, e164)

    def _dialable(self, e164: str) -> str:
        """The digits to send to the trunk: local numbers without area code, else national/international."""
        number = phonenumbers.parse(e164, self.region)
        if number.country_code != phonenumbers.country_code_for_region(self.region):
            return "00" + e164.lstrip("+")
        national = str(number.national_number)
        if phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.MOBILE:
            return national
        if self.area_code and national.startswith(self.area_code):
            return national[len(self.area_code):]
        return "0" + national


# Caller IDs and configured numbers repeat call after call; parsing them is
# the costly part of a hotline call's own work. What is not a number is
# remembered too (with why): a hotline number such as 12345, looked up on
# every call, was parsed again each time it failed (~0.2 ms a call).
@lru_cache(maxsize=65536)
def _normalise(plan: NumberPlan, text: str) -> tuple:
    """C{(e164, None)}, or C{(None, why)} for what is not a valid number."""
    try:
        return phonenumbers.format_number(plan.parse(text), PhoneNumberFormat.E164), None
    except InvalidNumber as e:
        return None, str(e)


@lru_cache(maxsize=65536)
def _dialable(plan: NumberPlan, e164: str) -> str:
    return plan._dialable(e164)
