"""alarm.yaml: the working example loads; mistakes are located, all of them."""

import os

import pytest

from alarm import config
from switchboard.yamlconf import ConfigError

from tests.test_alarm_support import PLAN

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOUNDS = "/var/lib/switchboard/asterisk-root/usr/share/asterisk/sounds/en_US_f_Allison"


def load(text, trunks=("default",)):
    return config.loads(text, PLAN, trunks, "alarm.yaml")


def problems(text, trunks=("default",)):
    with pytest.raises(ConfigError) as e:
        load(text, trunks)
    return [str(p) for p in e.value.problems]


def test_example_file():
    c = config.load(os.path.join(PROJECT, "config", "alarm.yaml"), PLAN, ["default"])
    assert c.max_neighbours == 10
    assert (c.ring_timeout, c.confirm_within, c.retry_unanswered) == (30.0, 45.0, 1)
    assert [(s.name, s.after) for s in c.stages] == [
        ("duty officer", 60.0), ("property security", 120.0), ("outside", 180.0)]
    assert c.duty.phones == ("+8659187650190",)
    assert c.stages[2].phones == ("+8659187650199",)
    assert c.cancel_key == "*"
    assert c.prompts.responder_ask.sounds == ("vm-press", "digits/1")
    assert c.prompts.responder_ask.text == "能马上过去请按一，去不了请按二。"
    assert c.prompts.caller_hold.text.startswith("别着急")
    assert all(p.text and not p.recorded for _, p in c.prompts.items())


@pytest.mark.skipif(not os.path.isdir(SOUNDS), reason="the lab Asterisk's sounds are not installed")
def test_example_prompts_exist_in_core_sounds():
    c = config.load(os.path.join(PROJECT, "config", "alarm.yaml"), PLAN, ["default"])
    assert config.missing_sounds(c, SOUNDS) == []


def test_minimal():
    c = load("escalation:\n  stages:\n    - {name: duty, after: 30, phones: [PJSIP/duty-office]}\n")
    assert c.duty.phones == ("PJSIP/duty-office",)
    assert c.ring_timeout == 30.0 and c.repeat_every == 120.0


def test_every_problem_located():
    text = """\
neighbours:
  max: 0
  ring_timout: 30
  retry_unanswered: many
  trunk: pstn
escalation:
  stages:
    - name: duty
      after: 60
      phones: ["12", PJSIP/duty, 87650190]
    - name: security
      after: 45
      number: "0591-87650191"
    - {name: outside}
caller:
  cancel_key: "x"
prompts:
  caller_hold: ["bad name"]
  responder_ask: beep
caller_id_name: "ALARM <1>"
"""
    assert problems(text) == [
        "alarm.yaml:2:8: neighbours.max: 0 is out of range (a whole number from 1 to 50)",
        "alarm.yaml:3:3: neighbours.ring_timout: unknown key (did you mean 'ring_timeout'?)",
        "alarm.yaml:4:21: neighbours.retry_unanswered: must be a whole number, not str 'many'",
        "alarm.yaml:5:10: neighbours.trunk: unknown trunk 'pstn' (trunks in switchboard.yaml: "
        "default)",
        "alarm.yaml:10:16: escalation.stages[0].phones[0]: '12' is not a valid CN phone number "
        "(a phone number or a channel such as PJSIP/duty-office)",
        "alarm.yaml:12:14: escalation.stages[1].after: 45 s is not later than the stage before "
        "(60 s) (each stage's 'after' counts from the alarm and must grow)",
        "alarm.yaml:14:7: escalation.stages[2]: missing required key 'after'",
        "alarm.yaml:14:7: escalation.stages[2]: missing 'phones' (a list) or 'number'",
        "alarm.yaml:16:15: caller.cancel_key: 'x' is not a phone key (one of 0-9, * or #)",
        "alarm.yaml:18:17: prompts.caller_hold[0]: 'bad name' is not a sound name "
        "(a name under the sounds folder without extension, e.g. digits/1)",
        "alarm.yaml:20:17: caller_id_name: must be at most 40 characters without quotes, < > or "
        "line breaks",
    ]


def test_stages_required():
    assert problems("neighbours: {max: 5}\n") == [
        "alarm.yaml:1:1: missing required key 'escalation'",
        "alarm.yaml:1:1: escalation.stages: at least one stage is needed (the first stage "
        "(e.g. the duty officer) is also rung at once for unregistered callers)"]
    assert "at least one stage" in problems("escalation: {stages: []}\n")[0]


def test_empty_file():
    assert problems("") == ["alarm.yaml:1:1: missing required key 'escalation'",
                            "alarm.yaml:1:1: escalation.stages: at least one stage is needed "
                            "(the first stage (e.g. the duty officer) is also rung at once for "
                            "unregistered callers)"]


def test_single_sound_and_trunks():
    c = load("escalation:\n  stages:\n    - {name: d, after: 0, number: 87650199, trunk: pstn}\n"
             "prompts: {caller_hold: beep}\n", trunks=("default", "pstn"))
    assert c.prompts.caller_hold.sounds == ("beep",) and c.prompts.caller_hold.recorded
    assert c.duty.trunk == "pstn"


def test_sound_names_and_channels_match_whole():
    """A final newline is not part of a sound or channel name ('$' would accept it)."""
    assert problems('escalation:\n  stages:\n    - {name: d, after: 0, number: 87650199}\n'
                    'prompts: {caller_hold: ["beep\\n"]}\n') == [
        "alarm.yaml:4:25: prompts.caller_hold[0]: 'beep\\n' is not a sound name "
        "(a name under the sounds folder without extension, e.g. digits/1)"]
    from switchboard.dialing import is_channel
    assert is_channel("PJSIP/duty-office") and not is_channel("PJSIP/duty-office\n")


# Reloads of a running server ----------------------------------------------------------------

ALARM_YAML = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "config", "alarm.yaml")


class _AMI:
    connected = False

    def subscribe(self, pattern, callback):
        pass

    def __getattr__(self, name):  # originate, hangup, send_action, ...
        from twisted.internet import defer
        return lambda *args, **kwargs: defer.succeed(None)


class _HandOffParser:
    """A parser whose answers the test gives (the child process, in a running server)."""

    def __init__(self):
        self.requests = []

    def parse(self, path, raw, numbers, trunks=None):
        from twisted.internet import defer
        d = defer.Deferred()
        self.requests.append((path, raw, d))
        return d


def _feature(tmp_path, text, parser):

    from twisted.internet.testing import MemoryReactorClock

    from alarm.feature import AlarmFeature
    from tests.test_hotline_support import FakePool
    from tests.test_service import settings

    class Reactor(MemoryReactorClock):
        def __init__(self):
            super().__init__()
            self.pool = FakePool()

        def getThreadPool(self):
            return self.pool

        def callFromThread(self, f, *args, **kwargs):
            f(*args, **kwargs)

    path = tmp_path / "alarm.yaml"
    path.write_text(text, encoding="utf-8")
    reactor = Reactor()
    feature = AlarmFeature(settings(tmp_path, alarm=str(path)), None, _AMI(),
                           reactor=reactor, parser=parser)
    return feature, path, reactor


def test_reload_parses_off_the_reactor_and_keeps_the_last_good(tmp_path, monkeypatch):
    """
    The reactor thread neither reads nor parses alarm.yaml on a reload: the
    pool reads the bytes and the parser (a child process in the server) parses.
    """
    text = open(ALARM_YAML, encoding="utf-8").read()
    parser = _HandOffParser()
    feature, path, reactor = _feature(tmp_path, text, parser)
    first = feature.config
    assert first.ring_timeout == 30.0
    path.write_text(text.replace("ring_timeout: 30", "ring_timeout: 20"), encoding="utf-8")

    def not_here(*args, **kwargs):
        raise AssertionError("alarm.yaml parsed on the reactor thread")
    monkeypatch.setattr(config, "check", not_here)
    monkeypatch.setattr(config, "load", not_here)
    d = feature.reload(str(path))
    assert parser.requests == [] and len(reactor.pool.jobs) == 1  # nothing read yet
    reactor.pool.run()
    [(asked, raw, parsed)] = parser.requests
    assert asked == str(path) and b"ring_timeout: 20" in raw
    assert feature.config is first  # alarms keep the file in force until the new one is checked
    monkeypatch.undo()
    parsed.callback(config.load_bytes(raw, asked, PLAN, ("default",)))
    assert feature.config.ring_timeout == 20.0
    assert feature.coordinator.config is feature.config
    assert d.called
    # The same bytes again: not parsed again.
    feature.reload()
    reactor.pool.run()
    assert len(parser.requests) == 1
    # Counted for /metrics and the status page: the start-up load, the change, the same bytes.
    assert feature.loads.counts == {"in_force": 2, "refused": 0, "unchanged": 1}
    assert feature.loads.last_error is None


def test_huge_alarm_file_refused_by_its_size_and_last_good_serves(tmp_path):
    from twisted.logger import globalLogPublisher

    from switchboard import yamlconf
    text = open(ALARM_YAML, encoding="utf-8").read()
    parser = _HandOffParser()
    feature, path, reactor = _feature(tmp_path, text, parser)
    good = feature.config
    with open(path, "r+b") as f:
        f.truncate(yamlconf.MAX_FILE_BYTES + 1)
    logged = []
    globalLogPublisher.addObserver(logged.append)
    try:
        d = feature.reload(str(path))
        reactor.pool.run()
    finally:
        globalLogPublisher.removeObserver(logged.append)
    assert d.called and parser.requests == []
    assert feature.config is good
    [refused] = [e for e in logged if "refused" in e.get("log_format", "")]
    assert (f"{path}:1:1: the file has {yamlconf.MAX_FILE_BYTES + 1} bytes, more than the "
            f"{yamlconf.MAX_FILE_BYTES} a configuration file may have") == refused["errors"]
    assert feature.loads.counts["refused"] == 1
    [error] = feature.loads.snapshot()["errors"]
    assert (error["file"], error["line"], error["column"]) == (str(path), 1, 1)
    # At start-up the same file is refused the same way (the dialplan rings natively).
    with pytest.raises(ConfigError, match="more than the"):
        config.load(str(path), PLAN, ("default",))

