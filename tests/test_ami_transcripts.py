"""
AMIClient against conversations recorded from the lab Asterisk 22
(C{tests/transcripts/}, made by C{tests/ami_transcripts.py}): each
scenario runs again on a C{MemoryReactorClock}, Asterisk's side of its
transcript played into a C{StringTransport} at the recorded times, and
what the client writes must be, byte for byte, what it wrote to the real
Asterisk; its findings must be what they were against it.
"""

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from switchboard.ami import AMIClient
from tests import ami_transcripts
from tests.ami_transcripts import MASKED, client_options, load
from tests.test_ami_support import USER, accept


class Replay:
    """
    Runs scenario C{name} against its transcript. C{piece}: feed
    Asterisk's chunks in pieces of that many bytes (the framing must not
    depend on where TCP cut the stream).
    """

    def __init__(self, test, name, piece=None):
        self.test = test
        self.chunks = load(name)
        self.scenario = ami_transcripts.SCENARIOS[name]
        self.piece = piece
        self.reactor = MemoryReactorClock()
        # cause_wait 0: the originate transcript was recorded when a reason-0
        # failure with no Newchannel seen (the unknown endpoint) was not waited
        # for; its busy call's Hangup is in the same chunk as the outcome.
        self.client = AMIClient("127.0.0.1", 5038, USER, MASKED, reactor=self.reactor,
                                **dict(client_options(), cause_wait=0.0))
        self.sent = []  # the client's actions, in order

    def run(self):
        """Play the transcript; the scenario's findings."""
        self.client.start()
        ast = accept(self.reactor)
        findings = self.scenario(self.client, self.reactor)
        written = b""
        for n, (at, side, data) in enumerate(self.chunks, 1):
            if at > self.reactor.seconds():
                self.reactor.advance(at - self.reactor.seconds())
            if side == "asterisk":
                step = self.piece or len(data)
                for i in range(0, len(data), step):
                    ast.says(data[i:i + step])
                continue
            written += ast.written()
            self.test.assertEqual(written[:len(data)], data,
                                  f"chunk {n}: the client wrote otherwise")
            written = written[len(data):]
            self.sent += [line.split(b": ", 1)[1].decode() for line in data.split(b"\r\n")
                          if line.startswith(b"Action: ")]
        self.test.assertEqual(written + ast.written(), b"", "the client wrote more")
        self.test.assertTrue(ast.transport.disconnecting, "the client closes after Logoff")
        ast.close()
        return self.test.successResultOf(findings)


class TranscriptTests(SynchronousTestCase):
    def replay(self, name, **kwargs):
        replay = Replay(self, name, **kwargs)
        return replay.run(), replay.sent

    def test_login_filter_ping_logoff(self):
        findings, sent = self.replay("login")
        self.assertEqual(findings, {"ping": "Pong"})
        self.assertEqual(sent, ["Login", "Filter", "Ping", "Logoff"])
        [login] = [d for t, side, d in load("login") if b"Action: Login" in d]
        self.assertIn(f"Secret: {MASKED}\r\n".encode(), login)  # never the lab's secret
        self.assertIn(b"Events: call\r\n", login)

    def test_originate_outcomes_getvar_and_hangup(self):
        findings, sent = self.replay("originate")
        self.assertEqual(findings, {
            "answered": ["answered", 4, "rec-answer", "rec-answer"],
            "state_up": "Up",
            "hangup": True,
            "hangup_cause": "16",
            "state_gone": None,     # Getvar: "No such channel"
            "hangup_gone": False,   # Hangup: "No such channel"
            # A PJSIP phone answering 486 at once: Asterisk 22 reports the
            # originate as a failure (reason 0); the channel's Hangup just
            # behind it (cause 17, user busy) tells it was busy.
            "busy": ["busy", 0, "rec-busy", "rec-busy"],
            "no_answer": ["no-answer", 3, "rec-ring", "rec-ring"],
            # No such endpoint: no channel was made, no cause to wait for.
            "unknown": ["failed", 0, "rec-unknown", "rec-unknown"],
        })
        self.assertEqual(sent, ["Login", "Filter", "Originate", "Getvar", "Hangup", "Getvar",
                                "Hangup", "Originate", "Originate", "Originate", "Logoff"])
        busy_hangup = [d for t, side, d in load("originate")
                       if side == "asterisk" and b"Uniqueid: rec-busy" in d
                       and b"Event: Hangup" in d]
        self.assertTrue(busy_hangup and b"Cause: 17\r\n" in busy_hangup[0])

    def test_astdb_tree_with_a_ping_behind_it(self):
        findings, sent = self.replay("astdb")
        self.assertEqual(findings, {
            "count": 40,
            "first": ["87650000", "PJSIP/87650001&Local/x"],
            "last": ["87650039", "PJSIP/87650040&Local/x"],
            # Asterisk answered the Ping only after the whole list.
            "order": ["tree", "ping"],
            "deltree": True,
            "deltree_again": False,
            "get_gone": None,
        })
        self.assertEqual(sent[-6:], ["DBGetTree", "Ping", "DBDelTree", "DBDelTree", "DBGet",
                                     "Logoff"])

    def test_confbridge_list(self):
        findings, sent = self.replay("confbridge")
        self.assertEqual(findings, {"empty": 0, "joined": "answered", "one": 1,
                                    "hangup": True})
        self.assertEqual(sent.count("ConfbridgeList"), 2)

    def test_any_cut_of_the_stream_reads_the_same(self):
        for name in ami_transcripts.SCENARIOS:
            whole, _ = self.replay(name)
            self.assertEqual(self.replay(name, piece=7)[0], whole, name)

    def test_a_client_writing_otherwise_is_caught(self):
        # The replay itself can fail: a client that logs in with other
        # event classes does not match the recording.
        replay = Replay(self, "login")
        replay.client = AMIClient("127.0.0.1", 5038, USER, MASKED, reactor=replay.reactor,
                                  **dict(client_options(), events="on"))
        with self.assertRaises(self.failureException):
            replay.run()
