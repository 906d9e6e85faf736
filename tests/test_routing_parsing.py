"""
Parsing a routing file in a child process, as a running server's reloads
do: the same result as in this process, located errors, and a child that
dies or hangs failing the reload with a clear reason.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase

from switchboard.routing import schema
from switchboard.routing.parsing import ChildFailed, ChildProcessParser
from switchboard.yamlconf import ConfigError
from tests.test_hotline_support import PLAN, ROUTING

TRUNKS = ("default", "outside")


class SpawnWithClock:
    """The real reactor's processes, with time the test moves."""

    def __init__(self):
        self.clock = task.Clock()
        self.callLater = self.clock.callLater

    def spawnProcess(self, *args, **kwargs):
        return reactor.spawnProcess(*args, **kwargs)


class ChildProcessParserTests(TestCase):
    def setUp(self):
        self.folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.folder, True)
        self.path = os.path.join(self.folder, "routing.yaml")

    def script(self, body):
        """An executable that stands in for Python as the child."""
        path = os.path.join(self.folder, "child.sh")
        with open(path, "w") as f:
            f.write("#!/bin/sh\n" + body + "\n")
        os.chmod(path, stat.S_IRWXU)
        return path

    @defer.inlineCallbacks
    def test_same_routing_as_in_process(self):
        raw = ROUTING.encode("utf-8")
        routing = yield ChildProcessParser().parse(self.path, raw, PLAN, TRUNKS)
        here = schema.loads(ROUTING, self.path, PLAN, trunks=TRUNKS)
        self.assertEqual(routing, here)
        self.assertEqual(routing.destinations["committee"].label, "居委会")
        self.assertEqual(routing.path, self.path)

    @defer.inlineCallbacks
    def test_refused_file_comes_back_located(self):
        raw = ROUTING.replace("options: {1: health,", "options: {1: nobody,").encode("utf-8")
        with self.assertRaises(ConfigError) as caught:
            yield ChildProcessParser().parse(self.path, raw, PLAN, TRUNKS)
        [problem] = caught.exception.problems
        self.assertEqual(problem.location.path, self.path)
        self.assertIn("unknown destination 'nobody'", str(caught.exception))
        self.assertRegex(str(caught.exception), r"routing\.yaml:\d+:\d+: menus\.main\.options\.1")

    @defer.inlineCallbacks
    def test_not_utf8(self):
        with self.assertRaises(ConfigError) as caught:
            yield ChildProcessParser().parse(self.path, b"hotline: \xff\n", PLAN, TRUNKS)
        self.assertIn("not UTF-8 text", str(caught.exception))

    @defer.inlineCallbacks
    def test_child_that_dies(self):
        parser = ChildProcessParser(executable=self.script("echo 'MemoryError' >&2; exit 1"))
        with self.assertRaises(ChildFailed) as caught:
            yield parser.parse(self.path, b"x", PLAN, TRUNKS)
        message = str(caught.exception)
        self.assertIn("the parser process failed", message)
        self.assertIn("exit code 1", message)
        self.assertIn("MemoryError", message)

    @defer.inlineCallbacks
    def test_child_with_a_garbled_answer(self):
        parser = ChildProcessParser(executable=self.script("cat >/dev/null; echo garbage"))
        with self.assertRaises(ChildFailed) as caught:
            yield parser.parse(self.path, b"x", PLAN, TRUNKS)
        self.assertIn("unreadable answer from the parser", str(caught.exception))

    @defer.inlineCallbacks
    def test_child_that_hangs_is_killed(self):
        spawner = SpawnWithClock()
        parser = ChildProcessParser(spawner, timeout=60,
                                    executable=self.script("exec sleep 600"))
        d = parser.parse(self.path, b"x", PLAN, TRUNKS)
        spawner.clock.advance(60)
        with self.assertRaises(ChildFailed) as caught:
            yield d
        self.assertIn("still parsing after 60 s", str(caught.exception))

    @defer.inlineCallbacks
    def test_child_is_not_given_the_servers_secrets(self):
        # A child busy with a hostile file must hold no more than the file.
        secrets = {"SWITCHBOARD_AMI_SECRET": "s3cret", "NOTIFY_SOCKET": "/run/systemd/notify",
                   "CREDENTIALS_DIRECTORY": "/run/credentials/switchboard.service"}
        for name, value in secrets.items():
            self.addCleanup(os.environ.pop, name, None)
            os.environ[name] = value
        seen = os.path.join(self.folder, "environment")
        parser = ChildProcessParser(executable=self.script(f"env > {seen}; exit 1"))
        with self.assertRaises(ChildFailed):
            yield parser.parse(self.path, b"x", PLAN, TRUNKS)
        with open(seen) as f:
            environment = dict(line.rstrip("\n").partition("=")[::2] for line in f)
        self.assertEqual(set(secrets) & set(environment), set())
        self.assertNotIn("s3cret", "".join(environment.values()))
        self.assertEqual(environment["PATH"], os.environ["PATH"])
        self.assertIn(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      environment["PYTHONPATH"].split(os.pathsep))


def _printed(code: str) -> str:
    """What C{code} prints, run in a fresh interpreter (as the child is)."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip()


class ChildPriorityTests(TestCase):
    def test_child_runs_at_idle_priority(self):
        self.assertEqual(_printed(
            "import os; from switchboard.routing.child import _idle_priority; "
            "_idle_priority(); print(os.sched_getscheduler(0) == os.SCHED_IDLE)"), "True")

    def test_child_starts_without_twisted(self):
        self.assertEqual(_printed(
            "import sys; from switchboard.routing import child, schema; "
            "print('twisted' in sys.modules)"), "False")


class AlarmFileInAChildTests(TestCase):
    """alarm.yaml's reloads use the same child, with alarm.config's loader."""

    def setUp(self):
        project = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        self.path = os.path.join(project, "config", "alarm.yaml")
        with open(self.path, "rb") as f:
            self.raw = f.read()
        from alarm import config
        self.config = config
        self.parser = ChildProcessParser(loader=config.LOADER, what="alarm file")

    @defer.inlineCallbacks
    def test_same_config_as_in_process(self):
        parsed = yield self.parser.parse(self.path, self.raw, PLAN, ["default"])
        self.assertEqual(parsed, self.config.load_bytes(self.raw, self.path, PLAN, ["default"]))

    @defer.inlineCallbacks
    def test_refused_file_comes_back_located(self):
        raw = self.raw.replace(b"ring_timeout: 30", b"ring_timeout: 3000")
        with self.assertRaises(ConfigError) as caught:
            yield self.parser.parse(self.path, raw, PLAN, ["default"])
        self.assertRegex(str(caught.exception),
                         r"alarm\.yaml:\d+:\d+: neighbours\.ring_timeout: 3000 seconds")

    @defer.inlineCallbacks
    def test_failure_names_the_alarm_file(self):
        folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, folder, True)
        script = os.path.join(folder, "child.sh")
        with open(script, "w") as f:
            f.write("#!/bin/sh\ncat >/dev/null; echo garbage\n")
        os.chmod(script, stat.S_IRWXU)
        parser = ChildProcessParser(executable=script, loader=self.config.LOADER,
                                    what="alarm file")
        with self.assertRaises(ChildFailed) as caught:
            yield parser.parse(self.path, self.raw, PLAN, ["default"])
        self.assertTrue(str(caught.exception).startswith(f"alarm file {self.path}: "))
