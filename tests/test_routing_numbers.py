"""
Phone numbers in the routing file: the forms staff write become E.164 (or
stay an explicit channel); anything else is a located error.
"""

from __future__ import annotations

import textwrap

import pytest

from switchboard.numbers import NumberPlan
from switchboard.routing import schema
from switchboard.yamlconf import ConfigError
from tests.test_hotline_support import DIALER, PLAN


def department(phones: str, plan=PLAN):
    doc = textwrap.dedent(f"""\
        hotline: {{numbers: ["12345"], menu: main, operator: op}}
        menus: {{main: {{prompt: m, options: {{1: a}}}}}}
        destinations:
          op: {{type: operator, phones: [87650100]}}
          a: {{type: department, phones: {phones}, overflow: [op]}}
        """)
    return schema.loads(doc, "r.yaml", plan)


@pytest.mark.parametrize("written, e164", [
    ('"0591-87654321"', "+8659187654321"),
    ("87654321", "+8659187654321"),            # a YAML number, area code implied
    ('"87654321"', "+8659187654321"),
    ('"+86 591 8765 4321"', "+8659187654321"),
    ('"(0591) 8765-4321"', "+8659187654321"),
    ('"008659187654321"', "+8659187654321"),
    ("13812345678", "+8613812345678"),         # a mobile
    ('"138 1234 5678"', "+8613812345678"),
    ('"010-12345678"', "+861012345678"),       # another city
])
def test_forms_staff_write(written, e164):
    assert department(f"[{written}]").destinations["a"].targets == (e164,)


def test_explicit_channels_stay_as_written():
    r = department('[PJSIP/front-desk, "Local/100@internal"]')
    assert r.destinations["a"].targets == ("PJSIP/front-desk", "Local/100@internal")


def test_a_single_number_needs_no_list():
    assert department('"0591-87654321"').destinations["a"].targets == ("+8659187654321",)


def test_dial_strings_for_the_lab_trunk():
    targets = department('["0591-87650001", 87650002, 13812345678]').destinations["a"].targets
    assert DIALER.ring_all(targets) == "PJSIP/87650001&PJSIP/87650002&PJSIP/13812345678"


@pytest.mark.parametrize("written, message", [
    ('"0591-876543"', "'0591-876543' is not a valid CN phone number"),
    ('"call me"', "'call me' is not a phone number (only digits, spaces, -, + allowed)"),
    ('"12345"', "'12345' is not a valid CN phone number"),
    ("true", "must be a phone number, not true/false"),
])
def test_bad_numbers_are_located(written, message):
    with pytest.raises(ConfigError) as caught:
        department(f"[87650001, {written}]")
    (problem,) = caught.value.problems
    assert (problem.location.line, problem.location.column) == (5, 44)
    assert problem.key == "destinations.a.phones[1]"
    assert problem.message == message
    assert problem.hint.startswith("write it like 0591-87654321, 87654321, +86 591 8765 4321")


def test_same_number_written_twice():
    with pytest.raises(ConfigError) as caught:
        department('["0591-87650001", 87650001]')
    assert [str(p) for p in caught.value.problems] == [
        "r.yaml:5:51: destinations.a.phones[1]: +8659187650001 is listed twice (as phones[0])"]


def test_short_number_needs_an_area_code():
    with pytest.raises(ConfigError) as caught:
        department("[87654321]", plan=NumberPlan("CN", ""))
    messages = {p.key: p.message for p in caught.value.problems}
    assert messages["destinations.a.phones[0]"] == (
        "'87654321' is not a valid CN phone number (is an area code set?)")


def test_service_number_and_hotline_numbers():
    r = schema.loads(textwrap.dedent("""\
        hotline: {numbers: ["12345", "0591-87650000", 87650009], menu: main, operator: op}
        menus: {main: {prompt: m, options: {1: shop}}}
        destinations:
          op: {type: operator, phones: [87650100]}
          shop: {type: service, number: "+86 591 8765 0041", trunk: outside, overflow: [op]}
        """), "r.yaml", PLAN)
    assert r.hotline.numbers == ("12345", "+8659187650000", "+8659187650009")
    assert r.destinations["shop"].targets == ("+8659187650041",)
    assert DIALER.dial_string("+8659187650041", "outside") == "PJSIP/87650041@trunk"
