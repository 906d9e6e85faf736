"""
Residents' mobiles for text notices: checked as Chinese mobiles, kept in the
registry (CSV/Excel import, the CLI), never shown or logged in full, and a
text campaign sends to them through the text channel.
"""

import io
import os

import pytest
from twisted.internet import task
from twisted.logger import globalLogPublisher

from switchboard.community import csvfile
from switchboard.community.mobiles import mask, parse_entry, parse_mobile
from switchboard.community.registry import HouseholdData, Registry, RegistryError
from switchboard.community.targets import Target, for_texts, select_households
from switchboard.numbers import InvalidNumber
from switchboard.texting import SipMessageChannel, TextResult, TextSender
from tests.test_alarm_support import PLAN, database, number
from tests.test_texting import DIALER

MOBILE = "+8613800138000"
OTHER = "+8619912345678"
HEADER = "numbers,building,unit,room,residents,mobiles\n"


# Checking --------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["13800138000", "138 0013 8000", "138-0013-8000",
                                  "+86 138 0013 8000", "8613800138000", "008613800138000"])
def test_a_chinese_mobile_in_any_form_is_stored_in_e164(text):
    assert parse_mobile(text) == MOBILE


@pytest.mark.parametrize("text, why", [
    ("059187650001", "is a landline, not a mobile"),
    ("87650001", "is not a valid Chinese mobile"),
    ("1380013800", "is not a valid Chinese mobile"),       # 10 digits
    ("+14155550100", "is not a Chinese (+86) number"),
    ("138OO138000", "is not a phone number"),
    ("", "empty mobile number"),
])
def test_what_is_not_a_chinese_mobile_is_refused_without_showing_it_in_full(text, why):
    with pytest.raises(InvalidNumber) as e:
        parse_mobile(text)
    assert why in str(e.value)
    digits = "".join(c for c in text if c.isdigit())
    if len(digits) >= 8:
        assert digits not in str(e.value).replace(" ", "")


def test_mask_keeps_the_prefix_and_the_last_four_digits():
    assert mask(MOBILE) == "+86138****8000"
    assert mask("13800138000") == "138****8000"
    assert mask("12345") == "***45"
    assert parse_entry("13800138000= 陈梅 ") == (MOBILE, "陈梅")


# The registry ----------------------------------------------------------------------

@pytest.fixture
def registry(tmp_path):
    return Registry(database(tmp_path), PLAN, max_neighbours=10)


@pytest.mark.database
def test_imported_with_the_households_and_kept_by_a_file_without_the_column(registry):
    csvfile.import_text(registry, HEADER + "87650001,3,1,101,陈梅,13800138000=陈梅;19912345678\n"
                        "87650002,3,1,102,林涛,\n", "h.csv")
    assert [(m.number, m.name) for m in registry.find("87650001").mobiles] == \
        [(MOBILE, "陈梅"), (OTHER, "")]
    assert registry.find("87650002").mobiles == []
    # A file without the column (or a change of neighbours) leaves them registered.
    csvfile.import_text(registry, "numbers,building,unit,room\n87650001,3,1,101\n", "h.csv")
    registry.set_neighbours("87650001", [(number(3), "")])
    assert [m.number for m in registry.find("87650001").mobiles] == [MOBILE, OTHER]
    # An empty cell removes them.
    csvfile.import_text(registry, HEADER + "87650001,3,1,101,陈梅,\n", "h.csv")
    assert registry.find("87650001").mobiles == []
    registry.set_mobiles("87650002", [(OTHER, "林涛")])
    assert [(m.number, m.name) for m in registry.find("87650002").mobiles] == [(OTHER, "林涛")]


@pytest.mark.database
def test_a_bad_mobile_refuses_the_import_with_its_line_and_masked(registry):
    with pytest.raises(RegistryError) as e:
        csvfile.import_text(registry, HEADER + "87650001,3,1,101,陈梅,13800138000\n"
                            "87650002,3,1,102,林涛,059187650001;13800138000;13800138000\n",
                            "h.csv")
    assert e.value.problems == [
        "h.csv:3: mobiles: 0591****0001 is a landline, not a mobile",
        "h.csv:3: mobile +86138****8000 is listed twice"]
    assert registry.households() == []   # all or nothing


@pytest.mark.database
def test_an_excel_workbook_brings_mobiles_typed_as_numbers(registry, tmp_path):
    from openpyxl import Workbook
    book = Workbook()
    sheet = book.active
    sheet.append(["numbers", "building", "unit", "room", "mobiles"])
    sheet.append([87650001, 3, 1, 101, 13800138000])     # Excel keeps a mobile as a number
    path = tmp_path / "h.xlsx"
    book.save(path)
    csvfile.import_csv(registry, str(path))
    assert [m.number for m in registry.find("87650001").mobiles] == [MOBILE]


@pytest.mark.database
def test_export_has_them_in_full_and_imports_back(registry):
    registry.add(HouseholdData(numbers=[number(1)], room="101", mobiles=[(MOBILE, "陈梅")]))
    out = io.StringIO()
    csvfile.export_csv(registry, out)
    assert out.getvalue().splitlines()[1].endswith(",'+8613800138000=陈梅")
    csvfile.import_text(registry, out.getvalue())
    assert [(m.number, m.name) for m in registry.find("87650001").mobiles] == [(MOBILE, "陈梅")]


@pytest.mark.database
def test_the_command_line_registers_shows_masked_and_replaces(tmp_path, capsys):
    from switchboard.cli import main
    from tests import databases
    config = tmp_path / "switchboard.yaml"
    config.write_text(f"database: {databases.url(tmp_path, 'sb')}\n"
                      "numbers: {region: CN, area_code: \"591\"}\n"
                      f"alarm: {os.path.abspath('config/alarm.yaml')}\n")

    def run(*argv):
        code = main(["--config", str(config), *argv])
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = run("households", "add", "--number", "87650001", "--room", "101",
                       "--mobile", "138 0013 8000=陈梅")
    assert code == 0 and "mobiles:    +86138****8000 陈梅" in out
    assert "13800138000" not in out
    code, _, err = run("mobiles", "set", "1", "059187650002")
    assert code == 1 and "mobile 1: 0591****0002 is a landline" in err
    assert run("mobiles", "set", "1", "19912345678", "13800138000=陈梅")[0] == 0
    code, out, _ = run("households", "show", "1")
    assert "mobiles:    +86199****5678, +86138****8000 陈梅" in out
    export = tmp_path / "export.csv"
    assert run("households", "export", str(export))[0] == 0
    assert os.stat(export).st_mode & 0o077 == 0     # names, numbers and mobiles: 0600
    assert "+8619912345678;+8613800138000=陈梅" in export.read_text(encoding="utf-8-sig")
    assert run("mobiles", "set", "1")[0] == 0
    assert "mobiles" not in run("households", "show", "1")[1]


# A text campaign ---------------------------------------------------------------------

def test_texts_go_to_each_registered_mobile_else_to_the_landline():
    targets = [Target(1, number(1), "3号楼101", "陈梅", ((MOBILE, "陈梅"), (OTHER, "女儿"))),
               Target(2, number(2), "3号楼102", "林涛")]
    assert [(t.household_id, t.number, t.address) for t in for_texts(targets)] == [
        (1, MOBILE, "3号楼101 (陈梅)"), (1, OTHER, "3号楼101 (女儿)"), (2, number(2), "3号楼102")]


@pytest.mark.database
def test_a_household_chosen_brings_its_mobiles(registry):
    registry.add(HouseholdData(numbers=[number(1)], building="3", room="101",
                               mobiles=[(MOBILE, "陈梅")]))
    [target] = select_households(registry.database, PLAN, "building:3")
    assert target.mobiles == ((MOBILE, "陈梅"),)


class FakeAMI:
    def __init__(self):
        self.sent = []

    def send_action(self, name, headers):
        from twisted.internet import defer
        self.sent.append(dict(headers))
        return defer.succeed({})


def test_a_mobile_goes_to_the_sms_gateway_address_a_landline_to_its_phone():
    ami = FakeAMI()
    channel = SipMessageChannel(ami, DIALER, mobile_address="pjsip:sms/sip:{number}@gw")
    channel.send(MOBILE, "x")
    channel.send(number(1), "x")
    assert [h["Destination"] for h in ami.sent] == ["pjsip:sms/sip:13800138000@gw",
                                                    "pjsip:87650001"]
    ami = FakeAMI()
    SipMessageChannel(ami, DIALER).send(MOBILE, "x")     # no gateway: the same address
    assert ami.sent[0]["Destination"] == "pjsip:13800138000"


def test_a_text_not_sent_is_logged_with_the_mobile_masked():
    class Refusing:
        def send(self, to, body):
            return TextResult(to, False, "refused")

    seen = []
    globalLogPublisher.addObserver(seen.append)
    try:
        clock = task.Clock()
        sender = TextSender(Refusing(), clock, retries=0)
        sender.send(MOBILE, "x")
    finally:
        globalLogPublisher.removeObserver(seen.append)
    from twisted.logger import formatEvent
    lines = [formatEvent(e) for e in seen]
    assert any("+86138****8000" in line for line in lines), lines
    assert not any("13800138000" in line for line in lines)


def test_mobile_address_in_settings_is_checked():
    from switchboard import yamlconf
    from switchboard.texting import read_settings

    def read(text):
        check = yamlconf.Checker()
        data = check.mapping(yamlconf.loads(text, "switchboard.yaml"), "", allowed={"texting"})
        return read_settings(check, data), check.problems

    settings, problems = read("texting: {mobile_address: 'pjsip:sms/sip:{number}@gw'}\n")
    assert (settings.mobile_address, problems) == ("pjsip:sms/sip:{number}@gw", [])
    settings, problems = read("texting: {mobile_address: 'pjsip:sms'}\n")
    assert [p.key for p in problems] == ["texting.mobile_address"]
    assert settings.mobile_address == ""


@pytest.mark.database
def test_a_text_campaign_has_a_delivery_for_each_mobile_and_the_landline_without(
        tmp_path, capsys):
    from sqlalchemy import select

    from broadcast.models import Delivery
    from switchboard.cli import main
    from switchboard.storage import Database
    from tests import databases
    config = tmp_path / "switchboard.yaml"
    config.write_text(f"database: {databases.url(tmp_path, 'sb')}\n"
                      "numbers: {region: CN, area_code: \"591\"}\n"
                      f"alarm: {os.path.abspath('config/alarm.yaml')}\n")
    households = tmp_path / "h.csv"
    households.write_text(HEADER + "87650001,3,1,101,陈梅,13800138000=陈梅;19912345678=女儿\n"
                          "87650002,3,1,102,林涛,\n", encoding="utf-8")
    assert main(["--config", str(config), "households", "import", str(households)]) == 0
    capsys.readouterr()
    assert main(["--config", str(config), "broadcast", "send", "--channel", "text",
                 "--text", "周六体检", "--to", "building:3"]) == 0
    assert capsys.readouterr().out.startswith(
        "campaign 1: 2 households, normal, by text to 3 phones")
    database = Database(databases.url(tmp_path, "sb"))
    with database.session() as session:
        rows = [(d.household_id, d.number, d.address) for d in
                session.execute(select(Delivery).order_by(Delivery.id)).scalars()]
    database.close()
    assert rows == [(1, MOBILE, "building 3, unit 1, room 101 (陈梅)"),
                    (1, OTHER, "building 3, unit 1, room 101 (女儿)"),
                    (2, number(2), "building 3, unit 1, room 102")]
