"""
The AstDB copy of the registry that the dialplan rings from when this
server cannot be reached.

Family C{swb_alarm}: for every caller-ID form of every registered landline
(L{NumberPlan.variants}), key = that form and value = the C{&}-joined dial
string of the household's neighbours (L{Dialer.ring_all}); key C{duty} = the
first escalation stage's phones. A household without neighbours has no key,
so the dialplan rings the duty phones for it.

After every AMI (re)connect the family is read back (C{DBGetTree}) and
compared, key by key, with what the registry says it must hold: Asterisk
keeps AstDB across restarts, and what is there may come from another
registry, an older server, a resync cut short or a hand edit. Only the
differences are sent: missing and changed keys first, then keys of
households that are gone (worked out on a thread, sent at a bounded rate
with a bounded number of actions in flight, so 200,000 households do not
flood Asterisk). The family is never emptied on the way: should this
server stop halfway, every household still finds its neighbours, old or
new, in the dialplan. Nothing is trusted without being read: there is no
version stamp to agree on (a key C{stamp} left by older servers is
deleted).
"""

from __future__ import annotations

from twisted.internet import defer, task, threads
from twisted.logger import Logger
from twisted.python.failure import Failure

FAMILY = "swb_alarm"
DUTY_KEY = "duty"


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
        #: Clock seconds of the last resync that finished, and of the last that failed
        #: (with its message): what the duty board's AstDB light says.
        self.synced_at = None
        self.failed_at = None
        self.failure = None
        self._generation = 0
        self._lock = defer.DeferredLock()

    # What goes in --------------------------------------------------------------

    def duty(self) -> str:
        stage = self.config.duty
        return self.dialer.ring_all(stage.phones, stage.trunk)

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
        After an AMI (re)connect: read the family back and write what
        differs from the registry (C{force} is accepted for callers that
        ask for a rewrite; the comparison is always made). A later call
        stops an earlier one still running. Fires with the number of
        actions sent (0 if AstDB was in step or the link went down).
        """
        self._generation += 1
        return self._lock.run(self._resync, self._generation)

    @defer.inlineCallbacks
    def _resync(self, generation):
        if generation != self._generation:
            return 0
        started = self.clock.seconds()
        self.stale = True
        try:
            held = {}
            yield self.ami.db_tree(FAMILY, held.__setitem__)
            if generation != self._generation:
                return 0
            read = len(held)
            actions = []
            if held.pop(DUTY_KEY, None) != self.duty():
                actions.append(("put", DUTY_KEY, self.duty()))
            households = list(self.index)
            right = 0
            for start in range(0, len(households), self.batch):
                if generation != self._generation:
                    return 0
                chunk = households[start:start + self.batch]
                puts, same = yield self.run_in_thread(_compare, self.entries, chunk, held)
                right += same
                actions += puts
            # What is left was not found in the registry: deleted last.
            extra = [("del", key, None) for key in held]
            yield self._send(generation, actions + extra)
        except Exception as e:
            self.failed_at, self.failure = self.clock.seconds(), str(e) or type(e).__name__
            self.log.failure("AstDB {family} resync stopped (the next AMI connect starts "
                             "again)", family=FAMILY)
            return 0
        if generation != self._generation:
            return 0
        self.stale = False
        self.synced_at = self.clock.seconds()
        self.log.info("AstDB {family}: {read} keys read back for {h} households in {s:.1f} s: "
                      "{right} right, {put} missing or changed (written), {extra} left over "
                      "(deleted)", family=FAMILY, read=read, h=len(households), right=right,
                      put=len(actions), extra=len(extra), s=self.clock.seconds() - started)
        return len(actions) + len(extra)

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
        except Exception:
            self.stale = True
            self.log.failure("AstDB {family}: {n} household changes not applied (a full "
                             "resync follows on the next AMI connect)", family=FAMILY,
                             n=len(changes))
            return 0
        return len(actions)

    def duty_changed(self, config) -> defer.Deferred:
        """The alarm configuration was reloaded: update C{duty}."""
        self.config = config
        if not getattr(self.ami, "connected", True):
            self.stale = True
            return defer.succeed(None)

        def put():
            d = self.ami.db_put(FAMILY, DUTY_KEY, self.duty())
            d.addErrback(self._duty_not_put)
            return d

        return self._lock.run(put)

    def _duty_not_put(self, failure):
        self.stale = True  # the next connect's comparison puts it right
        self.log.failure("AstDB duty key not updated", failure)

    # Sending ------------------------------------------------------------------------

    def _send(self, generation, actions) -> defer.Deferred:
        """Send C{actions} with at most C{window} awaiting an answer, at most C{rate}/s."""
        return _Pump(self, generation, actions).start()


def _compare(entries, households, held):
    """
    On a thread: the puts that make C{held} (what AstDB has, key -> value)
    hold C{households}' entries, and how many were right already. Every key
    found is taken out of C{held}, which is left with the keys nobody owns.
    """
    puts, right = [], 0
    for snapshot in households:
        for key, value in entries(snapshot):
            if held.pop(key, None) == value:
                right += 1
            else:
                puts.append(("put", key, value))
    return puts, right


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
