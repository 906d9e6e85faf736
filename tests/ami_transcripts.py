"""
Recorded AMI conversations with the lab Asterisk 22, and the scenarios that
made them.

A transcript (C{tests/transcripts/NAME.jsonl}) is every chunk of bytes that
crossed one manager connection, in order, one JSON object a line:
C{{"t": seconds since the connection, "from": "client" | "asterisk",
"data": the bytes as text}}. The login's secret is masked as L{MASKED}.

Each scenario is a function C{(client, clock) -> Deferred} of its findings
that uses only L{AMIClient}'s API (and C{clock} for a pause): the recorder
runs it against the real Asterisk through a proxy that writes the
transcript, and C{tests/test_ami_transcripts.py} runs it again against the
transcript's Asterisk side on a C{StringTransport}.

Record again (root, in a lab network namespace, lab Asterisk started):

    python -m tests.ami_transcripts HOST PORT USER SECRET [SCENARIO...]
"""

from __future__ import annotations

import json
import os
import sys
import time

from twisted.internet import defer, task

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "transcripts")
MASKED = "********"
CLIENT_ID = "rec"

# The lab phones each scenario calls (SIPp, behaviour by number).
PHONES = {"87650002": "answer", "87650003": "busy", "87650004": "ring", "87650005": "answer"}


def client_options():
    """How the recording and the replay build their AMIClient: as the service does."""
    return dict(client_id=CLIENT_ID, events="call",
                only_events=("Newchannel", "Hangup", "OriginateResponse"),
                ping_interval=600.0, late_answer=None)


def load(name):
    """The chunks of transcript C{name}: a list of C{(t, side, bytes)}."""
    with open(os.path.join(HERE, name + ".jsonl"), encoding="utf-8") as f:
        return [(c["t"], c["from"], c["data"].encode("utf-8"))
                for c in map(json.loads, f)]


# Scenarios


@defer.inlineCallbacks
def login(client, clock):
    """Login, the event Filter, a Ping, Logoff."""
    yield client.when_connected()
    pong = yield client.send_action("Ping")
    yield client.stop()
    return {"ping": pong.get("Ping")}


def _outcome(result):
    return [result.outcome, result.reason, result.channel_id, result.uniqueid]


@defer.inlineCallbacks
def originate(client, clock):
    """Originate to a phone that answers, one busy, one that rings out, an unknown one."""
    yield client.when_connected()
    hangups = {}
    client.subscribe("Hangup", lambda e: hangups.setdefault(e.get("Uniqueid"), e.get("Cause")))
    r = {}
    answered = yield client.originate("PJSIP/87650002", application="Wait", data="20",
                                      timeout=5, channel_id="rec-answer")
    r["answered"] = _outcome(answered)
    r["state_up"] = yield client.channel_state("rec-answer")
    r["hangup"] = yield client.hangup("rec-answer")
    while "rec-answer" not in hangups:
        yield task.deferLater(clock, 0.1, lambda: None)
    r["hangup_cause"] = hangups["rec-answer"]
    r["state_gone"] = yield client.channel_state("rec-answer")
    r["hangup_gone"] = yield client.hangup("rec-answer")
    r["busy"] = _outcome((yield client.originate(
        "PJSIP/87650003", application="Wait", data="1", timeout=5, channel_id="rec-busy")))
    r["no_answer"] = _outcome((yield client.originate(
        "PJSIP/87650004", application="Wait", data="1", timeout=2, channel_id="rec-ring")))
    r["unknown"] = _outcome((yield client.originate(
        "PJSIP/87659999", application="Wait", data="1", timeout=2, channel_id="rec-unknown")))
    yield client.stop()
    return r


@defer.inlineCallbacks
def astdb(client, clock):
    """AstDB: puts, a DBGetTree with a Ping sent behind it, DBDelTree, DBGet of nothing."""
    yield client.when_connected()
    family = "rec-astdb"
    for n in range(40):
        yield client.db_put(family, f"8765{n:04d}", f"PJSIP/8765{n + 1:04d}&Local/x")
    order, entries = [], []
    tree = client.db_tree(family, lambda key, value: entries.append((key, value)))
    tree.addCallback(lambda count: order.append("tree") or count)
    ping = client.send_action("Ping")  # Asterisk answers it after the whole list
    ping.addCallback(lambda pong: order.append("ping") or pong)
    count = yield tree
    yield ping
    r = {"count": count, "first": list(entries[0]), "last": list(entries[-1]),
         "order": order}
    r["deltree"] = yield client.db_deltree(family)
    r["deltree_again"] = yield client.db_deltree(family)
    r["get_gone"] = yield client.db_get(family, "87650000")
    yield client.stop()
    return r


@defer.inlineCallbacks
def confbridge(client, clock):
    """ConfbridgeList of no room, then of a room with one phone in it."""
    yield client.when_connected()
    r = {"empty": (yield client.room_size("rec-room"))}
    joined = yield client.originate("PJSIP/87650005", application="ConfBridge",
                                    data="rec-room", timeout=5, channel_id="rec-conf")
    r["joined"] = joined.outcome
    yield task.deferLater(clock, 1.0, lambda: None)  # into the room
    r["one"] = yield client.room_size("rec-room")
    r["hangup"] = yield client.hangup("rec-conf")
    yield client.stop()
    return r


SCENARIOS = {"login": login, "originate": originate, "astdb": astdb,
             "confbridge": confbridge}


# Recording


def _record(host, port, user, secret, names):  # pragma: no cover - needs the lab
    from twisted.internet import protocol, reactor

    from lab.sipp import SippFactory
    from switchboard.ami import AMIClient

    class Upstream(protocol.Protocol):
        def connectionMade(self):
            self.factory.proxy.upstreamUp(self)

        def dataReceived(self, data):
            self.factory.proxy.chunk("asterisk", data)
            self.factory.proxy.transport.write(data)

        def connectionLost(self, reason):
            self.factory.proxy.transport.loseConnection()

    class Proxy(protocol.Protocol):
        """The client's connection, relayed to Asterisk and written down."""

        def connectionMade(self):
            self.chunks, self.start, self.upstream, self.early = [], time.monotonic(), None, []
            self.transport.pauseProducing()
            f = protocol.ClientFactory()
            f.protocol, f.proxy = Upstream, self
            reactor.connectTCP(host, port, f)
            self.factory.connections.append(self)

        def upstreamUp(self, upstream):
            self.upstream = upstream
            self.transport.resumeProducing()

        def chunk(self, side, data):
            text = data.decode("utf-8")
            if side == "client":
                text = text.replace(f"Secret: {secret}\r\n", f"Secret: {MASKED}\r\n")
            self.chunks.append({"t": round(time.monotonic() - self.start, 4), "from": side,
                                "data": text})

        def dataReceived(self, data):
            self.chunk("client", data)
            self.upstream.transport.write(data)

        def connectionLost(self, reason):
            if self.upstream is not None:
                self.upstream.transport.loseConnection()

    proxies = protocol.Factory()
    proxies.protocol, proxies.connections = Proxy, []
    listening = reactor.listenTCP(0, proxies, interface="127.0.0.1")
    phones = SippFactory()

    @defer.inlineCallbacks
    def run():
        os.makedirs(HERE, exist_ok=True)
        findings = {}
        for name in names:
            for number, behaviour in PHONES.items():
                phones.phone(number, behaviour, timeout_s=60)
            yield task.deferLater(reactor, 0.5, lambda: None)  # SIPp listening
            del proxies.connections[:]
            client = AMIClient("127.0.0.1", listening.getHost().port, user, secret,
                               reactor=reactor, **client_options())
            client.start()
            findings[name] = yield SCENARIOS[name](client, reactor)
            yield task.deferLater(reactor, 0.5, lambda: None)  # the last bytes
            phones.stop_all()
            [connection] = proxies.connections
            path = os.path.join(HERE, name + ".jsonl")
            with open(path, "w", encoding="utf-8") as f:
                for c in connection.chunks:
                    f.write(json.dumps(c, ensure_ascii=False) + "\n")
            print(f"{path}: {len(connection.chunks)} chunks", file=sys.stderr)
        print(json.dumps(findings, indent=1))
        listening.stopListening()

    def done(result):
        reactor.stop()
        return result

    reactor.callWhenRunning(lambda: run().addBoth(done).addErrback(
        lambda f: f.printTraceback(file=sys.stderr)))
    reactor.run()


if __name__ == "__main__":  # pragma: no cover
    host, port, user, secret, *names = sys.argv[1:]
    _record(host, int(port), user, secret, names or list(SCENARIOS))
