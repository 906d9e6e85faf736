"""The server's log lines: as Twisted writes them, below the level left out."""

from __future__ import annotations

import io

from twisted.logger import LogLevel, formatEventAsClassicLogText
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from switchboard.logs import LineLogObserver

WHEN = 1790000000.0


def event(form, level=LogLevel.info, **fields):
    fields.update(log_format=form, log_level=level, log_namespace="switchboard.x",
                  log_time=WHEN)
    return fields


class LineLogObserverTests(SynchronousTestCase):
    def written(self, *events, level=LogLevel.info):
        out = io.StringIO()
        observer = LineLogObserver(out, level)
        for e in events:
            observer(e)
        return out.getvalue()

    def assertAsTwisted(self, e):
        self.assertEqual(self.written(e), formatEventAsClassicLogText(e))

    def test_plain_event_as_twisted_writes_it(self):
        self.assertAsTwisted(event("hotline call {uniqueid} from {caller}: {outcome} ({d})",
                                   uniqueid="1767.1", caller="+8659187650001",
                                   outcome="answered", d="居委会"))

    def test_conversions_and_attributes(self):
        class Peer:
            host = "127.0.0.1"
        self.assertAsTwisted(event("from {peer.host}: {line!r}", peer=Peer(), line="x\ty"))

    def test_several_lines_are_indented(self):
        self.assertAsTwisted(event("refused:\n{problems}", LogLevel.error,
                                   problems="a.yaml:1:1: bad\na.yaml:2:1: worse"))

    def test_failure_takes_twisteds_way(self):
        try:
            1 / 0
        except ZeroDivisionError:
            failure = Failure()
        e = event("call failed", LogLevel.critical, log_failure=failure)
        text = self.written(e)
        self.assertEqual(text, formatEventAsClassicLogText(e))
        self.assertIn("ZeroDivisionError", text)

    def test_call_syntax_takes_twisteds_way(self):
        self.assertAsTwisted(event("{f()} done", f=lambda: "it"))

    def test_missing_key_takes_twisteds_way(self):
        self.assertAsTwisted(event("{absent} here"))

    def test_levels_below_are_left_out(self):
        text = self.written(event("quiet", LogLevel.debug), event("heard", LogLevel.warn))
        self.assertNotIn("quiet", text)
        self.assertIn("[switchboard.x#warn] heard", text)
        self.assertIn("quiet", self.written(event("quiet", LogLevel.debug), level=LogLevel.debug))

    def test_time_stamp_follows_the_clock(self):
        first = event("one")
        later = dict(event("two"), log_time=WHEN + 3600)
        lines = self.written(first, later).splitlines()
        self.assertEqual(lines[0], formatEventAsClassicLogText(first).rstrip("\n"))
        self.assertEqual(lines[1], formatEventAsClassicLogText(later).rstrip("\n"))
