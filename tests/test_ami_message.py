"""
AMI messages: the ordered multi-dict, the wire encoding, and refusal of
header injection.
"""

import pytest

from switchboard.ami import AMIArgumentError, Message
from switchboard.ami import message as m
from switchboard.ami.originate import escape_argument, originate_headers, variable_header


class TestMessage:
    def test_first_value_and_all_values_in_order(self):
        msg = Message([("Event", "VarSet"), ("Variable", "A=1"), ("variable", "B=2"),
                       ("Variable", "C=3")])
        assert msg["Variable"] == "A=1"
        assert msg["VARIABLE"] == "A=1"
        assert msg.getall("Variable") == ["A=1", "B=2", "C=3"]
        assert msg.getall("Output") == []
        assert len(msg) == 4
        assert msg.keys() == ["Event", "Variable"]
        assert list(msg) == ["Event", "Variable"]

    def test_missing_header(self):
        msg = Message([("Response", "Success")])
        with pytest.raises(KeyError):
            msg["ActionID"]
        assert msg.get("ActionID") is None
        assert msg.get("ActionID", "x") == "x"
        assert "ActionID" not in msg
        assert "response" in msg

    def test_kind_and_ids(self):
        event = Message([("Event", "OriginateResponse"), ("ActionID", "t-3"),
                         ("Response", "Failure")])
        assert event.is_event
        assert event.event == "OriginateResponse"
        assert event.response == "Failure"
        assert event.action_id == "t-3"
        response = Message([("Response", "Success"), ("ActionID", "t-1")])
        assert not response.is_event
        assert response.events == []
        assert response.complete is None

    def test_placeholders_read_as_none(self):
        msg = Message([("Uniqueid", "<unknown>"), ("Channel", "<null>"), ("Exten", "s")])
        assert msg.value("Uniqueid") is None
        assert msg.value("Channel") is None
        assert msg.value("Exten") == "s"
        assert msg.value("Missing") is None

    def test_add_and_equality(self):
        a = Message({"Response": "Success"})
        a.add("Output", "x")
        assert a == Message([("Response", "Success"), ("Output", "x")])
        assert a != Message([("Response", "Success")])
        assert a.items() == [("Response", "Success"), ("Output", "x")]


class TestEncoding:
    def test_exact_bytes_with_repeats_booleans_and_omitted_headers(self):
        msg = m.action("Originate", [("Channel", "PJSIP/1"), ("Variable", ["A=1", "B=2"]),
                                     ("CallerID", None), ("Async", True), ("Timeout", 30000)],
                       action_id="t-9")
        assert msg.encode() == (
            b"Action: Originate\r\nActionID: t-9\r\nChannel: PJSIP/1\r\n"
            b"Variable: A=1\r\nVariable: B=2\r\nAsync: true\r\nTimeout: 30000\r\n\r\n"
        )

    def test_mapping_headers(self):
        assert m.action("DBGet", {"Family": "f", "Key": "k"}).encode() == (
            b"Action: DBGet\r\nFamily: f\r\nKey: k\r\n\r\n")

    def test_utf8(self):
        assert m.action("DBPut", [("Val", "北京")]).encode() == (
            "Action: DBPut\r\nVal: 北京\r\n\r\n".encode())

    @pytest.mark.parametrize("value", ["a\r\nAction: Hangup", "a\nb", "a\rb", "a\0b"])
    def test_values_with_line_breaks_are_refused(self, value):
        with pytest.raises(AMIArgumentError):
            m.action("DBPut", [("Family", "f"), ("Val", value)])
        with pytest.raises(ValueError):  # AMIArgumentError is a ValueError
            m.encode([("Val", value)])

    @pytest.mark.parametrize("name", ["Va\r\nl", "Val\n", "Va:l", "", " Val", "Val\0"])
    def test_bad_header_names_are_refused(self, name):
        with pytest.raises(AMIArgumentError):
            m.action("DBPut", [(name, "x")])

    def test_the_refused_value_is_named_among_good_ones(self):
        # Values are scanned all at once; the one refused is still named.
        good = [("Family", "f"), ("Key", "k")] * 5
        m.action("DBPut", good)  # its names are now known to be safe
        with pytest.raises(AMIArgumentError, match="'Val'"):
            m.action("DBPut", good + [("Val", "a\r\nAction: Hangup")] + good)
        with pytest.raises(AMIArgumentError, match="'Family'"):
            m.encode([("Key", "k"), ("Family", "f\0")])

    def test_a_known_name_does_not_vouch_for_a_similar_one(self):
        m.action("DBPut", [("Val", "x")])
        for name in ("Val ", "Val:", "Val\n", ("Val",)):
            with pytest.raises(AMIArgumentError):
                m.action("DBPut", [(name, "x")])

    def test_non_text_values_are_written_as_before(self):
        assert m.action("Originate", [("Timeout", 20000), ("Async", True), ("Skip", None),
                                      ("Variable", ["a=1", None, "b=2"])]).encode() == (
            b"Action: Originate\r\nTimeout: 20000\r\nAsync: true\r\n"
            b"Variable: a=1\r\nVariable: b=2\r\n\r\n")

    @pytest.mark.parametrize("name", ["Ping\r\nAction: Hangup", "Ping:", ""])
    def test_bad_action_names_are_refused(self, name):
        with pytest.raises(AMIArgumentError):
            m.action(name)

    @pytest.mark.parametrize("header", ["ActionID", "actionid", "Action"])
    def test_the_client_owns_action_and_action_id(self, header):
        with pytest.raises(AMIArgumentError):
            m.action("Ping", [(header, "x")])


class TestVariables:
    def test_separators_are_escaped(self):
        # Asterisk splits a Variable header at commas (several variables in
        # one header) and strips quotes and backslashes.
        assert escape_argument('a,b "c" (d) \\e') == 'a\\,b \\"c\\" \\(d\\) \\\\e'
        assert variable_header("NAME", "Smith, John") == "NAME=Smith\\, John"
        assert variable_header("CALLERID(name)", "x") == "CALLERID\\(name\\)=x"
        assert variable_header("EMPTY", "") == "EMPTY="
        assert variable_header("N", 5) == "N=5"
        assert variable_header("__INHERIT", "a=b") == "__INHERIT=a=b"

    @pytest.mark.parametrize("name", ["", "A=B", "A B", "A\nB", "A\0"])
    def test_bad_names(self, name):
        with pytest.raises(AMIArgumentError):
            variable_header(name, "x")

    @pytest.mark.parametrize("value", ["x\r\nAction: Hangup", "x\ny", "x\0"])
    def test_bad_values(self, value):
        with pytest.raises(AMIArgumentError):
            variable_header("A", value)


class TestOriginateHeaders:
    def test_dialplan_target(self):
        headers = originate_headers(
            "PJSIP/87650001", context="alarm", exten="s", priority=2,
            variables={"ALARM": "7", "WHO": "a,b"}, caller_id='"Alarm" <110>', timeout=25,
            channel_id="alarm-7-1", other_channel_id="alarm-7-1b")
        assert headers == [
            ("Channel", "PJSIP/87650001"), ("Context", "alarm"), ("Exten", "s"),
            ("Priority", 2), ("Timeout", 25000), ("CallerID", '"Alarm" <110>'),
            ("ChannelId", "alarm-7-1"), ("OtherChannelId", "alarm-7-1b"),
            ("Variable", "ALARM=7"), ("Variable", "WHO=a\\,b"), ("Async", "true"),
        ]

    def test_application_target_and_pairs(self):
        headers = originate_headers("Local/1@x", application="ConfBridge", data="room",
                                    variables=[("A", 1), ("A", 2)], timeout=0.5)
        assert headers == [
            ("Channel", "Local/1@x"), ("Application", "ConfBridge"), ("Data", "room"),
            ("Timeout", 500), ("CallerID", None), ("ChannelId", None),
            ("OtherChannelId", None), ("Variable", "A=1"), ("Variable", "A=2"),
            ("Async", "true"),
        ]

    @pytest.mark.parametrize("kwargs", [
        {},
        {"context": "c"},
        {"exten": "e"},
        {"context": "c", "exten": "e", "application": "Wait"},
        {"context": "c", "exten": "e", "data": "x"},
        {"application": "Wait", "timeout": 0},
        {"application": "Wait", "variables": {"A=B": "x"}},
    ])
    def test_impossible_combinations(self, kwargs):
        with pytest.raises(AMIArgumentError):
            originate_headers("PJSIP/1", **kwargs)

    def test_no_channel(self):
        with pytest.raises(AMIArgumentError):
            originate_headers("", application="Wait")
