"""
The routing in force, and its reloads.

A L{RoutingStore} holds one immutable L{Routing}. A call reads
C{store.current} once when it starts and keeps that object, so calls in
progress finish on the rules they started with. A reload reads the file on
a thread, parses and checks it in a child process (YAML parsing and
validation of a large file take time the reactor must not lose; see
L{switchboard.routing.parsing}) and swaps the result in on the reactor
thread; a refused file leaves the last good routing serving.

Text prompts are rendered once a routing is in force (L{render}): the
swap does not wait for the speech engine, and until a text is rendered
(or when it cannot be) calls play the prompt's fallback sound. Renderings
are cached by the text, so a reload renders only what changed.
"""

from __future__ import annotations

import hashlib
from typing import Optional

from twisted.internet import defer, threads
from twisted.logger import Logger
from twisted.python.failure import Failure

from switchboard.numbers import NumberPlan
from switchboard.routing.model import Routing
from switchboard.routing.parsing import ChildProcessParser
from switchboard.routing.schema import load_bytes
from switchboard.reloads import IN_FORCE, REFUSED, UNCHANGED, LoadRecord
from switchboard.yamlconf import ConfigError, read_bytes


class RoutingStore:
    """
    The current routing of the hotline.

    @ivar current: the L{Routing} in force (L{None} until the first load).
    @ivar generation: how many routings have been swapped in.
    @ivar last_error: the L{ConfigError} of the last refused file, L{None}
        after a successful load.
    @ivar refusals: how many files have been refused.
    @ivar loads: the L{LoadRecord} of the loads (when, refused with what).
    """

    log = Logger()

    def __init__(self, path: str, numbers: NumberPlan, *, trunks=None, reactor=None,
                 parser=None, speech=None):
        """
        @param path: the routing file.
        @param numbers: the community's number plan.
        @param trunks: trunk names known to the service (checked if given).
        @param reactor: provides C{getThreadPool()} and C{callFromThread}
            for L{reload}; the global reactor by default.
        @param parser: what parses a changed file for L{reload} (its
            C{parse(path, raw, numbers, trunks)} returns a Deferred): a
            L{ChildProcessParser} on C{reactor} by default.
        @param speech: a L{switchboard.speech.Speech} that renders the text
            prompts of each routing swapped in (its C{render_all}).
        """
        self.path = path
        self.numbers = numbers
        self.trunks = tuple(trunks) if trunks is not None else None
        self._reactor = reactor
        self.current: Optional[Routing] = None
        self.generation = 0
        self.last_error: Optional[ConfigError] = None
        self.refusals = 0
        self.loads = LoadRecord("routing", reactor)
        self._running = False
        self._waiting: list = []
        self._parser = parser
        self._digest = None  # of the bytes of the routing in force
        self.speech = speech
        #: Fires once the text prompts of the routing last swapped in are
        #: rendered (or have failed, logged), with {(text, voice): name or Failure}.
        self.rendering: defer.Deferred = defer.succeed({})

    @staticmethod
    def _read(path: str):
        """The bytes of C{path} and their digest (on a pool thread for L{reload})."""
        raw = read_bytes(path)  # its size checked first: a 300 MB file is not read
        return raw, hashlib.sha256(raw).digest()

    def _unchanged(self, path: str, digest: bytes) -> bool:
        """Whether these are the bytes of the routing in force."""
        current = self.current
        return current is not None and digest == self._digest and path == current.path

    def load(self, path: Optional[str] = None) -> Routing:
        """
        Read and check the file now (start-up, CLI) and swap it in.

        @raise ConfigError: the file was refused; the last good routing
            stays in force.
        """
        path = path or self.path
        try:
            raw, digest = self._read(path)
            if self._unchanged(path, digest):
                return self._swap((self.current, digest))
            routing = load_bytes(raw, path, self.numbers, self.trunks)
        except ConfigError as e:
            self._refused(e, path)
            raise
        return self._swap((routing, digest))

    def reload(self, path: Optional[str] = None) -> defer.Deferred:
        """
        Re-read the file off the reactor thread and swap it in when valid.

        Reloads asked for while one runs are folded into one more run after
        it, so the newest file wins and swaps happen in order.

        @return: a Deferred firing with the new L{Routing}, or failing with
            the L{ConfigError} (already logged) while the last good routing
            keeps serving.
        """
        if path is not None:
            self.path = path
        d = defer.Deferred()
        self._waiting.append(d)
        if not self._running:
            self._start()
        return d

    def _start(self) -> None:
        from twisted.internet import reactor as default_reactor
        reactor = self._reactor or default_reactor
        self._running = True
        waiting, self._waiting = self._waiting, []
        path = self.path
        work = threads.deferToThreadPool(reactor, reactor.getThreadPool(), self._read, path)
        work.addCallback(self._parse, path, reactor)
        work.addCallbacks(self._swap, self._failed, errbackArgs=(path,))
        work.addBoth(self._finished, waiting)

    def _parse(self, read, path, reactor):
        """Fire with C{(routing, digest)}: the one in force if unchanged."""
        raw, digest = read
        if self._unchanged(path, digest):
            return (self.current, digest)
        if self._parser is None:
            self._parser = ChildProcessParser(reactor)
        d = self._parser.parse(path, raw, self.numbers, self.trunks)
        return d.addCallback(lambda routing: (routing, digest))

    def _failed(self, failure, path):
        if failure.check(ConfigError):
            self._refused(failure.value, path)
        else:
            self.log.failure("routing {path}: reload failed, keeping the routing in force",
                             failure, path=path)
        return failure

    def _finished(self, result, waiting):
        self._running = False
        for d in waiting:
            if isinstance(result, Failure):
                d.errback(result)
            else:
                d.callback(result)
        if self._waiting:
            self._start()
        return None

    def _swap(self, parsed) -> Routing:
        routing, digest = parsed
        if routing is self.current:
            self.last_error = None
            self.loads.note(UNCHANGED, routing.path)
            self.log.info("routing {path} unchanged (generation {generation})",
                          path=routing.path, generation=self.generation)
            self.rendering = self.render(routing)  # what failed before may render now
            return routing
        self._digest = digest
        self.current = routing
        self.generation += 1
        self.last_error = None
        self.loads.note(IN_FORCE, routing.path)
        self.log.info("routing {path} in force (generation {generation}): {summary}",
                      path=routing.path, generation=self.generation, summary=routing.summary())
        self.rendering = self.render(routing)
        return routing

    def render(self, routing: Routing) -> defer.Deferred:
        """
        Render the text prompts of C{routing} (off the reactor: see
        L{switchboard.speech.Speech.render_all}); log those that cannot be,
        by where they are written and what callers hear instead. Never
        fails: a prompt without its rendering plays its fallback.
        """
        texts = routing.texts()
        if self.speech is None or not texts:
            return defer.succeed({})
        try:
            d = self.speech.render_all(list(texts))
        except Exception:
            d = defer.fail()

        def done(results):
            failed = {key: f for key, f in results.items() if isinstance(f, Failure)}
            for key, failure in failed.items():
                prompt = texts.get(key)
                where = prompt.where if prompt is not None else repr(key)
                instead = (prompt.sound or prompt.fallback) if prompt is not None else None
                self.log.warn("routing {path}: {where}: text not rendered ({why}); callers "
                              "hear {instead}", path=routing.path, where=where,
                              why=failure.getErrorMessage(), instead=instead or "nothing")
            self.log.info("routing {path}: {ok} of {all} text prompt(s) rendered",
                          path=routing.path, ok=len(results) - len(failed), all=len(texts))
            return results

        def broken(failure):
            self.log.failure("routing {path}: text prompts not rendered; callers hear their "
                             "fallback sounds", failure, path=routing.path)
            return {}

        return d.addCallbacks(done, broken)

    def _refused(self, error: ConfigError, path: str) -> None:
        self.last_error = error
        self.refusals += 1
        self.loads.note(REFUSED, path, error)
        keeping = (f"keeping generation {self.generation}" if self.current is not None
                   else "no routing in force")
        self.log.error("routing {path} refused ({keeping}):\n{problems}", path=path,
                       keeping=keeping, problems=str(error))
