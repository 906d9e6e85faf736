"""
AstDB on every Asterisk: each server's dialplan reads its own AstDB when the
switchboard is down (the native ring-all), so each is kept in step with the
registry, through its own bulk AMI session and with its own dial strings
(its trunks reach the phones on the other servers).
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.logger import Logger


class EveryAstDB:
    """
    Several L{alarm.astdb.AstDBSync}s (each wrapped by
    L{alarm.singletons.LeaderOnlyAstDB}), one per Asterisk server, driven as
    one: what the registry watcher and the feature ask of AstDB is asked of
    each, and one server's trouble (no link, a failed write) is its own.
    Its state (C{stale}, C{synced_at}...) read as an attribute is the main
    (first) server's, what the duty board's AstDB light has always shown;
    L{syncs} has each.
    """

    log = Logger()

    def __init__(self, syncs):
        #: Server name -> its sync, the main server first.
        self.syncs = dict(syncs)

    def __getattr__(self, name):
        if name.startswith("_") or name == "syncs":
            raise AttributeError(name)
        return getattr(next(iter(self.syncs.values())), name)

    @property
    def stale(self) -> bool:
        """Whether any server's AstDB is not known to be in step."""
        return any(getattr(sync, "stale", False) for sync in self.syncs.values())

    def _each(self, what, *args) -> defer.Deferred:
        calls = []
        for name, sync in self.syncs.items():
            d = defer.maybeDeferred(getattr(sync, what), *args)
            d.addErrback(lambda f, name=name: self.log.failure(
                "AstDB {what} on Asterisk {name}", f, what=what, name=name))
            calls.append(d)
        return defer.gatherResults(calls)

    def resync(self, force=False) -> defer.Deferred:
        """Read back and put right every server's AstDB that is linked now."""
        return self._each_linked("resync", force)

    def _each_linked(self, what, *args) -> defer.Deferred:
        linked = {name: sync for name, sync in self.syncs.items()
                  if getattr(sync.ami, "connected", True)}
        return EveryAstDB(linked)._each(what, *args) if linked else defer.succeed([])

    def resync_one(self, name) -> defer.Deferred:
        """Server C{name}'s AstDB read back and put right (its bulk session connected)."""
        return self.syncs[name].resync()

    def apply(self, changes) -> defer.Deferred:
        return self._each("apply", changes)

    def duty_changed(self, config) -> defer.Deferred:
        return self._each("duty_changed", config)
