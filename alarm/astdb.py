"""
The AstDB copy of the registry that the dialplan rings from when this
server cannot be reached.

Family C{swb_ring}: one key per registered landline, C{<bucket>/<digits>},
where C{<digits>} is the number in E.164 without C{+} (C{8659187650001})
and C{<bucket>} its last two digits (C{01}); value = the C{&}-joined dial
string of the household's neighbours (L{Dialer.ring_all}). Key C{duty} =
the first escalation stage's phones; key C{area} = the local area code, by
which the dialplan (C{switchboard-alarm-lookup}) brings whatever form the
exchange presents a caller ID in (L{NumberPlan.variants}: local, 0591...,
591..., +86..., 86..., 0086...) to those digits before it reads the key. A
household without neighbours has no key, so the dialplan rings the duty
phones for it.

After every AMI (re)connect the family is read back and compared, key by
key, with what the registry says it must hold: Asterisk keeps AstDB across
restarts, and what is there may come from another registry, an older
server, a resync cut short or a hand edit. It is read one bucket at a time
(C{DBGetTree} with a C{Key}, a hundred of them): Asterisk holds its AstDB
lock while it streams a tree, and a dialplan C{DB()} read waits for it, so
no read holds it for more than about a hundredth of the family. Only the
differences are sent: missing and changed keys first, then keys of
households that are gone (sent at a bounded rate with a bounded number of
actions in flight, so 200,000 households do not flood Asterisk). The family
is never emptied on the way: should this server stop halfway, every
household still finds its neighbours, old or new, in the dialplan. Nothing
is trusted without being read: there is no version stamp to agree on.

Older servers kept family C{swb_alarm}, one flat key per caller-ID form.
The dialplan still reads it when C{swb_ring} has no key for a caller. It is
deleted once C{swb_ring} is in step, on every connect (so that a key an
older server or a hand left there goes too): first the keys of this
registry's landlines, one at a time at the bounded rate, when a look at a
few of them finds any; then one C{DBDelTree} for whatever is left.
"""

from __future__ import annotations

from twisted.internet import defer, task, threads
from twisted.logger import Logger
from twisted.python.failure import Failure

FAMILY = "swb_ring"
OLD_FAMILY = "swb_alarm"
DUTY_KEY = "duty"
AREA_KEY = "area"
#: The subtrees the family is read back in: the last two digits of the number.
BUCKETS = tuple(f"{n:02d}" for n in range(100))


def landline_digits(e164: str) -> str:
    """Landline C{e164} as the dialplan names it: E.164 without C{+}."""
    return e164.lstrip("+")


def landline_key(e164: str) -> str:
    """The key of landline C{e164} in C{swb_ring}: C{<last two digits>/<digits>}."""
    digits = landline_digits(e164)
    return f"{digits[-2:]}/{digits}"


class AstDBSync:
    """
    Keeps AstDB family C{swb_ring} in step with the L{CallerIndex}, and
    retires the older servers' flat family C{swb_alarm}.

    @param ami: the C{AMIClient} (C{db_put}, C{db_get}, C{db_del},
        C{db_tree}, C{db_deltree}, C{connected}).
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
        #: Whether C{swb_alarm} may hold keys (until a resync deleted it; again from
        #: each connect on): changes then delete a household's keys there too.
        self.old_family = True
        #: Clock seconds of the last resync that finished, and of the last that failed
        #: (with its message): what the duty board's AstDB light says.
        self.synced_at = None
        self.failed_at = None
        self.failure = None
        #: The longest one bucket's read-back took in the last resync (clock seconds).
        self.longest_read = 0.0
        self._generation = 0
        self._lock = defer.DeferredLock()

    # What goes in --------------------------------------------------------------

    def duty(self) -> str:
        stage = self.config.duty
        return self.dialer.ring_all(stage.phones, stage.trunk)

    def area(self) -> str:
        return self.dialer.numbers.area_code or ""

    def entries(self, snapshot) -> list:
        """The (key, value) pairs of one household (none without neighbours)."""
        if snapshot is None or not snapshot.neighbours:
            return []
        value = self.dialer.ring_all(snapshot.neighbours, self.config.neighbour_trunk)
        return [(landline_key(n), value) for n in snapshot.numbers]

    def keys(self, snapshot) -> set:
        if snapshot is None:
            return set()
        return {landline_key(n) for n in snapshot.numbers}

    def old_keys(self, snapshot) -> set:
        """The household's keys in C{swb_alarm}, as older servers wrote them: every form."""
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
        self.old_family = True
        try:
            actions, extra = [], []
            for key, want in ((DUTY_KEY, self.duty()), (AREA_KEY, self.area())):
                held = yield self.ami.db_get(FAMILY, key)
                if want and held != want:
                    actions.append(("put", FAMILY, key, want))
                elif not want and held is not None:
                    extra.append(("del", FAMILY, key, None))
            # What the registry says, by bucket (worked out on a thread).
            households = list(self.index)
            parts = yield self._work_out(generation, _by_bucket, self.entries, households)
            if parts is None:
                return 0
            wanted = {}
            for part in parts:
                for bucket, pairs in part.items():
                    wanted.setdefault(bucket, {}).update(pairs)
            # What AstDB holds, one bucket at a time: the AstDB lock is free between.
            read = right = 0
            self.longest_read = reading = 0.0
            for bucket in BUCKETS:
                held = {}
                asked = self.clock.seconds()
                yield self.ami.db_tree(FAMILY, held.__setitem__, key=bucket)
                took = self.clock.seconds() - asked
                self.longest_read, reading = max(self.longest_read, took), reading + took
                if generation != self._generation:
                    return 0
                read += len(held)
                for key, value in wanted.pop(bucket, {}).items():
                    if held.pop(key, None) == value:
                        right += 1
                    else:
                        actions.append(("put", FAMILY, key, value))
                # What is left was not found in the registry: deleted last.
                extra += [("del", FAMILY, key, None) for key in held]
            yield self._send(generation, actions + extra)
            if generation != self._generation:
                return 0
            retired = yield self._retire_old_family(generation, households)
        except Exception as e:
            self.failed_at, self.failure = self.clock.seconds(), str(e) or type(e).__name__
            self.log.failure("AstDB {family} resync stopped (the next AMI connect starts "
                             "again)", family=FAMILY)
            return 0
        if generation != self._generation:
            return 0
        self.stale = False
        self.synced_at = self.clock.seconds()
        self.log.info("AstDB {family}: {read} keys read back in {buckets} parts in {reading:.1f} "
                      "s (longest {longest:.3f} s) for {h} households, all in {s:.1f} s: "
                      "{right} right, {put} missing or changed (written), {extra} left over "
                      "(deleted); {old}: {retired} keys deleted, then the rest", family=FAMILY,
                      read=read, buckets=len(BUCKETS), reading=reading, longest=self.longest_read, h=len(households), right=right,
                      put=len(actions), extra=len(extra), old=OLD_FAMILY, retired=retired,
                      s=self.clock.seconds() - started)
        return len(actions) + len(extra) + retired

    @defer.inlineCallbacks
    def _retire_old_family(self, generation, households):
        """
        Delete C{swb_alarm}, now that C{swb_ring} holds every household. A
        C{DBDelTree} of a big family would hold the AstDB lock for as long
        as it takes, so when a look at C{duty} and a few landlines' keys
        finds an older server's copy, this registry's keys go first, one
        C{DBDel} each at the bounded rate; the C{DBDelTree} that always
        follows takes whatever is left (keys of households gone since, a
        stamp, hand edits). Fires with the number of C{DBDel} sent.
        """
        step = max(1, len(households) // 3)
        probe = [DUTY_KEY] + [n.lstrip("+") for s in households[::step][:3] for n in s.numbers[:1]]
        found = False
        for key in probe:
            if (yield self.ami.db_get(OLD_FAMILY, key)) is not None:
                found = True
                break
        sent = 0
        if found:
            parts = yield self._work_out(generation, _old_keys, self.old_keys, households)
            if parts is None:
                return 0
            dels = [("del", OLD_FAMILY, DUTY_KEY, None), ("del", OLD_FAMILY, "stamp", None)]
            dels += [("del", OLD_FAMILY, key, None) for keys in parts for key in keys]
            sent = yield self._send(generation, dels)
            if generation != self._generation:
                return 0
        yield self.ami.db_deltree(OLD_FAMILY)
        self.old_family = False
        return sent

    @defer.inlineCallbacks
    def _work_out(self, generation, f, each, households):
        """
        C{f(each, chunk)} on a thread for every C{batch} of C{households}:
        the list of its results, or None once a newer resync has begun.
        """
        results = []
        for start in range(0, len(households), self.batch):
            if generation != self._generation:
                return None
            chunk = households[start:start + self.batch]
            results.append((yield self.run_in_thread(f, each, chunk)))
        return results

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
        retiring = self.old_family

        def work():
            puts, dels = [], []
            for old, new in changes:
                now = dict(self.entries(new))
                puts += [("put", FAMILY, k, v) for k, v in now.items()]
                dels += [("del", FAMILY, k, None) for k in self.keys(old) - set(now)]
                if retiring:
                    # While swb_alarm may be there the dialplan falls back to it
                    # for a caller without a key here: no old neighbours for a
                    # household gone or without neighbours now.
                    dels += [("del", OLD_FAMILY, k, None)
                             for k in self.old_keys(old) | self.old_keys(new)]
            return puts + dels

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


def _by_bucket(entries, households):
    """On a thread: C{households}' entries, bucket -> {key: value}."""
    out = {}
    for snapshot in households:
        for key, value in entries(snapshot):
            out.setdefault(key.partition("/")[0], {})[key] = value
    return out


def _old_keys(old_keys, households):
    """On a thread: C{households}' keys in the old flat family."""
    return [key for snapshot in households for key in old_keys(snapshot)]


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
            kind, family, key, value = action
            self.in_flight += 1
            self.sent += 1
            if kind == "put":
                d = sync.ami.db_put(family, key, value)
            else:
                d = sync.ami.db_del(family, key)
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
