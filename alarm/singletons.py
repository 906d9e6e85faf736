"""
The alarm's duties that one switchboard instance does for all of them,
led by the elected one (L{switchboard.election}): AstDB's synchronisation.

Every instance keeps serving #9 calls, ringing, confirming and guarding the
alarms it holds (L{alarm.guard.SilenceGuard} watches this instance's own
alarms: it is not a singleton duty). Two instances writing AstDB at once
would each read it back and rewrite what the other just wrote; only the
leader does, and the one that takes over resynchronises at once, so AstDB
follows the registry through the hand-over.
"""

from __future__ import annotations

from twisted.internet import defer


class LeaderOnlyAstDB:
    """
    L{alarm.astdb.AstDBSync} (C{astdb}) as the server uses it, done only
    while C{elector} leads (the feature resynchronises on taking the lead).
    """

    def __init__(self, astdb, elector):
        self.astdb = astdb
        self.elector = elector

    def __getattr__(self, name):
        # Its state (stale, the last sync...) and parts are the AstDBSync's.
        return getattr(self.astdb, name)

    def resync(self, force=False) -> defer.Deferred:
        if not self.elector.leading:
            return defer.succeed(None)
        return self.astdb.resync(force)

    def apply(self, changes) -> defer.Deferred:
        if not self.elector.leading:
            return defer.succeed(None)
        return self.astdb.apply(changes)

    def duty_changed(self, config) -> defer.Deferred:
        if not self.elector.leading:
            return defer.succeed(None)
        return self.astdb.duty_changed(config)
