"""
The routing in force: loads, reloads off the reactor thread, refused files
that leave the last good routing serving.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import textwrap

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from switchboard.routing import RoutingStore, schema
from switchboard.routing.parsing import ChildFailed, InProcessParser
from switchboard import yamlconf
from switchboard.yamlconf import ConfigError
from tests.test_hotline_support import PLAN, ROUTING, FakeReactor

BAD = "hotline: {menu: main, operator: op}\nmenus: {main: {prompt: m, options: {1: nobody}}}\n" \
      "destinations:\n  op: {type: operator, phones: [87650100]}\n"


class StoreTests(SynchronousTestCase):
    def setUp(self):
        folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, folder, True)
        self.folder = folder
        self.path = os.path.join(folder, "routing.yaml")
        self.write(ROUTING)
        self.reactor = FakeReactor()
        self.store = RoutingStore(self.path, PLAN, trunks=["default", "outside"],
                                  reactor=self.reactor, parser=InProcessParser())

    def write(self, text):
        with open(self.path, "w", encoding="utf-8") as f:
            f.write(textwrap.dedent(text))

    def with_label(self, label):
        return ROUTING.replace("label: 居委会", f"label: {label}")

    def test_load(self):
        routing = self.store.load()
        self.assertIs(self.store.current, routing)
        self.assertEqual(self.store.generation, 1)
        self.assertEqual(routing.destinations["committee"].label, "居委会")

    def test_first_load_refused(self):
        self.write(BAD)
        with self.assertRaises(ConfigError):
            self.store.load()
        self.assertIsNone(self.store.current)
        self.assertEqual(self.store.generation, 0)

    def test_refused_load_keeps_last_good(self):
        good = self.store.load()
        self.write(BAD)
        with self.assertRaises(ConfigError) as caught:
            self.store.load()
        self.assertIn("menus.main.options.1: unknown destination 'nobody'", str(caught.exception))
        self.assertIs(self.store.current, good)
        self.assertIs(self.store.last_error, caught.exception)

    def test_trunks_are_checked(self):
        store = RoutingStore(self.path, PLAN, trunks=["default"])
        with self.assertRaises(ConfigError) as caught:
            store.load()
        self.assertIn("no trunk named 'outside'", str(caught.exception))

    def test_reload_parses_on_the_pool_and_swaps_after(self):
        old = self.store.load()
        self.write(self.with_label("社区居委会"))
        d = self.store.reload()
        # Nothing happens on the reactor thread until the pool ran the job:
        # calls keep using the routing in force.
        self.assertNoResult(d)
        self.assertIs(self.store.current, old)
        self.assertEqual(len(self.reactor.pool.jobs), 1)
        self.reactor.pool.run()
        new = self.successResultOf(d)
        self.assertIs(self.store.current, new)
        self.assertEqual(new.destinations["committee"].label, "社区居委会")
        self.assertEqual(self.store.generation, 2)
        self.assertEqual(self.reactor.from_thread, 1)  # the swap came back to the reactor
        self.assertEqual(old.destinations["committee"].label, "居委会")  # untouched

    def test_reload_reads_the_file_when_the_job_runs(self):
        self.store.load()
        d = self.store.reload()
        self.write(self.with_label("最新"))
        self.reactor.pool.run()
        self.assertEqual(self.successResultOf(d).destinations["committee"].label, "最新")

    def test_refused_reload_keeps_last_good(self):
        good = self.store.load()
        self.write(BAD)
        d = self.store.reload()
        self.reactor.pool.run()
        failure = self.failureResultOf(d, ConfigError)
        self.assertIn("unknown destination 'nobody'", str(failure.value))
        self.assertIs(self.store.current, good)
        self.assertIs(self.store.last_error, failure.value)
        # A good file afterwards is taken.
        self.write(ROUTING)
        d = self.store.reload()
        self.reactor.pool.run()
        self.assertIs(self.store.current, self.successResultOf(d))
        self.assertIsNone(self.store.last_error)

    def test_unexpected_failure_keeps_last_good(self):
        good = self.store.load()
        self.write(self.with_label("新"))
        self.patch(schema, "loads", lambda *a, **kw: 1 / 0)
        d = self.store.reload()
        self.reactor.pool.run()
        self.failureResultOf(d, ZeroDivisionError)
        self.assertIs(self.store.current, good)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_reloads_during_a_reload_are_folded_into_one_more(self):
        self.store.load()
        self.write(self.with_label("第一"))
        first = self.store.reload()
        second = self.store.reload()
        third = self.store.reload()
        self.assertEqual(len(self.reactor.pool.jobs), 1)
        self.write(self.with_label("第二"))
        self.reactor.pool.run()  # runs the first job, then the one follow-up
        self.assertEqual(self.successResultOf(first).destinations["committee"].label, "第二")
        self.assertIs(self.successResultOf(second), self.successResultOf(third))
        # The follow-up found the same bytes: nothing new to swap in.
        self.assertIs(self.successResultOf(second), self.successResultOf(first))
        self.assertEqual(self.store.generation, 2)

    def test_unchanged_file_is_not_parsed_again(self):
        first = self.store.load()
        self.patch(schema, "loads", lambda *a, **kw: 1 / 0)
        d = self.store.reload()
        self.reactor.pool.run()
        self.assertIs(self.successResultOf(d), first)
        self.assertEqual(self.store.generation, 1)

    def test_unreadable_file(self):
        self.store.load()
        os.remove(self.path)
        d = self.store.reload()
        self.reactor.pool.run()
        self.assertIn("cannot read", str(self.failureResultOf(d, ConfigError).value))

    def test_oversized_file_refused_before_it_is_read(self):
        """A file over the limit is refused by its size and the last good routing serves."""
        good = self.store.load()
        with open(self.path, "r+b") as f:
            f.truncate(yamlconf.MAX_FILE_BYTES + 1)  # sparse: costs no disk
        d = self.store.reload()
        self.reactor.pool.run()
        error = self.failureResultOf(d, ConfigError).value
        self.assertEqual(str(error), f"{self.path}:1:1: the file has "
                         f"{yamlconf.MAX_FILE_BYTES + 1} bytes, more than the "
                         f"{yamlconf.MAX_FILE_BYTES} a configuration file may have")
        self.assertIs(self.store.current, good)
        self.assertRaises(ConfigError, self.store.load)
        self.assertRaises(ConfigError, schema.load, self.path, PLAN)  # the CLI's check
        self.assertIs(self.store.current, good)

    def test_not_utf8(self):
        with open(self.path, "wb") as f:
            f.write(ROUTING.replace("居委会", "\u5c45").encode("utf-8") + b"# \xff\n")
        with self.assertRaises(ConfigError) as caught:
            self.store.load()
        self.assertIn("not UTF-8 text", str(caught.exception))

    def test_reload_with_a_new_path(self):
        self.store.load()
        other = os.path.join(self.folder, "other.yaml")
        with open(other, "w", encoding="utf-8") as f:
            f.write(self.with_label("新文件"))
        d = self.store.reload(other)
        self.reactor.pool.run()
        self.assertEqual(self.successResultOf(d).path, other)
        self.assertEqual(self.store.path, other)


class HandOffParser:
    """A parser whose answers the test gives."""

    def __init__(self):
        self.requests = []

    def parse(self, path, raw, numbers, trunks=None):
        d = defer.Deferred()
        self.requests.append((path, raw, numbers, trunks, d))
        return d


class ParserHandOffTests(SynchronousTestCase):
    """The store reads on the pool and leaves parsing to its parser."""

    def setUp(self):
        folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, folder, True)
        self.path = os.path.join(folder, "routing.yaml")
        with open(self.path, "w", encoding="utf-8") as f:
            f.write(ROUTING)
        self.reactor = FakeReactor()
        self.parser = HandOffParser()
        self.store = RoutingStore(self.path, PLAN, trunks=["default", "outside"],
                                  reactor=self.reactor, parser=self.parser)
        self.old = self.store.load()  # start-up parses in the process

    def change(self, label):
        with open(self.path, "w", encoding="utf-8") as f:
            f.write(ROUTING.replace("label: 居委会", f"label: {label}"))

    def test_changed_file_goes_to_the_parser_with_its_bytes(self):
        self.change("新")
        d = self.store.reload()
        self.reactor.pool.run()
        [(path, raw, numbers, trunks, parsed)] = self.parser.requests
        self.assertEqual((path, numbers, trunks), (self.path, PLAN, ("default", "outside")))
        self.assertIn("label: 新".encode("utf-8"), raw)
        self.assertNoResult(d)
        self.assertIs(self.store.current, self.old)  # calls keep the routing in force
        new = schema.loads(raw.decode("utf-8"), path, PLAN, trunks=trunks)
        parsed.callback(new)
        self.assertIs(self.successResultOf(d), new)
        self.assertIs(self.store.current, new)
        # The same bytes again: nothing to parse.
        again = self.store.reload()
        self.reactor.pool.run()
        self.assertIs(self.successResultOf(again), new)
        self.assertEqual(len(self.parser.requests), 1)

    def test_unchanged_file_is_not_sent(self):
        d = self.store.reload()
        self.reactor.pool.run()
        self.assertIs(self.successResultOf(d), self.old)
        self.assertEqual(self.parser.requests, [])

    def test_parser_failure_keeps_last_good(self):
        self.change("新")
        d = self.store.reload()
        self.reactor.pool.run()
        self.parser.requests[0][-1].errback(ChildFailed("routing x: still parsing after 60 s"))
        self.failureResultOf(d, ChildFailed)
        self.assertIs(self.store.current, self.old)
        self.assertEqual(len(self.flushLoggedErrors(ChildFailed)), 1)
