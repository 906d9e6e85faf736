"""
AMIClient against the real lab Asterisk 22: login, AstDB, Hangup, Command
refused to the least-privilege user, originate outcomes (variables with
commas arriving intact), events, a refused secret retried, and an alarm
leg whose AMI link dropped while the phone rang.

The client runs in a child process (this module, run as a program) with the
real reactor; it prints one JSON line of findings.
"""

import json
import subprocess
import sys
import time

import pytest

from tests.conftest import PROJECT

pytestmark = pytest.mark.asterisk


def _run(asterisk, scenario):
    host, port = asterisk.ami
    result = subprocess.run(
        [sys.executable, "-m", "tests.test_ami_lab", scenario, host, str(port),
         asterisk.ami_user, asterisk.ami_secret],
        cwd=PROJECT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_actions_and_originate_outcomes(asterisk):
    r = _run(asterisk, "actions")
    assert r["banner_login"] is True
    assert r["ping"] == "Pong"
    assert r["db"] == ["a b, (c) \"d\"", None, "", [["empty", ""], ["k", 'a b, (c) "d"']],
                       True, False, True, False]
    assert r["command"] == ["AMIActionError", "Permission denied"]
    assert r["hangup_missing"] is False
    answered = r["answered"]
    assert answered["outcome"] == "answered" and answered["reason"] == 4
    assert answered["channel_id"] == answered["uniqueid"] == r["channel_id"]
    assert r["variables"] == {"CALLER": "Wang, Li", "NOTE": 'say "hi" (now)', "PATH": "a\\b"}
    assert r["duplicate"][0] == "failed"
    assert r["state_up"] == "Up"
    assert r["state_gone"] is None
    assert r["hangup_answered"] is True
    assert r["hangup_event"] is True
    assert r["busy"][:2] == ["busy", 5]
    assert r["no_answer"][:2] == ["no-answer", 3]
    assert r["failed"][:2] == ["failed", 0]
    assert r["refused"][:2] == ["failed", None]


def test_bad_secret_is_refused_loudly_and_retried(asterisk):
    r = _run(asterisk, "bad-secret")
    assert r["connected"] is False
    # Asterisk waits a second before refusing; within 5 s several attempts.
    assert r["refusals"] >= 2
    assert all("LOGIN REFUSED: Authentication failed" in line for line in r["logged"])


def test_reconnects_after_asterisk_restarts(asterisk):
    host, port = asterisk.ami
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.test_ami_lab", "restart", host, str(port),
         asterisk.ami_user, asterisk.ami_secret],
        cwd=PROJECT, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "up"
        asterisk.stop()
        time.sleep(4)  # several refused connection attempts meanwhile
        asterisk.start()
        r = json.loads(child.stdout.readline())
    finally:
        child.kill()
        child.wait(10)
    # The pending originate ended with the link, or Asterisk reported its
    # failure as it shut down; either way it was not originated again.
    assert r["ringing"] in ("AMIConnectionLost", "failed")
    assert r["channels_after"] == []
    assert r["logins"] == 2
    assert r["disconnects"] == 1
    assert r["db_after"] == "back"


def test_alarm_retry_after_lost_link_follows_the_first_call(asterisk):
    r = _run(asterisk, "lost-link")
    # The link dropped while the neighbour's phone rang; the retry, with the
    # same channel id, was refused, and the leg followed the first call.
    assert r["retry_ids"] == [r["leg"]] * len(r["retry_ids"]) and len(r["retry_ids"]) >= 2
    assert r["after_retry"] == "ringing"
    assert r["followed"] is True
    assert r["channels_with_our_id"] == 1, "the neighbour was never rung twice at once"
    assert r["asked"] >= 1
    # The first call rang out (its originate's ring timeout): the leg was
    # not answered, learnt from the channel's Hangup.
    assert r["final"] == "no-answer"
    assert r["final_detail"] == "the call placed before the AMI link dropped ended"


# The client side, run as: python -m tests.test_ami_lab SCENARIO HOST PORT USER SECRET


def _main(scenario, host, port, user, secret):
    from twisted.internet import defer, task
    from twisted.logger import LogLevel, formatEvent, globalLogPublisher

    from switchboard.ami import AMIActionError, AMIClient

    logged = []
    globalLogPublisher.addObserver(
        lambda e: logged.append(formatEvent(e)) if e["log_level"] >= LogLevel.error else None)

    def _tree(client, family):
        entries = []
        d = client.db_tree(family, lambda key, value: entries.append([key, value]))
        return d.addCallback(lambda count: entries if count == len(entries) else None)

    def sleep(reactor, seconds):
        return task.deferLater(reactor, seconds, lambda: None)

    @defer.inlineCallbacks
    def actions(reactor):
        client = AMIClient(host, port, user, secret, reactor=reactor)
        client.start()
        yield client.when_connected()
        r = {"banner_login": client.connected}
        r["ping"] = (yield client.send_action("Ping"))["Ping"]
        family = "switchboard-ami-lab"
        yield client.db_put(family, "k", 'a b, (c) "d"')
        r["db"] = [
            (yield client.db_get(family, "k")),
            (yield client.db_get(family, "missing")),
            (yield client.db_put(family, "empty", "")) or (yield client.db_get(family, "empty")),
            sorted((yield _tree(client, family))),
            (yield client.db_del(family, "k")),
            (yield client.db_del(family, "k")),
            (yield client.db_deltree(family)),
            (yield client.db_deltree(family)),
        ]
        try:
            yield client.command("core show version")
            r["command"] = ["allowed"]
        except AMIActionError as e:
            r["command"] = [type(e).__name__, e.message]
        r["hangup_missing"] = yield client.hangup("PJSIP/switchboard-nosuch-1")

        channel_id = r["channel_id"] = "sb-ami-lab-1"
        hangups = []
        client.subscribe("Hangup", lambda e: hangups.append(e.get("Uniqueid")))
        variables = {"CALLER": "Wang, Li", "NOTE": 'say "hi" (now)', "PATH": "a\\b"}
        answered = yield client.originate(
            "Local/wait@switchboard-lab-test", application="Wait", data="10", timeout=5,
            channel_id=channel_id, variables=variables)
        r["answered"] = {k: getattr(answered, k)
                         for k in ("outcome", "reason", "channel_id", "uniqueid")}
        r["variables"] = {}
        for name in variables:
            reply = yield client.send_action("Getvar", {"Channel": channel_id,
                                                        "Variable": name})
            r["variables"][name] = reply.get("Value")
        # While that channel is up, Asterisk refuses another with its id
        # (the alarm's retries after a lost link rely on this).
        duplicate = yield client.originate(
            "Local/wait@switchboard-lab-test", application="Wait", data="10", timeout=5,
            channel_id=channel_id)
        r["duplicate"] = [duplicate.outcome, duplicate.reason]
        r["state_up"] = yield client.channel_state(channel_id)
        r["hangup_answered"] = yield client.hangup(channel_id)
        yield sleep(reactor, 0.5)
        r["hangup_event"] = channel_id in hangups
        r["state_gone"] = yield client.channel_state(channel_id)

        outcomes = yield defer.gatherResults([
            client.originate("Local/busy@switchboard-lab-test", application="Wait",
                             data="1", timeout=5),
            client.originate("Local/ring@switchboard-lab-test", application="Wait",
                             data="1", timeout=2),
            client.originate("Nosuch/x", application="Wait", data="1", timeout=2),
            client.originate("no-technology", application="Wait", timeout=2),  # refused
        ])
        for key, o in zip(("busy", "no_answer", "failed", "refused"), outcomes):
            r[key] = [o.outcome, o.reason, o.message]
        yield client.stop()
        print(json.dumps(r), flush=True)

    @defer.inlineCallbacks
    def bad_secret(reactor):
        client = AMIClient(host, port, user, secret + "-wrong", reactor=reactor)
        client.start()
        yield sleep(reactor, 5)
        refusals = [line for line in logged if "LOGIN REFUSED" in line]
        r = {"connected": client.connected, "refusals": len(refusals), "logged": refusals}
        yield client.stop()
        print(json.dumps(r), flush=True)

    @defer.inlineCallbacks
    def restart(reactor):
        client = AMIClient(host, port, user, secret, reactor=reactor)
        logins, disconnects = [], []
        client.on_connect(logins.append)
        client.on_disconnect(disconnects.append)
        client.start()
        yield client.when_connected()
        r = {}
        ringing = client.originate("Local/ring@switchboard-lab-test", application="Wait",
                                   data="1", timeout=60)
        ringing.addCallbacks(lambda o: r.update(ringing=o.outcome),
                             lambda f: r.update(ringing=f.type.__name__))
        print("up", flush=True)
        for _ in range(1200):  # up to 2 minutes for Asterisk to come back
            if len(logins) == 2:
                break
            yield sleep(reactor, 0.1)
        r.update(logins=len(logins), disconnects=len(disconnects))
        yield sleep(reactor, 1)
        listing = yield client.send_action("CoreShowChannels")
        r["channels_after"] = [e.get("Channel") for e in listing.events]
        yield client.db_put("switchboard-ami-lab", "restart", "back")
        r["db_after"] = yield client.db_get("switchboard-ami-lab", "restart")
        yield client.db_deltree("switchboard-ami-lab")
        yield client.stop()
        print(json.dumps(r), flush=True)

    @defer.inlineCallbacks
    def lost_link(reactor):
        import tempfile

        import alarm.models
        from switchboard.community import models as community
        from alarm.config import AlarmConfig, Stage
        from alarm.coordinator import AlarmCoordinator
        from alarm.index import HouseholdSnapshot
        from alarm.recorder import AlarmRecorder
        from switchboard.dialing import Dialer
        from switchboard.numbers import NumberPlan
        from switchboard.ringgroup import AMICallPlacer
        from switchboard.storage import Base, Database

        client = AMIClient(host, port, user, secret, reactor=reactor, initial_delay=0.5,
                           max_delay=0.5)
        client.start()
        yield client.when_connected()
        database = Database(f"sqlite:///{tempfile.mkdtemp()}/alarm.db", reactor=reactor)
        Base.metadata.create_all(database.engine)
        with database.sessions.begin() as session:
            session.add(community.Household(id=1, building="3", unit="1", room="101"))
        # The neighbour's phone rings (and is never answered) for the ring timeout.
        plan = NumberPlan("CN", "591")
        dialer = Dialer(plan, {"default": "Local/ring@switchboard-lab-test"})
        # (The duty stage, rung at once when calls cannot be placed, rings
        # another channel.)
        config = AlarmConfig(stages=(Stage("duty", 3600.0, ("Local/ring@switchboard-lab-test/n",)),),
                             ring_timeout=6.0, retry_unanswered=0, originate_retry=0.5)
        asked, retry_ids, created = [], [], []

        class Placer(AMICallPlacer):
            """The real placer, noting the retries' channel ids and what is asked."""

            def originate(self, channel, **kwargs):
                if channel == "Local/ring@switchboard-lab-test":
                    retry_ids.append(kwargs.get("channel_id"))
                return super().originate(channel, **kwargs)

            def channel_state(self, uniqueid):
                asked.append(uniqueid)
                return super().channel_state(uniqueid)

        coordinator = AlarmCoordinator(dialer, Placer(client),
                                       AlarmRecorder(database, clock=reactor), config, reactor,
                                       follow_every=1.0)
        client.subscribe("Newchannel", lambda e: created.append(e.get("Uniqueid")))
        client.subscribe("Hangup", lambda e: coordinator.note_hangup(e.get("Uniqueid", "")))
        snapshot = HouseholdSnapshot(1, 1, "Hualin Garden", "3", "1", "101", "",
                                     ("+8659187650001",), ("+8659187650002",))
        active = yield coordinator.raise_alarm("87650001", snapshot)
        (leg_id,) = list(active.legs)
        yield sleep(reactor, 1.0)  # the phone rings; then the link drops
        client._link.current.transport.abortConnection()
        for _ in range(50):
            if len(retry_ids) >= 2 and active.legs[leg_id].following:
                break
            yield sleep(reactor, 0.1)
        leg = active.legs[leg_id]
        r = {"leg": leg_id, "after_retry": leg.state, "followed": leg.following}
        for _ in range(120):
            if active.legs[leg_id].state != "ringing":
                break
            yield sleep(reactor, 0.1)
        leg = active.legs[leg_id]
        r.update(final=leg.state, retry_ids=retry_ids, asked=len(asked),
                 channels_with_our_id=created.count(leg_id))
        yield coordinator.recorder.flush()
        with database.session() as session:
            events = session.execute(
                alarm.models.AlarmEvent.__table__.select().order_by("id")).all()
        r["final_detail"] = next((e.detail for e in reversed(events) if e.kind == "no-answer"),
                                 None)
        coordinator.stop()
        yield client.stop()
        database.close()
        print(json.dumps(r), flush=True)

    task.react({"actions": actions, "bad-secret": bad_secret, "restart": restart,
                "lost-link": lost_link}[scenario])


if __name__ == "__main__":
    _main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])
