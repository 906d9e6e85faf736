"""
The routing in force, and its reloads.

A L{RoutingStore} holds one immutable L{Routing}. A call reads
C{store.current} once when it starts and keeps that object, so calls in
progress finish on the rules they started with. A reload parses and checks
the file on a thread (YAML parsing and validation of a large file take
time the reactor must not lose) and swaps the result in on the reactor
thread; a refused file leaves the last good routing serving.
"""

from __future__ import annotations

import gc

import hashlib
from typing import Optional

from twisted.internet import defer, threads
from twisted.logger import Logger
from twisted.python.failure import Failure

from switchboard.numbers import NumberPlan
from switchboard.routing import schema
from switchboard.routing.model import Routing
from switchboard.yamlconf import ConfigError, Location, Problem


class RoutingStore:
    """
    The current routing of the hotline.

    @ivar current: the L{Routing} in force (L{None} until the first load).
    @ivar generation: how many routings have been swapped in.
    @ivar last_error: the L{ConfigError} of the last refused file, L{None}
        after a successful load.
    """

    log = Logger()

    def __init__(self, path: str, numbers: NumberPlan, *, trunks=None, reactor=None):
        """
        @param path: the routing file.
        @param numbers: the community's number plan.
        @param trunks: trunk names known to the service (checked if given).
        @param reactor: provides C{getThreadPool()} and C{callFromThread}
            for L{reload}; the global reactor by default.
        """
        self.path = path
        self.numbers = numbers
        self.trunks = tuple(trunks) if trunks is not None else None
        self._reactor = reactor
        self.current: Optional[Routing] = None
        self.generation = 0
        self.last_error: Optional[ConfigError] = None
        self._running = False
        self._waiting: list = []
        self._digest = None  # of the bytes of the routing in force
        self._digests: dict = {}  # id(parsed routing) -> digest, until swapped

    def _read(self, path: str) -> Routing:
        """
        Parse and check C{path} (on a pool thread for L{reload}). A file
        whose bytes are those of the routing in force is not parsed again.
        """
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError as e:
            raise ConfigError([Problem(None, "", f"cannot read {path}: {e.strerror}")])
        digest = hashlib.sha256(raw).digest()
        current = self.current
        if current is not None and digest == self._digest and path == current.path:
            return current
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ConfigError([Problem(Location(path, 1, 1), "", f"not UTF-8 text: {e}")])
        routing = schema.loads(text, path, self.numbers, trunks=self.trunks)
        self._digests[id(routing)] = digest
        return routing

    def load(self, path: Optional[str] = None) -> Routing:
        """
        Read and check the file now (start-up, CLI) and swap it in.

        @raise ConfigError: the file was refused; the last good routing
            stays in force.
        """
        path = path or self.path
        try:
            routing = self._read(path)
        except ConfigError as e:
            self._refused(e, path)
            raise
        return self._swap(routing)

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
        work.addCallbacks(self._swap, self._failed, errbackArgs=(path,))
        work.addBoth(self._finished, waiting)

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

    def _swap(self, routing: Routing) -> Routing:
        if routing is self.current:
            self.last_error = None
            self.log.info("routing {path} unchanged (generation {generation})",
                          path=routing.path, generation=self.generation)
            return routing
        self._digest = self._digests.pop(id(routing), None)
        self._digests.clear()
        self.current = routing
        self.generation += 1
        self.last_error = None
        self.log.info("routing {path} in force (generation {generation}): {summary}",
                      path=routing.path, generation=self.generation, summary=routing.summary())
        return routing

    def _refused(self, error: ConfigError, path: str) -> None:
        self.last_error = error
        keeping = (f"keeping generation {self.generation}" if self.current is not None
                   else "no routing in force")
        self.log.error("routing {path} refused ({keeping}):\n{problems}", path=path,
                       keeping=keeping, problems=str(error))
