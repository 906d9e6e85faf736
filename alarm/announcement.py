"""
What a neighbour hears when a #9 call reaches them: one Mandarin sentence
per household, rendered when the household is registered or changed
(L{alarm.speaking.Announcer}), never while anybody waits on the line.

  紧急求助！华林花园三号楼一单元幺零幺室，陈梅需要帮助。请注意：行动不便，独居。
  能马上过去请按一，去不了请按二。

Numbers are read the way people say them (L{switchboard.speech.chinese}):
building and unit as numbers (三号楼, 一单元), the room digit by digit with
幺 for 1 (幺零幺室). Everything here is pure: the sentence depends on the
household's fields only, so the rendering's cache key (a hash of the text)
changes exactly when what a neighbour should hear changes.
"""

from __future__ import annotations

import re

from switchboard.speech import chinese

OPENING = "紧急求助！"
#: The question: the handler waits for 1 or 2 right after the sentence.
QUESTION = "能马上过去请按一，去不了请按二。"

_BUILDING = "号楼"
_UNIT = "单元"
_ROOM = "室"
# A part that already carries its word: "3号楼", "12栋", "2单元", "101室".
_WORDED = re.compile(r"(\d+)\s*(号楼|号|栋|幢|座|楼|单元|室|号房)")
_DIGIT_RUN = re.compile(r"\d+")
_NAME_SEPARATORS = re.compile(r"\s*[;；,，、/]\s*")
_END = "。.！!？?；;，, "
#: Longer digit runs in free text are numbers to dial or read, not to count.
_COUNT_UP_TO = 4


def numbers_in_text(text: str) -> str:
    """
    Digit runs in free text as people read them: short ones as numbers
    (华林2期 -> 华林二期), long ones or with a leading zero digit by digit
    (a phone number).
    """
    def read(m):
        run = m.group()
        if len(run) <= _COUNT_UP_TO and not (run.startswith("0") and len(run) > 1):
            return chinese.count(int(run))
        return chinese.digits(run)
    return _DIGIT_RUN.sub(read, text)


def _part(value: str, word: str, read) -> str:
    """One address part: C{3} -> 三号楼 (C{word} added), C{3号楼} -> 三号楼, else as written."""
    value = value.strip()
    if not value:
        return ""
    if value.isascii() and value.isdigit():
        return read(value) + word
    worded = _WORDED.fullmatch(value)
    if worded:
        return read(worded.group(1)) + worded.group(2)
    if value.isascii() and value.isalnum():
        # A building "A", a room "B101": letters kept, digits read.
        return chinese.digits(value) + word
    return numbers_in_text(value)


def read_building(value: str) -> str:
    """C{"3"} -> 三号楼, C{"12栋"} -> 十二栋."""
    return _part(value, _BUILDING, lambda d: chinese.count(int(d)))


def read_unit(value: str) -> str:
    """C{"1"} -> 一单元."""
    return _part(value, _UNIT, lambda d: chinese.count(int(d)))


def read_room(value: str) -> str:
    """C{"101"} -> 幺零幺室 (digit by digit: 101 is a door, not a quantity)."""
    return _part(value, _ROOM, chinese.digits)


def read_residents(value: str) -> str:
    """C{"陈梅; 陈强"} -> 陈梅、陈强 (as a list is said)."""
    names = [n for n in _NAME_SEPARATORS.split(value.strip()) if n]
    return "、".join(numbers_in_text(n) for n in names)


def _sentence(text: str) -> str:
    text = text.strip().rstrip(_END)
    return text + "。" if text else ""


def announcement(*, community: str = "", building: str = "", unit: str = "", room: str = "",
                 residents: str = "", notes: str = "", with_notes: bool = True) -> str:
    """
    The sentence a neighbour hears for a household: who, where, what to
    press. C{notes} (for responders: "行动不便，独居") are said after the
    name when C{with_notes}.
    """
    where = (numbers_in_text(community.strip()) + read_building(building) + read_unit(unit)
             + read_room(room))
    who = read_residents(residents)
    text = OPENING
    if where:
        text += where + "，"
    text += (who + "需要帮助。") if who else "有住户需要帮助。"
    note = _sentence(numbers_in_text(notes)) if with_notes else ""
    if note:
        text += "请注意：" + note
    return text + QUESTION


def for_household(household, *, with_notes: bool = True) -> str:
    """L{announcement} for a household snapshot (or any object with its fields)."""
    return announcement(community=household.community or "",
                        building=household.building or "", unit=household.unit or "",
                        room=household.room or "",
                        residents=getattr(household, "residents", "") or "",
                        notes=household.notes or "", with_notes=with_notes)


def candidates(household) -> list:
    """
    The sentences to try for C{household}, best first: with its notes,
    then without them (when the notes cannot be rendered, the neighbour
    still hears who and where).
    """
    full = for_household(household)
    bare = for_household(household, with_notes=False)
    return [full] if full == bare else [full, bare]
