"""
A FastAGI server for one test: its C{probe} handler runs every AGI helper
on a live Asterisk channel and writes what came back to a JSON file.

    python -m tests.e2e.agi_probe RESULTS.json [PORT]
"""

import json
import sys

from twisted.internet import defer, reactor

from switchboard.agi import AGIHangup, FastAGIFactory


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


def main():
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 4573
    reactor.listenTCP(port, FastAGIFactory({"probe": probe}), interface="127.0.0.1")
    print("listening", flush=True)
    reactor.run()


if __name__ == "__main__":
    main()
