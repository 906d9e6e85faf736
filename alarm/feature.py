"""The #9 alarm as a part of the running server (see L{switchboard.service})."""

from __future__ import annotations

import hashlib

from twisted.internet import defer, threads
from twisted.logger import Logger
from zope.interface import implementer

from alarm import config as alarm_config
from alarm.astdb import AstDBSync
from alarm.coordinator import AlarmCoordinator
from alarm.desk import AlarmDesk
from alarm.guard import SilenceGuard
from alarm.handlers import AlarmCallerHandler, ResponderHandler
from alarm.index import CallerIndex
from alarm.monitor import RegistryWatcher
from alarm.ownership import AlarmOwnership
from alarm.recorder import WRITE_BEHIND, AlarmRecorder
from alarm.servers import EveryAstDB
from alarm.singletons import LeaderOnlyAstDB
from alarm.speaking import Announcer, make_speech
from alarm.texts import DutyTexts
from switchboard import election
from switchboard.features import IFeatureService
from switchboard.journal import Journal
from switchboard.leases import instance_name
from switchboard.pgnotify import PostgresListener, is_postgres
from switchboard.reloads import IN_FORCE, REFUSED, UNCHANGED, LoadRecord
from switchboard.ringgroup import AMICallPlacer
from switchboard.texting import channel_from_settings
from switchboard import yamlconf
from switchboard.routing.parsing import ChildProcessParser
from switchboard.yamlconf import ConfigError


@implementer(IFeatureService)
class AlarmFeature:
    """
    Serves AGI scripts C{alarm} (the resident who dialled #9) and
    C{alarm-responder} (each neighbour's leg), keeps AstDB in step for the
    native fallback, and recovers alarms left open by a restart.

    If C{alarm.yaml} is refused at start-up no alarm script is served: the
    dialplan then rings the neighbours natively from AstDB, loudly logged.
    A reload reads the file on a pool thread (its size checked first) and
    parses it in a child process, as the routing file's reloads do: a huge
    or hostile file costs the reactor, serving alarms, nothing.

    Prompts written as text, and each household's announcement, are
    rendered ahead of time (L{Announcer}): the prompts when the file is
    loaded, the announcements at start-up (those missing) and when the
    registry watcher sees a household change. Text the engine cannot say is
    logged with its file:line:column and its stock sound is played.

    @param parser: what parses a changed file for L{reload} (its
        C{parse(path, raw, numbers, trunks)} returns a Deferred): a
        L{ChildProcessParser} running L{alarm_config.load_bytes} by default.
    @param speech: the L{switchboard.speech.Speech} (default: built from
        C{settings.speech}; None when that fails).
    @param bulk_ami: the AMI session AstDB is read back and written on
        (L{switchboard.features.Core.bulk_ami}); default C{ami}. On a
        session of its own, the read-back after a connect (4 s for 20,000
        households) holds no neighbour's Originate behind it.
    @param asterisks: several Asterisk servers
        (L{switchboard.ami.servers.AsteriskServers}, C{ami} the main one's
        link): an alarm's legs are placed on its caller's server, AstDB is
        kept on each, and the events of each are read. None: C{ami} alone.
    """

    log = Logger()

    #: Seconds between two tries of a caller index load that failed.
    load_retry = 10.0

    def __init__(self, settings, database, ami, *, reactor=None, parser=None, speech=False,
                 bulk_ami=None, trunk=None, asterisks=None):
        self.settings = settings
        self.ami = ami
        self.bulk_ami = bulk_ami or ami
        self.reactor = reactor
        self.watched = (settings.alarm,)
        self.handlers = {}
        self._parser = parser
        self._reloads = defer.DeferredLock()  # one at a time, in the order asked
        self._digest = None  # of the bytes of the file in force
        self._waiting: list = []  # for the caller index's load
        self._retry = None
        self._stopped = False
        #: The loads of alarm.yaml: put in force, refused (with what), unchanged.
        self.loads = LoadRecord("alarm", reactor)
        try:
            raw = yamlconf.read_bytes(settings.alarm)
            self.config = alarm_config.load_bytes(raw, settings.alarm, settings.numbers,
                                                  settings.trunks)
            self._digest = hashlib.sha256(raw).digest()
        except ConfigError as e:
            self.config = None
            self.loads.note(REFUSED, settings.alarm, e)
            self.log.critical("alarm file refused; #9 calls are rung natively by the dialplan "
                              "until it is fixed:\n{errors}", errors=str(e))
            return
        self.loads.note(IN_FORCE, settings.alarm)
        config = self.config
        self.speech = self._speech(settings, reactor) if speech is False else speech
        self.announcer = Announcer(self.speech, clock=reactor)
        self._text_problems(config)
        #: Rendering in the background (prompts, announcements): Deferreds.
        self.preparing = []
        self.index = CallerIndex(database, settings.numbers, max_neighbours=config.max_neighbours,
                                 settle=True)
        journal = Journal(settings.journal, "alarm") if getattr(settings, "journal", "") else None
        #: This instance as the owner of the alarms it raises (switchboard.leases).
        self.owner = instance_name(settings)
        self.recorder = AlarmRecorder(database, journal, clock=reactor, owner=self.owner,
                                      delay=WRITE_BEHIND)
        self.asterisks = asterisks if asterisks is not None and len(asterisks) > 1 else None

        def placer_of(client):
            placer = AMICallPlacer(client)
            if trunk is not None:
                # A #9's legs are urgent: they always get a line, other features' calls yield.
                placer = trunk.placer(placer, urgent=True)
            return placer

        placer = placer_of(ami)
        several = self.asterisks
        self.coordinator = AlarmCoordinator(
            settings.dialer, placer, self.recorder, config, reactor,
            hotline_number=settings.hotline_number,
            kick=several.kick if several else self._kick,
            room_size=several.room_size if several else ami.room_size,
            fastagi=getattr(settings.agi, "advertise", ""),
            placers={s.name: (placer if s.ami is ami else placer_of(s.ami))
                     for s in several} if several else None,
            dialers={s.name: s.dialer for s in several if s.dialer is not None}
            if several else None)
        self.texts = channel_from_settings(settings, ami, self._clock())
        self.coordinator.changes.subscribe(
            DutyTexts(lambda: self.config, self.texts, self.coordinator.changes, settings.tz,
                      self._clock()))
        self.guard = SilenceGuard(self.coordinator, clock=reactor)
        #: What the duty board reads and does (L{switchboard.duty.IAlarmDesk}).
        self.desk = AlarmDesk(self.coordinator, database, ami)
        # Several instances may share a PostgreSQL: AstDB is written by the
        # elected one only (alarm/singletons.py); on SQLite this one leads.
        self.elector = election.for_database(database, "switchboard alarm singleton duties",
                                             self._clock())
        self.elector.listeners.append(self._leading)
        # Each open alarm is held by one instance; a dead one's are taken
        # over by the leader once their leases run out.
        self.ownership = AlarmOwnership(
            database, self.coordinator, self.recorder, self.index, self.owner, self._clock(),
            leading=lambda: self.elector.leading,
            name_lock=election.lock_for(database, "switchboard instance " + self.owner,
                                        self._clock()))
        self.astdb = LeaderOnlyAstDB(
            AstDBSync(self.bulk_ami, self.index,
                      (several.main.dialer if several else None) or settings.dialer, config,
                      clock=reactor),
            self.elector)
        #: The main server's name when there are several: its connects resync its AstDB only.
        self._main_astdb = None
        if self.bulk_ami is not ami:
            self.bulk_ami.on_connect(lambda _: self._resync_astdb(self._main_astdb))
        if several:
            # Each Asterisk's dialplan reads its own AstDB when this server is down.
            self.astdb = self._every_astdb(several, ami, config, reactor)
        self.watcher = RegistryWatcher(self.index, self.astdb, self.coordinator, self.recorder,
                                       clock=reactor, announcer=self.announcer)
        #: On PostgreSQL, staff's changes (another process) are heard at once.
        self.listener = (PostgresListener(settings.database, self.watcher.poke, self._clock())
                         if is_postgres(settings.database) else None)
        self.caller_handler = AlarmCallerHandler(self.index, self.coordinator, config,
                                                 settings.numbers, announcer=self.announcer,
                                                 servers=several)
        self.responder_handler = ResponderHandler(self.coordinator, config, clock=reactor,
                                                  announcer=self.announcer)
        self.handlers = {"alarm": self.caller_handler, "alarm-responder": self.responder_handler}
        for link in [s.ami for s in several] if several else [ami]:
            link.subscribe("Newchannel", lambda event: self.coordinator.note_channel(
                event["Uniqueid"], event["Channel"]))
            link.subscribe("Hangup", lambda event: self.coordinator.note_hangup(
                event.get("Uniqueid", "")))

    def _every_astdb(self, servers, ami, config, reactor):
        """
        L{EveryAstDB} over one sync per server: the main one's is the sync
        made above; each other's follows its own bulk session's connects.
        """
        syncs = {}
        for server in servers:
            if server.ami is ami:
                syncs[server.name] = self.astdb
                self._main_astdb = server.name
                continue
            syncs[server.name] = LeaderOnlyAstDB(
                AstDBSync(server.bulk_ami, self.index, server.dialer or self.settings.dialer,
                          config, clock=reactor), self.elector)
            server.bulk_ami.on_connect(lambda _, name=server.name: self._resync_one(name))
        return EveryAstDB(syncs)

    def _resync_one(self, name):
        if self._stopped:
            return None
        d = self._resync_astdb(name)
        return d.addErrback(lambda f: self.log.failure("AstDB resync on Asterisk {name}", f,
                                                       name=name)) if d is not None else None

    def _clock(self):
        if self.reactor is not None:
            return self.reactor
        from twisted.internet import reactor
        return reactor

    def _speech(self, settings, reactor):
        """The renderer C{settings.speech} describes, or None (logged): stock sounds only."""
        described = getattr(settings, "speech", None)
        if described is None:
            return None
        try:
            speech = make_speech(described, reactor=reactor)
        except Exception as e:
            self.log.error("speech: {e}; the alarm plays Asterisk's stock sounds", e=e)
            return None
        if not speech.available:
            self.log.error("speech: {why}; the alarm plays Asterisk's stock sounds",
                           why=speech.unavailable_reason)
        return speech

    def _text_problems(self, config) -> None:
        if self.speech is None:
            return
        problems = alarm_config.text_problems(config, self.speech)
        if problems:
            self.log.error("alarm file: text that cannot be spoken; the stock sound of each "
                           "is played:\n{problems}",
                           problems="\n".join(str(p) for p in problems))

    def _prepare(self, d):
        """Keep C{d} (rendering in the background) until it is done."""
        self.preparing.append(d)
        d.addBoth(lambda result: self.preparing.remove(d) or result)
        return d

    def _kick(self, room):
        return self.ami.send_action("ConfbridgeKick", [("Conference", room), ("Channel", "all")])

    @defer.inlineCallbacks
    def start(self):
        """
        Ready for calls: the journal replayed and interrupted alarms taken
        up again. The caller index loads in the background (~5 s at
        200,000 households): until it has, a #9 caller's household is read
        from the database (L{CallerIndex.find}), and the registry watcher
        and AstDB's resynchronisation wait for it.
        """
        if self.config is None:
            return
        yield self.recorder.start()  # the journal replayed: alarms get their ids at once
        self._prepare(self.announcer.prepare_prompts(self.config))
        # Alarms a restart interrupted ring the duty phones as soon as the
        # AMI link is up; confirmed ones close once their room is empty.
        # Their households come from the database: the index is not loaded.
        open_alarms = yield self.recorder.open_alarms()
        # Only this instance's own (from before its restart) and nobody's:
        # another live instance's alarms are its own.
        open_alarms = yield self.ownership.claim(open_alarms)
        households = yield self.index.households(
            a.household_id for a in open_alarms if a.household_id is not None)
        recovered = yield self.coordinator.recover_open_alarms(households, rows=open_alarms)
        if recovered:
            self.log.warn("recovered {n} open alarm(s) from before the restart", n=len(recovered))
            # Who was handling them, for the board (not awaited: calls come first).
            self.desk.recover(a.id for a in recovered).addErrback(
                lambda f: self.log.failure("reading the alarms' acknowledgements", f))
        self.guard.start()
        self.elector.start()
        self.ownership.start()
        # Next turn of the reactor: after the service has settled its
        # memory (a full collection over a half-built index held the
        # reactor ~0.3 s) and opened the FastAGI port.
        self._retry = self._clock().callLater(0, self._load)

    def _load(self):
        self._retry = None
        d = self.index.load()
        d.addCallbacks(self._loaded, self._not_loaded)

    def _loaded(self, _):
        self.log.info("alarm registry loaded: {forms} caller-ID forms", forms=self.index.forms())
        if self._stopped:
            return
        self.watcher.start()
        if self.listener is not None:
            self.listener.start()
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(None)
        # In the background: calls are served (with stock prompts) meanwhile.
        d = defer.maybeDeferred(self.announcer.prepare, self.index)
        self._prepare(d).addErrback(
            lambda failure: self.log.failure("rendering the announcements", failure))

    def _not_loaded(self, failure):
        if self._stopped:
            return
        self.log.failure("alarm registry not loaded; #9 callers are looked up in the database "
                         "until it is; again in {s:.0f} s", failure, s=self.load_retry)
        self._retry = self._clock().callLater(self.load_retry, self._load)

    def when_loaded(self) -> defer.Deferred:
        """A Deferred that fires once the caller index has loaded."""
        if self.config is None or self.index.loaded:
            return defer.succeed(None)
        d = defer.Deferred()
        self._waiting.append(d)
        return d

    def _leading(self, leading: bool) -> None:
        """Taking the lead: AstDB read back and put right, as on an AMI connect."""
        if leading and self.bulk_ami.connected and not self._stopped:
            d = self._resync_astdb()
            if d is not None:
                d.addErrback(lambda f: self.log.failure("AstDB resync on taking the lead", f))

    def ami_connected(self):
        if self.bulk_ami is self.ami:
            return self._resync_astdb(self._main_astdb)
        return None

    def _resync_astdb(self, name=None):
        """AstDB read back and put right: server C{name}'s, or every linked server's."""
        if self.config is not None:
            # AstDB follows the whole registry: not the part of it loaded so far.
            if name is not None:
                return self.when_loaded().addCallback(lambda _: self.astdb.resync_one(name))
            return self.when_loaded().addCallback(lambda _: self.astdb.resync())
        return None

    def reload(self, path=None):
        """
        Re-read C{alarm.yaml} off the reactor thread and put it in force if
        valid; a refused file leaves the last good one in force.

        @return: a Deferred that fires (never fails) once done.
        """
        if self.config is None:
            self.log.critical("alarm file changed; a restart is needed to serve #9 again "
                              "after a refused start-up file")
            return None
        return self._reloads.run(self._reload)

    def _reload(self):
        reactor = self._clock()
        path = self.settings.alarm
        d = threads.deferToThreadPool(reactor, reactor.getThreadPool(), yamlconf.read_bytes,
                                      path)
        d.addCallback(self._parse, path, reactor)
        d.addCallbacks(self._in_force, self._refused, errbackArgs=(path,))
        return d

    def _parse(self, raw, path, reactor):
        """Fire with C{(config, digest)}, or L{None} if the bytes are those in force."""
        digest = hashlib.sha256(raw).digest()
        if digest == self._digest:
            return None
        if self._parser is None:
            self._parser = ChildProcessParser(reactor, loader=alarm_config.LOADER,
                                              what="alarm file")
        d = self._parser.parse(path, raw, self.settings.numbers, self.settings.trunks)
        return d.addCallback(lambda config: (config, digest))

    def _refused(self, failure, path):
        self.loads.note(REFUSED, path, failure.value)
        if failure.check(ConfigError):
            self.log.error("alarm file {path} refused, the last good one stays in force:\n"
                           "{errors}", path=path, errors=str(failure.value))
        else:
            self.log.failure("alarm file {path}: reload failed, the last good one stays in "
                             "force", failure, path=path)
        return None

    def _in_force(self, parsed):
        if parsed is None:
            self.loads.note(UNCHANGED, self.settings.alarm)
            self.log.info("alarm file {path} unchanged", path=self.settings.alarm)
            return None
        config, self._digest = parsed
        self.loads.note(IN_FORCE, self.settings.alarm)
        self.config = config
        self.coordinator.reconfigure(config)
        self.caller_handler.config = config
        self.responder_handler.config = config
        self.log.info("alarm file {path} in force", path=self.settings.alarm)
        self._text_problems(config)
        self._prepare(self.announcer.prepare_prompts(config))
        return self.astdb.duty_changed(config)

    @defer.inlineCallbacks
    def stop(self):
        if self.config is None:
            return
        self._stopped = True
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self.watcher.stop()
        if self.listener is not None:
            self.listener.stop()
        self.guard.stop()
        self.texts.stop()
        yield self.ownership.stop()
        yield self.elector.stop()
        self.coordinator.stop()  # open alarms stay open in the database for recovery
        yield self.recorder.stop()
