"""
The AstDB copy of the registry that the dialplan rings from when this
server cannot be reached.

Family C{swb_alarm}: for every caller-ID form of every registered landline
(L{NumberPlan.variants}), key = that form and value = the C{&}-joined dial
string of the household's neighbours (L{Dialer.ring_all}); key C{duty} = the
first escalation stage's phones. A household without neighbours has no key,
so the dialplan rings the duty phones for it.

Key C{stamp} records which registry version (and dial settings) AstDB holds,
written last: after an AMI reconnect a matching stamp means AstDB is already
in step (Asterisk keeps AstDB across restarts), anything else means a full
resynchronisation: the stamp is removed, C{duty} and every household are
written over what is there (in batches worked out on a thread and sent at a
bounded rate with a bounded number of actions in flight, so 200,000
households do not flood Asterisk), then keys of households that are gone
are deleted (C{DBGetTree}, read as it streams), and the stamp written. The
family is never emptied on the way: should this server stop halfway, every
household still finds its neighbours, old or new, in the dialplan.
"""

from __future__ import annotations

import zlib

from twisted.internet import defer, task, threads
from twisted.logger import Logger
from twisted.python.failure import Failure

FAMILY = "swb_alarm"
DUTY_KEY = "duty"
STAMP_KEY = "stamp"


class AstDBSync:
    """
    Keeps AstDB family C{swb_alarm} in step with the L{CallerIndex}.

    @param ami: the C{AMIClient} (C{db_put}, C{db_get}, C{db_del},
        C{db_tree}, C{connected}).
    @param run_in_thread: C{f(*args) -> Deferred} running C{f} off the
        reactor (default: the reactor's thread pool).
    @param window: most C{DBPut}/C{DBDel} actions awaiting their answer.
    @param rate: most actions per second.
    @param batch: households worked out per thread hop.
    """

    log = Logger()

    def __init__(self, ami, index, dialer, config, *, clock=None, run_in_thread=None,
                 window=20, rate=5000.0, batch=500):
        if clock is None:
            from twisted.internet import reactor as clock
        self.ami = ami
        self.index = index
        self.dialer = dialer
        self.config = config
        self.clock = clock
        self.run_in_thread = run_in_thread or threads.deferToThread
        self.window = window
        self.rate = rate
        self.batch = batch
        self.stale = True      # AstDB is not known to be in step
        self._generation = 0
        self._lock = defer.DeferredLock()

    # What goes in --------------------------------------------------------------

    def duty(self) -> str:
        stage = self.config.duty
        return self.dialer.ring_all(stage.phones, stage.trunk)

    def stamp(self) -> str:
        """The registry version and a checksum of everything else the values depend on."""
        settings = repr((self.duty(), sorted(self.dialer.trunks.items()),
                         self.config.neighbour_trunk, self.dialer.numbers))
        return f"v{self.index.version} {zlib.crc32(settings.encode()):08x}"

    def entries(self, snapshot) -> list:
        """The (key, value) pairs of one household (none without neighbours)."""
        if snapshot is None or not snapshot.neighbours:
            return []
        value = self.dialer.ring_all(snapshot.neighbours, self.config.neighbour_trunk)
        numbers = self.dialer.numbers
        return [(form, value) for n in snapshot.numbers for form in numbers.variants(n)]

    def keys(self, snapshot) -> set:
        if snapshot is None:
            return set()
        numbers = self.dialer.numbers
        return {form for n in snapshot.numbers for form in numbers.variants(n)}

    # Full resynchronisation ------------------------------------------------------

    def resync(self, force=False) -> defer.Deferred:
        """
        After an AMI (re)connect: check the stamp and, unless it matches (or
        C{force}), rewrite the whole family. A later call stops an earlier
        one still running. Fires with the number of keys written (0 if AstDB
        was in step or the link went down).
        """
        self._generation += 1
        return self._lock.run(self._resync, self._generation, force)

    @defer.inlineCallbacks
    def _resync(self, generation, force):
        if generation != self._generation:
            return 0
        stamp = self.stamp()
        try:
            if not force:
                held = yield self.ami.db_get(FAMILY, STAMP_KEY)
                if held == stamp:
                    self.stale = False
                    self.log.info("AstDB {family} already in step ({stamp})",
                                  family=FAMILY, stamp=stamp)
                    return 0
            self.stale = True
            started = self.clock.seconds()
            yield self.ami.db_del(FAMILY, STAMP_KEY)  # an interrupted resync is redone
            yield self.ami.db_put(FAMILY, DUTY_KEY, self.duty())
            households = list(self.index)
            written = 1
            for start in range(0, len(households), self.batch):
                if generation != self._generation:
                    return written
                chunk = households[start:start + self.batch]
                pairs = yield self.run_in_thread(_work_out, self.entries, chunk)
                yield self._send(generation, [("put", k, v) for k, v in pairs])
                written += len(pairs)
            if generation != self._generation:
                return written
            gone = []
            yield self.ami.db_tree(FAMILY, lambda key, _: self._gone(key) and gone.append(key))
            yield self._send(generation, [("del", key, None) for key in gone])
            if generation != self._generation:
                return written
            yield self.ami.db_put(FAMILY, STAMP_KEY, stamp)
        except Exception:
            self.log.failure("AstDB {family} resync stopped (the next AMI connect starts "
                             "again)", family=FAMILY)
            return 0
        self.stale = False
        self.log.info("AstDB {family}: {n} keys for {h} households in {s:.1f} s "
                      "({gone} left over deleted)", family=FAMILY, n=written + 1,
                      h=len(households), s=self.clock.seconds() - started, gone=len(gone))
        return written + 1

    def _gone(self, key) -> bool:
        """Whether AstDB key C{key} belongs to no household with neighbours now."""
        if key in (DUTY_KEY, STAMP_KEY):
            return False
        snapshot = self.index.exact(key)
        return snapshot is None or not snapshot.neighbours

    # Changes ----------------------------------------------------------------------

    def apply(self, changes) -> defer.Deferred:
        """
        Bring AstDB in line with C{changes} from L{CallerIndex.refresh}
        ((old, new) snapshot pairs; None means the index was rebuilt, which
        calls for a full resync). Fires with the number of actions sent.
        """
        if changes is None:
            return self.resync(force=True)
        if not changes:
            return defer.succeed(0)
        if not getattr(self.ami, "connected", True):
            self.stale = True  # the next connect rewrites everything
            return defer.succeed(0)
        return self._lock.run(self._apply, self._generation, list(changes))

    @defer.inlineCallbacks
    def _apply(self, generation, changes):
        def work():
            actions = []
            for old, new in changes:
                now = dict(self.entries(new))
                actions += [("del", k, None) for k in self.keys(old) - set(now)]
                actions += [("put", k, v) for k, v in now.items()]
            return actions

        try:
            actions = yield self.run_in_thread(work)
            yield self._send(generation, actions)
            yield self.ami.db_put(FAMILY, STAMP_KEY, self.stamp())
        except Exception:
            self.stale = True
            self.log.failure("AstDB {family}: {n} household changes not applied (a full "
                             "resync follows on the next AMI connect)", family=FAMILY,
                             n=len(changes))
            return 0
        return len(actions)

    def duty_changed(self, config) -> defer.Deferred:
        """The alarm configuration was reloaded: update C{duty} (and the stamp)."""
        self.config = config
        if not getattr(self.ami, "connected", True):
            self.stale = True
            return defer.succeed(None)

        def put():
            d = self.ami.db_put(FAMILY, DUTY_KEY, self.duty())
            d.addCallback(lambda _: self.ami.db_put(FAMILY, STAMP_KEY, self.stamp()))
            d.addErrback(lambda f: self.log.failure("AstDB duty key not updated", f))
            return d

        return self._lock.run(put)

    # Sending ------------------------------------------------------------------------

    def _send(self, generation, actions) -> defer.Deferred:
        """Send C{actions} with at most C{window} awaiting an answer, at most C{rate}/s."""
        return _Pump(self, generation, actions).start()


def _work_out(entries, households):
    out = []
    for snapshot in households:
        out += entries(snapshot)
    return out


class _Pump:
    """Feeds actions to AMI through a window, paced by the clock."""

    def __init__(self, sync, generation, actions):
        self.sync = sync
        self.generation = generation
        self.actions = iter(actions)
        self.in_flight = 0
        self.sent = 0
        self.started = sync.clock.seconds()
        self.done = defer.Deferred()
        self.failure = None
        self.pumping = False
        self.finished = False
        self.timer = None

    def start(self):
        self._pump()
        return self.done

    def _pump(self):
        if self.pumping:
            return
        self.pumping = True
        try:
            self._fill()
        finally:
            self.pumping = False

    def _fill(self):
        sync = self.sync
        while not self.finished and self.timer is None:
            if self.failure is not None or self.generation != sync._generation:
                return self._finish()
            if self.in_flight >= sync.window:
                return
            # Pace to the rate, allowing a first burst of one window.
            wait = self.started + max(0, self.sent - sync.window) / sync.rate - sync.clock.seconds()
            if wait > 0.001:
                self.timer = task.deferLater(sync.clock, wait, self._tick)
                return
            action = next(self.actions, None)
            if action is None:
                return self._finish()
            kind, key, value = action
            self.in_flight += 1
            self.sent += 1
            if kind == "put":
                d = sync.ami.db_put(FAMILY, key, value)
            else:
                d = sync.ami.db_del(FAMILY, key)
            d.addBoth(self._answered)

    def _tick(self):
        self.timer = None
        self._pump()

    def _answered(self, result):
        self.in_flight -= 1
        if isinstance(result, Failure) and self.failure is None:
            self.failure = result
        self._pump()

    def _finish(self):
        if self.in_flight or self.finished:
            return
        self.finished = True
        if self.failure is not None:
            self.done.errback(self.failure)
        else:
            self.done.callback(self.sent)
