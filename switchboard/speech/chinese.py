"""
How numbers are read aloud in Mandarin.

Two readings, as people say them on the phone:

- L{count}: a number read as a number, for buildings and units
  (3 -> 三号楼, 12 -> 十二号楼, 1 -> 一单元, 101 -> 一百零一). Always 二, never
  两: a building or unit number names something, it does not count it
  (二号楼, 二单元, 一百二十二). Ten to nineteen drop the leading 一 (十二), as
  people say them; inside a larger number the 一 stays (一百一十).
- L{digits}: a number read digit by digit, for rooms and phone numbers, with
  幺 for 1 (101 -> 幺零幺室, 87650190 -> 八七六五零幺九零): 幺 cannot be
  misheard as 七 over a phone line, which is why Chinese telephony uses it.
  幺 is used only in this digit-by-digit reading.
"""

from __future__ import annotations

import re

DIGITS = "零一二三四五六七八九"
PHONE_DIGITS = "零幺二三四五六七八九"
_UNITS = ((1000, "千"), (100, "百"), (10, "十"))
_SEPARATORS = " -()+"

MAX_COUNT = 10 ** 12 - 1  # up to 9999亿...: far beyond any building or unit


def _below_10000(n: int) -> str:
    """Read 0 < n < 10000 with every 一 kept (一十二), zeros collapsed to one 零."""
    out = []
    zero = False
    for value, unit in _UNITS:
        d, n = divmod(n, value)
        if d:
            if zero:
                out.append("零")
            out.append(DIGITS[d] + unit)
            zero = False
        elif out:
            zero = True
    if n:
        if zero or (out and not out[-1].endswith("十")):
            out.append("零")
        out.append(DIGITS[n])
    return "".join(out)


def count(n: int) -> str:
    """
    Read C{n} as a number: 3 -> 三, 12 -> 十二, 20 -> 二十, 101 -> 一百零一,
    110 -> 一百一十, 1005 -> 一千零五, 10001 -> 一万零一. ValueError for a
    negative number, a bool, or one above L{MAX_COUNT}.
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise ValueError(f"not a whole number: {n!r}")
    if n < 0 or n > MAX_COUNT:
        raise ValueError(f"cannot read {n} as a building or unit number (0 to {MAX_COUNT})")
    if n == 0:
        return "零"
    groups = []  # (value below 10000, unit) from the highest
    for value, unit in ((10 ** 8, "亿"), (10 ** 4, "万"), (1, "")):
        g, n = divmod(n, value)
        groups.append((g, unit))
    out = []
    gap = False  # a zero digit since the last one read (20003400: 二千万零三千四百)
    for g, unit in groups:
        if g == 0:
            gap = gap or bool(out)
            continue
        if out and (gap or g < 1000):
            out.append("零")
        out.append(_below_10000(g) + unit)
        gap = g % 10 == 0
    text = "".join(out)
    if text.startswith("一十"):  # 十二, not 一十二 (only at the very start)
        text = text[1:]
    return text


def digits(s: str) -> str:
    """
    Read C{s} digit by digit with 幺 for 1: "101" -> "幺零幺",
    "87650190" -> "八七六五零幺九零". ASCII letters are kept as they are
    (room "B101" -> "B幺零幺"); spaces, hyphens, brackets and "+" are
    dropped (they are not read aloud). ValueError for anything else.
    """
    if isinstance(s, int) and not isinstance(s, bool):
        s = str(s)
    if not isinstance(s, str):
        raise ValueError(f"not a string of digits: {s!r}")
    out = []
    for ch in s:
        if "0" <= ch <= "9":
            out.append(PHONE_DIGITS[ord(ch) - 48])
        elif ch.isascii() and ch.isalpha():
            out.append(ch.upper())
        elif ch in _SEPARATORS:
            continue
        else:
            raise ValueError(f"cannot read {ch!r} in {s!r} digit by digit")
    return "".join(out)


# Words espeak-ng 1.51 (voice cmn-latn-pinyin) reads with the wrong tone or
# sound, as heard in prompts; that voice reads Latin text as pinyin, so each is
# replaced by its reading. Add a word here when a rendering mispronounces it.
POLYPHONES = {
    "重听": "chong2ting1",  # zhong4: "heavy hearing"
    "重新": "chong2xin1",
    "重复": "chong2fu4",
    "重拨": "chong2bo1",
    "重播": "chong2bo1",
    "重试": "chong2shi4",
    "银行": "yin2hang2",  # xing2
}

_FULLWIDTH = {c: c - 0xFEE0 for c in range(0xFF10, 0xFF5B)}  # ０-９, Ａ-Ｚ, ａ-ｚ (and a few signs)
# Signs the voice would read in English ("#" -> "hash"), as said on a phone.
_SYMBOLS = str.maketrans({"#": "井", "*": "星", "&": "和", "+": "加", "-": " "})
_RUN = re.compile(r"[0-9]+")


def _read_run(match: re.Match) -> str:
    run = match.group(0)
    after = match.string[match.end():match.end() + 1]
    if after == "年":  # 2026年: 二零二六年, a year is read digit by digit with 一
        return "".join(DIGITS[ord(c) - 48] for c in run)
    if len(run) <= 2 and not (len(run) == 2 and run[0] == "0"):
        return count(int(run))  # 请按1, 12号楼, 10月1日
    return digits(run)  # 101, 12345, 0571: room, hotline and phone numbers


def spoken(text: str) -> str:
    """
    C{text} as given to the Mandarin voice: full-width digits and letters made
    ASCII, runs of ASCII digits read the way people say them (one or two
    digits as a number: 12号楼 -> 十二号楼, 请按1 -> 请按一; three or more digit
    by digit with 幺: 101室 -> 幺零幺室, 12345 -> 幺二三四五; before 年 digit by
    digit with 一: 2026年 -> 二零二六年), and the words of L{POLYPHONES}
    replaced by their pinyin; # * & + said as 井 星 和 加, - as a pause. espeak-ng reads "101" as 一百一, which a
    listener hears as 110: write 一百零一 when a number is meant.
    """
    text = text.translate(_FULLWIDTH).translate(_SYMBOLS)
    text = _RUN.sub(_read_run, text)
    for word, reading in POLYPHONES.items():
        text = text.replace(word, reading)
    return text
