"""The shipped dialplan, checked with pyst2's .conf parser before Asterisk sees it."""

import os
import re

from switchboard.dialplan_check import check, parse

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIALPLAN = os.path.join(PROJECT, "dialplans", "switchboard.conf")


def test_the_shipped_dialplan_has_no_problems():
    assert check(DIALPLAN) == []


def test_the_lab_and_sample_extensions_have_no_problems():
    for path in (os.path.join(PROJECT, "lab", "extensions.conf"),
                 os.path.join(PROJECT, "dialplans", "extensions.conf.sample")):
        # The lab's test context hands calls to probe servers on purpose, with no fallback.
        problems = [p for p in check(path) if "switchboard-lab-test" not in p]
        assert problems == []


def test_hash9_hands_the_alarm_to_the_server_then_falls_back(tmp_path):
    steps = parse(DIALPLAN)["switchboard-alarm"]["#9"]
    apps = [s.app for s in steps]
    # The first server straight away: no step but the NoOp and the result's reset before it.
    agi = apps.index("AGI")
    assert apps[:agi] == ["NoOp", "Set"]
    assert steps[agi].args == ("${CUT(SWITCHBOARD_AGI,&,1)}/alarm?asterisk=${SWITCHBOARD_ASTERISK}"
                              "&key=${SWITCHBOARD_KEY}")
    # Asterisk could not reach it: the others in turn, from the second.
    failover = steps[agi + 1]
    assert failover.app == "GotoIf" and failover.args.endswith("?failover")
    assert '"${AGISTATUS}" = "FAILURE"' in failover.args
    assert '"${SWITCHBOARD_RESULT}" = ""' in failover.args
    labelled = {s.label: i for i, s in enumerate(steps) if s.label}
    tried = steps[labelled["failover"]]
    assert tried.args == ("switchboard-agi,s,1(alarm?asterisk=${SWITCHBOARD_ASTERISK}"
                          "&key=${SWITCHBOARD_KEY},2)")
    assert steps[labelled["failover"] + 1].args == "served"
    served = steps[labelled["served"]]
    assert served.app == "GotoIf" and '"${SWITCHBOARD_RESULT}" = "OK"' in served.args
    assert [s.args for s in steps[agi + 1:labelled["failover"]] if s.app == "Gosub"] == (
        ["switchboard-alarm-lookup,s,1"] + ["switchboard-alarm-ring,s,1"] * 2)


def test_a_fallback_that_reads_no_swb_ring_key_is_reported(tmp_path):
    # A dialplan still reading only the old flat family would find nothing
    # once the server has moved the neighbours to swb_ring.
    text = open(DIALPLAN).read().replace("DB(swb_ring/${n:-2}/${n})", "DB(swb_alarm/${n})")
    text = text.replace("DB(swb_ring/${k:-2}/${k})", "DB(swb_alarm/${k})")
    text = text.replace("DB(swb_ring/area)", "DB(swb_alarm/area)")
    old = tmp_path / "switchboard.conf"
    old.write_text(text)
    same = tmp_path / "same" / "switchboard.conf"  # a copy: what else a copy lacks
    same.parent.mkdir()
    same.write_text(open(DIALPLAN).read())
    elsewhere = {p.split(": ", 1)[1] for p in check(str(same))}
    problems = [p for p in check(str(old)) if p.split(": ", 1)[1] not in elsewhere]
    assert len(problems) == 1 and "[switchboard-alarm-lookup] reads no DB(swb_ring/...)" \
        in problems[0], problems
    assert check(DIALPLAN) == []


def test_the_native_ring_all_dials_one_local_leg_per_phone():
    # Dial(A&B,U()) cancels B the moment A answers: each phone needs a leg that
    # answers only after its 1 (switchboard-alarm-leg).
    contexts = parse(DIALPLAN)
    ring = [s for s in contexts["switchboard-alarm-ring"]["s"] if s.app == "Dial"]
    assert len(ring) == 1 and ring[0].args.startswith("${legs:1},")
    assert any("&Local/leg${i}@switchboard-alarm-leg" in s.args
               for s in contexts["switchboard-alarm-ring"]["s"])
    leg = [s for s in contexts["switchboard-alarm-leg"]["_leg."] if s.app == "Dial"]
    assert leg[0].args == "${PHONE},${SWITCHBOARD_RING_TIMEOUT},U(switchboard-alarm-confirm^s^1)"


def test_every_agi_of_the_shipped_dialplan_passes_the_key():
    steps = [s for c in parse(DIALPLAN).values() for x in c.values() for s in x]
    # switchboard-agi's AGI(), which tries each server of SWITCHBOARD_AGI in
    # turn, and #9's own of the first server.
    assert [s.args for s in steps if s.app == "AGI"] == [
        "${CUT(SWITCHBOARD_AGI,&,${i})}/${ARG1}",
        "${CUT(SWITCHBOARD_AGI,&,1)}/alarm?asterisk=${SWITCHBOARD_ASTERISK}&key=${SWITCHBOARD_KEY}"]
    scripts = [s.args for s in steps if s.app == "Gosub" and "switchboard-agi," in s.args]
    assert len(scripts) == 3
    assert all(a.startswith("switchboard-agi,s,1(")
               and re.search(r"[?&]key=\$\{SWITCHBOARD_KEY\}(,2)?\)$", a)
               for a in scripts), scripts
    for path in (os.path.join(PROJECT, "lab", "extensions.conf"),
                 os.path.join(PROJECT, "dialplans", "extensions.conf.sample")):
        with open(path) as f:
            assert "\nSWITCHBOARD_KEY = " in f.read(), path


def test_an_agi_without_fallback_and_a_dangling_goto_are_reported(tmp_path):
    path = tmp_path / "bad.conf"
    path.write_text("[switchboard-hotline]\n"
                    "exten => _X.,1,AGI(agi://127.0.0.1/hotline)\n"
                    " same => n,Goto(nowhere,s,1)\n"
                    "[switchboard-alarm]\n[switchboard-alarm-responder]\n")
    problems = check(str(path))
    assert any(":2: AGI() in [switchboard-hotline]" in p for p in problems)
    assert any(":3: Goto to 'nowhere,s,1'" in p for p in problems)


def test_the_cli_reports_and_exits_1(tmp_path, capsys):
    from switchboard.cli import main
    path = tmp_path / "partial.conf"
    path.write_text("[switchboard-hotline]\nexten => _X.,1,Hangup()\n")
    assert main(["check-dialplan", str(path)]) == 1
    assert "[switchboard-alarm]" in capsys.readouterr().out
    assert main(["check-dialplan", DIALPLAN]) == 0


def test_a_missing_context_is_reported(tmp_path):
    path = tmp_path / "partial.conf"
    path.write_text("[switchboard-hotline]\nexten => _X.,1,Hangup()\n")
    problems = check(str(path))
    assert any("[switchboard-alarm]" in p for p in problems)


def test_a_file_that_includes_itself_is_reported_not_a_recursion_error(tmp_path):
    a, b = tmp_path / "a.conf", tmp_path / "b.conf"
    a.write_text("#include b.conf\n[x]\nexten => s,1,NoOp()\n")
    b.write_text("#include a.conf\n")
    problems = check(str(a))
    assert len(problems) == 1
    assert "#include loop" in problems[0] and "a.conf -> " in problems[0]
    assert str(b) in problems[0]


def test_exten_dialled_from_an_any_character_pattern_is_reported(tmp_path):
    path = tmp_path / "ext.conf"
    path.write_text("[switchboard-residents]\n"
                    "exten => _X.,1,Dial(PJSIP/${EXTEN}@trunk,60)\n"
                    "exten => _0X!,1,Dial(PJSIP/${EXTEN:1}@trunk)\n"
                    "exten => _9.,1,Dial(PJSIP/${FILTER(0-9,${EXTEN})}@trunk)\n"
                    "exten => _[2-9]XXXXXXX,1,Dial(PJSIP/${EXTEN}@trunk)\n")
    problems = [p for p in check(str(path)) if "${EXTEN}" in p]
    assert [p.split(":")[1] for p in problems] == ["2", "3"]
    assert "123&PJSIP/other" in problems[0]


def test_the_next_server_is_tried_only_when_the_last_could_not_be_reached():
    steps = parse(DIALPLAN)["switchboard-agi"]["s"]
    agi = [s.app for s in steps].index("AGI")
    retry = steps[agi + 1]
    assert retry.app == "GotoIf" and retry.args.endswith("?next")
    # Not after a session the server took (AGISTATUS SUCCESS), nor one that set
    # its result; not on SWITCHBOARD_ROOM, which a neighbour's leg has from the start.
    assert '"${AGISTATUS}" = "FAILURE"' in retry.args
    assert '"${SWITCHBOARD_RESULT}" = ""' in retry.args and "ROOM" not in retry.args


def test_switchboard_agi_starts_at_the_server_asked_for():
    steps = parse(DIALPLAN)["switchboard-agi"]["s"]
    # ARG2 = the first server to try (#9 tried the first itself); none: the first.
    start = steps[1]
    assert start.app == "Set" and start.args == (
        'LOCAL(i)=${IF($["${ARG2}" = ""]?0:$[${ARG2} - 1])}')
