"""
The switchboard's manager client: one logged-in connection kept up for the
life of the service, actions, events, and the few actions it uses.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.logger import Logger

from switchboard.ami import message as _message
from switchboard.ami.backoff import Backoff
from switchboard.ami.errors import (
    AMIActionError,
    AMIArgumentError,
    AMIConnectionLost,
    AMINotConnected,
    AMITimeout,
)
from switchboard.ami.events import Subscriptions
from switchboard.ami.link import ManagerLink
from switchboard.ami.originate import (
    FAILED,
    OriginateResult,
    originate_headers,
    result_from_event,
)
from switchboard.ami.protocol import action_id_source

# Asterisk's answers meaning "there was nothing there".
_DB_MISSING = ("database entry not found", "database entry could not be deleted")
_NO_CHANNEL = "no such channel"
# ConfbridgeList's answers for a room nobody is in (app_confbridge.c).
_NO_ROOM = ("no conference by that name found.", "no active conferences.")
#: The events L{AMIClient.originate} reads: the outcome, and the called
#: channel's Hangup for why a call failed (the ring-group engine reads
#: Newchannel for the channel's name).
ORIGINATE_EVENTS = ("Hangup", "Newchannel", "OriginateResponse")


class _PendingOriginate:
    __slots__ = ("channel_id", "deferred", "timer", "cause", "result")

    def __init__(self, channel_id, deferred):
        self.channel_id = channel_id
        self.deferred = deferred
        self.timer = None
        self.cause = None   # the called channel's hangup cause, once seen
        self.result = None  # a reason-0 outcome waiting for that cause


class AMIClient:
    """
    A manager client that stays connected: it logs in on every connection
    and reconnects after any failure with a capped, jittered exponential
    backoff (C{initial_delay} doubling up to C{max_delay}), forever, until
    L{stop}. A C{Ping} every C{ping_interval} seconds that gets no answer
    within C{ping_timeout} drops the connection as dead.

    Actions are only sent on a logged-in connection: while there is none
    they fail at once with L{AMINotConnected}; when a connection ends, every
    awaited answer fails with L{AMIConnectionLost}. Nothing is ever queued
    or sent again on a later connection.

    @param reactor: provides C{IReactorTCP} and C{IReactorTime} (default:
        the global reactor).
    @param random: a callable returning floats in [0, 1) for the jitter.
    @param jitter: the largest fraction by which a delay is shortened.
    @param client_id: prefix of this client's C{ActionID}s (default: random).
    @param originate_margin: seconds an originate's outcome is awaited
        beyond its ring timeout.
    @param connect_timeout: seconds allowed for a TCP connection attempt.
    @param late_answer: seconds after which an C{Originate} Asterisk has not
        acknowledged (it does so in milliseconds) makes the link probe
        itself (L{ManagerLink.probe}, C{probe_timeout} seconds): a frozen
        link (a hung Asterisk, a half-open connection) is dropped within
        C{late_answer + probe_timeout} seconds of the first alarm call
        instead of at the next keepalive (up to C{ping_interval +
        ping_timeout}), so that the alarm turns to its other paths. None:
        no probing.
    @param events: the login's C{Events} value: C{"on"} (every event the
        manager user may read) or a list of classes such as C{"call"}.
    @param only_events: event names; if given, after each login Asterisk
        is asked to send only these (see L{ManagerLink._filterEvents}).
        L{ORIGINATE_EVENTS} must be among them for L{originate} to learn
        its outcomes.
    @param cause_wait: seconds a reason-0 originate outcome waits for the
        called channel's C{Hangup} to tell why (busy, no answer,
        unreachable; see L{OriginateResult.with_cause}). Asterisk sends it
        within milliseconds of the outcome, and under load after it (the
        outcome is the manager's own event, the Hangup comes through
        Stasis); a call that made no channel (an unknown endpoint) waits
        this long before it is a call not placed.
    """

    log = Logger()

    def __init__(self, host, port, username, secret, *, reactor=None, initial_delay=0.2,
                 max_delay=3.0, ping_interval=10.0, ping_timeout=5.0, action_timeout=10.0,
                 originate_margin=10.0, connect_timeout=5.0, random=None, jitter=0.25,
                 client_id=None, events="on", only_events=(), late_answer=0.5,
                 probe_timeout=1.5, cause_wait=1.0):
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.action_timeout = action_timeout
        self.late_answer = late_answer
        self.probe_timeout = probe_timeout
        self.originate_margin = originate_margin
        self.cause_wait = cause_wait
        self._next_id = action_id_source(client_id)
        self._subscriptions = Subscriptions()
        self._originates = {}
        # Originates with a channel id whose call may still end: by that id
        # (the called channel's Uniqueid), for the cause of its Hangup.
        self._calls = {}
        self._connect_waiters = []
        self._on_connect = []
        self._on_disconnect = []
        self._link = ManagerLink(
            host, port, username, secret, reactor=reactor, listener=self,
            backoff=Backoff(initial_delay, max_delay, jitter=jitter, random=random),
            action_ids=self._next_id, ping_interval=ping_interval,
            ping_timeout=ping_timeout, action_timeout=action_timeout,
            connect_timeout=connect_timeout, events=events, only_events=only_events,
        )

    def __repr__(self):
        return f"<AMIClient {self._link.username}@{self._link.host}:{self._link.port}>"

    # Life

    def start(self):
        """Start connecting (and keep connected until L{stop})."""
        self._link.start()

    def stop(self):
        """
        Stop reconnecting; log off if logged in.

        @return: Deferred fired once the connection is closed.
        """
        waiters, self._connect_waiters = self._connect_waiters, []
        for d in waiters:
            d.errback(AMINotConnected("the AMI client was stopped"))
        return self._link.stop()

    @property
    def connected(self) -> bool:
        """Whether a connection is up and logged in."""
        return self._link.current is not None

    def when_connected(self):
        """Deferred fired with this client once logged in (at once if it is)."""
        if self.connected:
            return defer.succeed(self)
        d = defer.Deferred()
        self._connect_waiters.append(d)
        return d

    def on_connect(self, callback):
        """
        Call C{callback(client)} after every successful login (and now, if
        logged in already), e.g. to push state to AstDB again. Exceptions and
        failed Deferreds are logged.
        """
        self._on_connect.append(callback)
        if self.connected:
            self._notify(callback, "on_connect")

    def on_disconnect(self, callback):
        """Call C{callback(client)} whenever a logged-in connection ends."""
        self._on_disconnect.append(callback)

    # Listener of the link

    def linkUp(self, protocol):
        waiters, self._connect_waiters = self._connect_waiters, []
        for d in waiters:
            d.callback(self)
        for callback in list(self._on_connect):
            self._notify(callback, "on_connect")

    def linkDown(self, protocol, reason):
        pending, self._originates = self._originates, {}
        calls, self._calls = self._calls, {}
        for waiting in calls.values():
            if waiting.result is not None:  # its outcome came: only the cause is lost
                _cancel(waiting.timer)
                waiting.deferred.callback(waiting.result)
        for action_id, waiting in pending.items():
            _cancel(waiting.timer)
            waiting.deferred.errback(AMIConnectionLost(
                f"the AMI connection closed before the outcome of originate {action_id} "
                "(the call may still be going on)"))
        for callback in list(self._on_disconnect):
            self._notify(callback, "on_disconnect")

    def wants_event(self, name):
        """
        Events worth building: an originate's outcome, a Hangup while an
        originated call may still end, or one subscribed to.
        """
        folded = name.lower()
        return (folded == "originateresponse"
                or (bool(self._calls) and folded == "hangup")
                or self._subscriptions.wants(name))

    def linkEvent(self, event):
        name = (event.event or "").lower()
        if name == "originateresponse":
            self._originateOutcome(event)
        elif self._calls and name == "hangup":
            self._callHangup(event)
        self._subscriptions.dispatch(event)

    def _originateOutcome(self, event):
        waiting = self._originates.pop(event.action_id, None)
        if waiting is None:
            return
        _cancel(waiting.timer)
        result = result_from_event(event, waiting.channel_id)
        if result.reason != 0 or waiting.channel_id is None:
            self._calls.pop(waiting.channel_id, None)
            waiting.deferred.callback(result)
        elif waiting.cause is not None:
            self._calls.pop(waiting.channel_id, None)
            waiting.deferred.callback(result.with_cause(waiting.cause))
        else:
            # The called channel's Hangup says why: just behind, or (Stasis
            # delivers it, and its Newchannel, apart from this event) later
            # under load. Taking a missing Newchannel for "no channel made"
            # made busy phones calls not placed when several failed at once.
            # An unknown endpoint makes none: no Hangup, a call not placed.
            waiting.result = result
            self._calls[waiting.channel_id] = waiting
            waiting.timer = self.reactor.callLater(self.cause_wait, self._causeUnknown,
                                                   waiting.channel_id)

    def _callHangup(self, event):
        waiting = self._calls.get(event.get("Uniqueid"))
        if waiting is None:
            return
        try:
            waiting.cause = int(event.get("Cause", ""))
        except ValueError:
            return
        if waiting.result is not None:
            del self._calls[waiting.channel_id]
            _cancel(waiting.timer)
            waiting.deferred.callback(waiting.result.with_cause(waiting.cause))

    def _causeUnknown(self, channel_id):
        waiting = self._calls.pop(channel_id, None)
        if waiting is not None:
            waiting.deferred.callback(waiting.result)

    def _notify(self, callback, what):
        d = defer.maybeDeferred(callback, self)
        d.addErrback(lambda f: self.log.failure("AMI {what} callback {callback!r} failed", f,
                                                what=what, callback=callback))

    # Events

    def subscribe(self, pattern, callback):
        """
        Call C{callback(event)} for every event whose name matches
        C{pattern} (C{"*"}, an exact name, or an fnmatch pattern; case is
        ignored). Returns a token for L{unsubscribe}.
        """
        return self._subscriptions.subscribe(pattern, callback)

    def unsubscribe(self, token):
        """Stop a subscription."""
        self._subscriptions.unsubscribe(token)

    # Actions

    def send_action(self, name, headers=None, timeout=None, on_event=None):
        """
        Send action C{name} with C{headers} (a mapping or C{(name, value)}
        pairs; list values give repeated headers; C{ActionID} is added).
        C{on_event}, if given, hears each event of an event list as it
        comes (they are then not gathered in the response).

        @return: Deferred firing with the response L{Message} (for an event
            list, with the list in its C{events}); failing with
            L{AMIArgumentError} (CR/LF in a name or value: nothing sent),
            L{AMINotConnected}, L{AMIActionError} (C{Response: Error}),
            L{AMITimeout} or L{AMIConnectionLost}.
        """
        try:
            _message.action(name, headers)
        except AMIArgumentError:
            return defer.fail()
        protocol = self._link.current
        if protocol is None:
            return defer.fail(AMINotConnected(f"not connected to Asterisk: {name} not sent"))
        return protocol.sendAction(name, headers, timeout=timeout, on_event=on_event)

    def command(self, text):
        """
        Run a CLI command; Deferred firing with its output lines. A command
        Asterisk rejects fails with L{AMIActionError} carrying its output.
        """
        def rejected(failure):
            failure.trap(AMIActionError)
            output = failure.value.response.getall("Output") if failure.value.response else []
            if output:
                raise AMIActionError("\n".join(output), failure.value.response)
            return failure

        d = self.send_action("Command", [("Command", text)])
        d.addCallbacks(lambda response: response.getall("Output"), rejected)
        return d

    def db_put(self, family, key, value):
        """Set AstDB C{family/key} to C{value}."""
        d = self.send_action("DBPut", [("Family", family), ("Key", key), ("Val", value)])
        return d.addCallback(lambda _: None)

    def db_get(self, family, key):
        """Deferred firing with AstDB C{family/key}, or L{None} when absent."""
        def found(response):
            for event in response.events:
                if (event.event or "").lower() == "dbgetresponse":
                    return event.get("Val", "")
            raise AMIActionError("DBGet answered without a DBGetResponse event", response)

        d = self.send_action("DBGet", [("Family", family), ("Key", key)])
        return d.addCallbacks(found, _absent(_DB_MISSING, None))

    def db_del(self, family, key):
        """Delete AstDB C{family/key}; Deferred firing with whether it existed."""
        d = self.send_action("DBDel", [("Family", family), ("Key", key)])
        return d.addCallbacks(lambda _: True, _absent(_DB_MISSING, False))

    def db_tree(self, family, each, timeout=None, key=None):
        """
        Read AstDB C{family} (or its subtree C{key}: the keys under
        C{family/key/}): C{each(key, value)} for every entry as it comes
        (C{key} without the family); Deferred firing with the count.
        """
        prefix = f"/{family}/"
        count = [0]

        def entry(event):
            if (event.event or "").lower() == "dbgettreeresponse":
                key = event.get("Key", "")
                each(key[len(prefix):] if key.startswith(prefix) else key, event.get("Val", ""))
                count[0] += 1

        fields = [("Family", family)] + ([("Key", key)] if key is not None else [])
        d = self.send_action("DBGetTree", fields, timeout=timeout, on_event=entry)
        return d.addCallback(lambda _: count[0])

    def db_deltree(self, family, key=None):
        """
        Delete AstDB C{family} (or its subtree C{key}); Deferred firing with
        whether anything was there.
        """
        d = self.send_action("DBDelTree", [("Family", family), ("Key", key)])
        return d.addCallbacks(lambda _: True, _absent(_DB_MISSING, False))

    def hangup(self, channel, cause=16):
        """
        Hang up C{channel} with Q.850 C{cause} (16: normal clearing);
        Deferred firing with whether the channel existed.
        """
        d = self.send_action("Hangup", [("Channel", channel), ("Cause", cause)])
        return d.addCallbacks(lambda _: True, _absent((_NO_CHANNEL,), False))

    def channel_state(self, channel):
        """
        Deferred firing with the state of C{channel} (a name or a unique
        id) as the dialplan's C{CHANNEL(state)} gives it (C{"Ring"},
        C{"Ringing"}, C{"Up"}...), or L{None} when there is no such channel.
        """
        d = self.send_action("Getvar", [("Channel", channel), ("Variable", "CHANNEL(state)")])
        return d.addCallbacks(lambda response: response.get("Value") or "",
                              _absent((_NO_CHANNEL,), None))

    def room_size(self, room):
        """
        Deferred firing with the number of channels in ConfBridge room
        C{room} (0 when the room does not exist: ConfBridge removes a room
        once its last member has left). Needs the C{reporting} write class.
        """
        d = self.send_action("ConfbridgeList", [("Conference", room)])
        return d.addCallbacks(
            lambda response: sum(1 for event in response.events
                                 if event.get("Event") == "ConfbridgeList"),
            _absent(_NO_ROOM, 0))

    def originate(self, channel, *, context=None, exten=None, priority=1, application=None,
                  data=None, variables=None, caller_id=None, timeout=30.0, channel_id=None,
                  other_channel_id=None):
        """
        Call C{channel} (ringing it for C{timeout} seconds) and, once
        answered, send it to C{context,exten,priority} or run
        C{application(data)}. C{variables} become channel variables.

        The call is originated asynchronously; the outcome is the
        C{OriginateResponse} event that carries this action's C{ActionID}.

        @return: Deferred firing with an L{OriginateResult} (outcome
            C{"answered"}, C{"busy"}, C{"no-answer"}, C{"congestion"} or
            C{"failed"}; an action Asterisk refuses outright, such as an
            unknown channel technology or a permission problem, is
            C{"failed"} with Asterisk's message). Fails with
            L{AMIArgumentError} (bad arguments, nothing sent),
            L{AMINotConnected} (nothing sent), L{AMIConnectionLost} (the link
            dropped before the outcome: the call may be going on, it is not
            originated again) or L{AMITimeout} (no outcome within C{timeout}
            plus C{originate_margin} seconds).
        """
        try:
            headers = originate_headers(
                channel, context=context, exten=exten, priority=priority,
                application=application, data=data, variables=variables,
                caller_id=caller_id, timeout=timeout, channel_id=channel_id,
                other_channel_id=other_channel_id)
            _message.normalise(headers)  # refused here, before the link is looked at
        except AMIArgumentError:
            return defer.fail()
        protocol = self._link.current
        if protocol is None:
            return defer.fail(AMINotConnected(f"not connected to Asterisk: {channel} not called"))
        action_id = self._next_id()
        waiting = _PendingOriginate(channel_id, defer.Deferred())
        # Registered before sending: the event may come before the response.
        self._originates[action_id] = waiting
        if channel_id is not None:
            self._calls[channel_id] = waiting
        limit = timeout + self.originate_margin
        waiting.timer = self.reactor.callLater(limit, self._originateExpired, action_id, limit)
        queued = protocol.sendAction("Originate", headers, action_id=action_id)
        self._watch_answer(protocol, queued)
        queued.addErrback(self._originateRefused, action_id)
        return waiting.deferred

    def _watch_answer(self, protocol, answered):
        """Probe the link if C{answered} has not fired within C{late_answer} seconds."""
        if self.late_answer is None:
            return
        late = self.reactor.callLater(self.late_answer, self._link.probe, protocol,
                                      self.probe_timeout)

        def settled(result):
            _cancel(late)
            return result

        answered.addBoth(settled)

    def _originateRefused(self, failure, action_id):
        waiting = self._originates.pop(action_id, None)
        if waiting is None:
            return None  # the outcome arrived first, or the link is down
        self._calls.pop(waiting.channel_id, None)
        _cancel(waiting.timer)
        if failure.check(AMIActionError):
            waiting.deferred.callback(OriginateResult(
                waiting.channel_id, FAILED, None,
                f"Asterisk refused the originate: {failure.value.message}"))
        else:
            waiting.deferred.errback(failure)
        return None

    def _originateExpired(self, action_id, limit):
        waiting = self._originates.pop(action_id, None)
        if waiting is not None:
            self._calls.pop(waiting.channel_id, None)
            waiting.deferred.errback(AMITimeout(
                f"no OriginateResponse for {action_id} within {limit:g} s"))


def _absent(messages, value):
    """An errback turning Asterisk's "nothing there" answers into C{value}."""
    def errback(failure):
        failure.trap(AMIActionError)
        if (failure.value.message or "").strip().lower() in messages:
            return value
        return failure
    return errback


def _cancel(call):
    if call is not None and call.active():
        call.cancel()
