"""How numbers are read aloud in Mandarin (switchboard.speech.chinese)."""

from __future__ import annotations

import pytest

from switchboard.speech import chinese


@pytest.mark.parametrize("n, said", [
    (0, "零"), (1, "一"), (2, "二"), (3, "三"), (10, "十"), (11, "十一"), (12, "十二"),
    (19, "十九"), (20, "二十"), (21, "二十一"), (99, "九十九"), (100, "一百"),
    (101, "一百零一"), (110, "一百一十"), (111, "一百一十一"), (120, "一百二十"),
    (200, "二百"), (1000, "一千"), (1001, "一千零一"), (1010, "一千零一十"),
    (1100, "一千一百"), (10000, "一万"), (10001, "一万零一"), (10100, "一万零一百"),
    (12000, "一万二千"), (100000, "十万"), (110000, "十一万"), (1010000, "一百零一万"),
    (20003400, "二千万零三千四百"), (100000001, "一亿零一"),
])
def test_count(n, said):
    assert chinese.count(n) == said


def test_buildings_and_units_read_as_numbers():
    assert chinese.count(3) + "号楼" == "三号楼"
    assert chinese.count(12) + "号楼" == "十二号楼"
    assert chinese.count(1) + "单元" == "一单元"
    assert chinese.count(2) + "单元" == "二单元"  # 二, never 两: it names the unit


@pytest.mark.parametrize("bad", [-1, 10 ** 12, 1.5, True, "3"])
def test_count_refuses(bad):
    with pytest.raises(ValueError):
        chinese.count(bad)


@pytest.mark.parametrize("s, said", [
    ("101", "幺零幺"), ("87650190", "八七六五零幺九零"), ("0", "零"), ("11", "幺幺"),
    ("2345", "二三四五"), ("0571-8765 0190", "零五七幺八七六五零幺九零"),
    ("+86 138", "八六幺三八"), ("b101", "B幺零幺"), (101, "幺零幺"), ("", ""),
])
def test_digits(s, said):
    assert chinese.digits(s) == said


@pytest.mark.parametrize("bad", ["1.5", "一", "12#", None])
def test_digits_refuses(bad):
    with pytest.raises(ValueError):
        chinese.digits(bad)


@pytest.mark.parametrize("text, said", [
    ("华林花园3号楼1单元101室", "华林花园三号楼一单元幺零幺室"),
    ("请按1，重听请按9", "请按一，chong2ting1请按九"),
    ("12号楼", "十二号楼"),
    ("请拨打12345", "请拨打幺二三四五"),
    ("2026年10月1日", "二零二六年十月一日"),
    ("按#号键或*号键", "按井号键或星号键"),
    ("０５７１", "零五七幺"),
    ("05", "零五"),
    ("银行", "yin2hang2"),
    ("没有数字", "没有数字"),
])
def test_spoken(text, said):
    assert chinese.spoken(text) == said
