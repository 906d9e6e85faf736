import pytest

from switchboard.numbers import InvalidNumber, NumberPlan

plan = NumberPlan("CN", "591")


@pytest.mark.parametrize("written", [
    "0591-87654321", "87654321", "+86 591 8765 4321", "8659187654321", "0086 591 87654321",
    "(0591) 8765-4321", "059187654321",
])
def test_the_forms_staff_write_are_one_number(written):
    assert plan.normalise(written) == "+8659187654321"


def test_mobiles_and_other_areas():
    assert plan.normalise("138 1234 5678") == "+8613812345678"
    assert plan.normalise("010-12345678") == "+861012345678"
    assert plan.dialable("+861012345678") == "01012345678"
    assert plan.dialable("+8613812345678") == "13812345678"
    assert plan.dialable("+8659187654321") == "87654321"


@pytest.mark.parametrize("bad", ["", "12", "abc", "0591-1234", "87654321x", "+1 555"])
def test_invalid_numbers_are_refused(bad):
    with pytest.raises(InvalidNumber):
        plan.normalise(bad)


def test_a_local_number_needs_an_area_code():
    with pytest.raises(InvalidNumber, match="area code"):
        NumberPlan("CN", "").normalise("87654321")


def test_variants_cover_what_an_exchange_presents():
    forms = plan.variants("+8659187654321")
    for presented in ("87654321", "059187654321", "+8659187654321", "8659187654321"):
        assert presented in forms
    assert plan.try_normalise("garbage") is None


def test_what_is_not_a_number_is_parsed_once(monkeypatch):
    # The hotline looks its own number (12345, not a phone number) up on
    # every call: a failure must be remembered as a success is.
    import phonenumbers
    parsed = []
    real = phonenumbers.parse
    monkeypatch.setattr(phonenumbers, "parse", lambda *a, **k: parsed.append(a) or real(*a, **k))
    other = NumberPlan("CN", "592")     # a plan of its own: nothing cached yet
    assert other.try_normalise("12345") is None
    first = len(parsed)
    assert first > 0
    for _ in range(3):
        assert other.try_normalise("12345") is None
        with pytest.raises(InvalidNumber, match="not a valid CN phone number"):
            other.normalise("12345")
    assert len(parsed) == first
