"""
A FastAGI server for one test: its C{probe} handler runs every AGI helper
on a live Asterisk channel and writes what came back to a JSON file.

    python -m tests.e2e.agi_probe RESULTS.json [PORT]

Its C{commands} handler runs the rest of the API (see L{commands}).
"""

import dataclasses
import json
import os
import sys

from twisted.internet import defer, reactor

from switchboard.agi import AGIError, AGIHangup, FastAGIFactory


@defer.inlineCallbacks
def probe(session):
    results = {"env": dict(session.env), "script": session.script, "query": session.query}
    try:
        results["answer"] = yield session.answer()
        results["channel_status"] = yield session.channel_status()
        yield session.set_variable("PROBE_VAR", 'said "hi" \\ back')
        results["get_variable"] = yield session.get_variable("PROBE_VAR")
        results["get_variable_unset"] = yield session.get_variable("PROBE_NEVER_SET")
        results["get_full_variable"] = yield session.get_full_variable("${PROBE_VAR}/${CHANNEL(state)}")
        yield session.database_put("swb_probe", "key", "value with spaces")
        results["database_get"] = yield session.database_get("swb_probe", "key")
        yield session.database_del("swb_probe", "key")
        results["database_get_deleted"] = yield session.database_get("swb_probe", "key")
        results["stream_file"] = yield session.stream_file("beep", "")
        results["say_digits"] = yield session.say_digits("12", "")
        results["say_number"] = yield session.say_number(7, "")
        results["get_data"] = yield session.get_data("beep", timeout_ms=300, max_digits=2)
        results["get_option"] = yield session.get_option("beep", "12", timeout_ms=300)
        results["exec"] = yield session.exec_("Set", "PROBE_EXEC=done")
        results["after_exec"] = yield session.get_variable("PROBE_EXEC")
        results["verbose"] = yield session.verbose("switchboard probe says hello", 1)
        try:
            yield session.exec_("NoSuchApplication")
        except Exception as e:
            results["exec_unknown"] = type(e).__name__
        yield session.set_variable("SWITCHBOARD_RESULT", "OK")
        # The far end hangs up while this waits: it must arrive as AGIHangup.
        yield session.wait_for_digit(20000)
        results["hangup"] = "not detected"
    except AGIHangup as e:
        results["hangup"] = type(e).__name__
    finally:
        with open(sys.argv[1], "w") as f:
            json.dump(results, f)
        reactor.callLater(0.2, reactor.stop)


def _fields(value):
    """A result as JSON: dataclasses as dicts."""
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value


@defer.inlineCallbacks
def commands(session):
    """
    The commands beyond the first probe, with their details, on a channel
    whose other end (;1) plays a long prompt: what it plays is what RECORD
    FILE hears.
    """
    # In the lab root (Asterisk runs chrooted there); ulaw: a byte a sample.
    r = {"env": dict(session.env), "record_path": f"/tmp/switchboard-agi-probe-{os.getpid()}"}
    own = session.channel
    other = own[:-1] + "1" if own.endswith(";2") else None

    @defer.inlineCallbacks
    def run(name, call):
        try:
            r[name] = _fields((yield call()))
        except AGIHangup as e:
            r[name] = {"error": "AGIHangup", "text": str(e)}
            raise
        except AGIError as e:
            r[name] = {"error": type(e).__name__, "text": str(e)}

    try:
        yield run("channel_status", session.channel_status)
        yield run("channel_status_own", lambda: session.channel_status(own))
        yield run("channel_status_other", lambda: session.channel_status(other))
        yield run("channel_status_nosuch", lambda: session.channel_status("Local/nosuch-0001;2"))
        yield run("noop", session.noop)
        yield run("stream_missing",
                  lambda: session.stream_file_result("switchboard-no-such-file"))
        yield run("stream_beep", lambda: session.stream_file_result("beep"))
        yield run("control_missing",
                  lambda: session.control_stream_file("switchboard-no-such-file"))
        yield run("control_beep", lambda: session.control_stream_file("beep"))
        yield run("option_missing",
                  lambda: session.get_option_result("switchboard-no-such-file", "1", 100))
        yield run("say_number_negative", lambda: session.say_number(-5))
        yield run("say_number_gender", lambda: session.say_number(2, "", "f"))
        yield run("say_alpha", lambda: session.say_alpha("ab", "", "n"))
        yield run("say_phonetic", lambda: session.say_phonetic("z"))
        yield run("say_date", lambda: session.say_date(0))
        yield run("say_time", lambda: session.say_time(0))
        yield run("say_datetime",
                  lambda: session.say_datetime(1210498014, "", "IMp", "Asia/Shanghai"))
        yield run("get_data", lambda: session.get_data_result("beep", 300, 2))
        yield session.database_put("swb_probe_tree", "a/b", "1")
        yield session.database_put("swb_probe_tree", "a/c", "2")
        yield run("deltree", lambda: session.database_deltree("swb_probe_tree", "a"))
        yield run("deltree_again", lambda: session.database_deltree("swb_probe_tree", "a"))
        yield run("deleted", lambda: session.database_get("swb_probe_tree", "a/b"))
        yield session.set_variable("PROBE_OTHER", "on the other leg")
        yield run("full_variable_other",
                  lambda: session.get_full_variable("${CHANNEL(state)}", other))
        yield run("full_variable_nosuch",
                  lambda: session.get_full_variable("${CHANNEL}", "Local/nosuch-0001;2"))
        yield session.set_context("switchboard-bench")
        yield run("context", lambda: session.get_variable("CONTEXT"))
        yield session.set_context("switchboard-lab-test")
        yield session.set_extension("wait")
        yield run("extension", lambda: session.get_variable("EXTEN"))
        yield session.set_extension(session.env["extension"])
        yield run("gosub", lambda: session.gosub("switchboard-lab-test", "sub", 1, "x y", 7))
        yield run("gosub_retval", lambda: session.get_variable("GOSUB_RETVAL"))
        yield run("gosub_args", lambda: session.get_variable("SUB_ARGS"))
        yield run("gosub_nosuch", lambda: session.gosub("switchboard-lab-test", "nosuch", 1))
        yield run("speech_create", lambda: session.speech_create("switchboard-no-engine"))
        yield run("tdd_mode", lambda: session.tdd_mode("off"))
        yield run("set_music_on", lambda: session.set_music(True))
        yield run("set_music_off", lambda: session.set_music(False))
        yield run("asyncagi_break", session.asyncagi_break)
        yield run("record_timeout",
                  lambda: session.record_file(r["record_path"], "ulaw", "#", 1000))
        yield session.set_variable("SWITCHBOARD_RESULT", "OK")
        # Hang up in 1.5 s; the recording without a limit ends by the hangup.
        yield session.set_autohangup(1.5)
        yield run("record_hangup",
                  lambda: session.record_file(r["record_path"] + "-hangup", "ulaw", "#", -1))
        yield run("after_hangup", session.channel_status)
    except AGIHangup:
        pass
    finally:
        with open(sys.argv[1], "w") as f:
            json.dump(r, f)
        reactor.callLater(0.2, reactor.stop)


def main():
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 4573
    reactor.listenTCP(port, FastAGIFactory({"probe": probe, "commands": commands}),
                      interface="127.0.0.1")
    print("listening", flush=True)
    reactor.run()


if __name__ == "__main__":
    main()
