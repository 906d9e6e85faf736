"""
Turning the bytes of a routing file into a L{Routing} (or of another
configuration file into what it describes: C{alarm.yaml}, see C{loader}):
in this process (start-up, the CLI, tests) or in a child process (reloads
of a running server).

A reload of a large file is mostly YAML parsing, and Python parses on one
core at a time: on a thread it would take that time from the calls the
reactor is serving. A child process parses on another core, under limits
of its own (memory, CPU time, wall time), so that a huge or hostile file
costs the server nothing but the unpickling of the result.
"""

from __future__ import annotations

import os
import pickle
import sys

from twisted.internet import defer, error, protocol
from twisted.logger import Logger


#: The module the child runs (see L{switchboard.routing.child}).
CHILD_MODULE = "switchboard.routing.child"
#: What turns a routing file's bytes into a L{Routing}, as C{module:function}.
ROUTING_LOADER = "switchboard.routing.schema:load_bytes"


def find_loader(name: str):
    """The function C{module:function} names; it takes C{(raw, path, numbers, trunks)}."""
    import importlib
    module, _, function = name.partition(":")
    return getattr(importlib.import_module(module), function)


class InProcessParser:
    """Parses in the calling thread (the CLI, tests)."""

    def __init__(self, loader: str = ROUTING_LOADER):
        self.loader = loader

    def parse(self, path: str, raw: bytes, numbers, trunks=None) -> defer.Deferred:
        return defer.maybeDeferred(find_loader(self.loader), raw, path, numbers, trunks)


class ChildFailed(Exception):
    """The child process parsing a configuration file died or was killed."""


class ChildProcessParser:
    """
    Parses in a fresh child process (C{python -m switchboard.routing.child}).

    The request (path, bytes, number plan, trunks) goes to the child's
    stdin, the outcome (a L{Routing} or the L{ConfigError}) comes back
    pickled on its stdout: both ends are this program.

    @param reactor: provides C{spawnProcess} and C{callLater}.
    @param timeout: seconds before a child still parsing is killed. The
        child runs at idle priority (only on CPU time the calls leave), so
        this is generous; its CPU time is limited to C{cpu_limit} seconds.
    @param cpu_limit: CPU seconds the child may use.
    @param memory_limit: bytes of address space the child may use.
    @param idle: run the child at idle CPU priority (C{SCHED_IDLE}).
    @param loader: the C{module:function} the child parses with
        (L{ROUTING_LOADER} by default; C{alarm.config:load_bytes} for
        C{alarm.yaml}).
    @param what: what the file is, for messages (C{routing}, C{alarm file}).
    """

    log = Logger()

    def __init__(self, reactor=None, *, timeout: float = 300.0, cpu_limit: int = 60,
                 memory_limit: int = 2 * 1024 ** 3, idle: bool = True,
                 executable: str = sys.executable, loader: str = ROUTING_LOADER,
                 what: str = "routing"):
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.timeout = timeout
        self.cpu_limit = cpu_limit
        self.memory_limit = memory_limit
        self.idle = idle
        self.executable = executable
        self.loader = loader
        self.what = what

    def parse(self, path: str, raw: bytes, numbers, trunks=None) -> defer.Deferred:
        request = pickle.dumps({
            "path": path, "raw": raw, "numbers": numbers,
            "trunks": None if trunks is None else list(trunks),
            "memory_limit": self.memory_limit, "cpu_limit": self.cpu_limit,
            "idle": self.idle, "loader": self.loader,
        })
        child = _ChildProtocol(request, f"{self.what} {path}")
        self.reactor.spawnProcess(child, self.executable,
                                  [self.executable, "-m", CHILD_MODULE],
                                  env=_child_environment())
        timer = self.reactor.callLater(self.timeout, child.kill,
                                       f"still parsing after {self.timeout:g} s")
        return child.done.addBoth(_cancelled(timer))


def _cancelled(timer):
    def cancel(result):
        if timer.active():
            timer.cancel()
        return result
    return cancel


#: What the child is given of the server's environment: what Python needs
#: to start and to read text, nothing else. Not the AMI secret
#: (C{SWITCHBOARD_AMI_SECRET}), not systemd's C{NOTIFY_SOCKET} or
#: C{CREDENTIALS_DIRECTORY}: a child busy with a hostile file holds no
#: more than the file.
CHILD_ENVIRONMENT = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "PYTHONPATH", "PYTHONHOME",
                     "PYTHONIOENCODING", "PYTHONUTF8", "VIRTUAL_ENV")


def _child_environment(environ=None) -> dict:
    """The child's environment: L{CHILD_ENVIRONMENT}, with this copy of switchboard importable."""
    environ = os.environ if environ is None else environ
    env = {name: environ[name] for name in CHILD_ENVIRONMENT if name in environ}
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH")) if p)
    return env


class _ChildProtocol(protocol.ProcessProtocol):
    """Sends one request, gathers the pickled answer, fires C{done}."""

    def __init__(self, request: bytes, label: str):
        self.request = request
        self.label = label  # "routing /etc/switchboard/routing.yaml"
        self.done = defer.Deferred()
        self._out = []
        self._err = []
        self._killed = None

    def connectionMade(self):
        self.transport.write(self.request)
        self.transport.closeStdin()

    def outReceived(self, data):
        self._out.append(data)

    def errReceived(self, data):
        if sum(map(len, self._err)) < 65536:
            self._err.append(data)

    def kill(self, why):
        self._killed = why
        try:
            self.transport.signalProcess("KILL")
        except error.ProcessExitedAlready:
            pass

    def processEnded(self, reason):
        if self._killed:
            return self.done.errback(ChildFailed(f"{self.label}: {self._killed}"))
        if reason.check(error.ProcessDone):
            try:
                kind, value = pickle.loads(b"".join(self._out))
            except Exception as e:
                return self.done.errback(ChildFailed(
                    f"{self.label}: unreadable answer from the parser: {e!r}"))
            if kind == "loaded":
                return self.done.callback(value)
            return self.done.errback(value)
        stderr = b"".join(self._err).decode("utf-8", "replace").strip()
        last = stderr.splitlines()[-1] if stderr else "no message"
        self.done.errback(ChildFailed(
            f"{self.label}: the parser process failed "
            f"({reason.value}): {last}"))
