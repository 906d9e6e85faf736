"""
read_lines: the usual block is read in one pass; any block gives what the
line-by-line reading gives (kept here as the reference).
"""

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from switchboard.agi.environment import by_line, read_lines
from switchboard.text import printable


def reference(text, env):
    """The line loop, which read every block before the one-pass path."""
    control = any(printable(c) != c for c in text.replace("\n", ""))
    return by_line(text, env, printable if control else None)


PIECES = ["agi_", "arg_1", "a", "b", ":", ": ", " ", "\t", "\r", "\x00", "\x1c", "\x85",
          "\xa0", "\u2028", "\u3000", "中", "agi_channel: PJSIP/1", "x"]
LINES = st.lists(st.sampled_from(PIECES), max_size=6).map("".join)
BLOCKS = st.lists(LINES, min_size=1, max_size=6).map("\n".join)


class ReadLinesTests(SynchronousTestCase):
    @settings(max_examples=800, deadline=None)
    @given(BLOCKS, st.booleans())
    def test_same_as_the_line_loop(self, text, filled):
        before = {"a": "1", "channel": "first"} if filled else {}
        env, expected = dict(before), dict(before)
        self.assertEqual(read_lines(text, env), reference(text, expected))
        self.assertEqual(list(env.items()), list(expected.items()))

    def test_usual_block(self):
        env = {}
        text = "agi_network: yes\nagi_channel: PJSIP/1-0001\nagi_request: agi://h:1/x\nagi_arg_1:  a b "
        self.assertEqual(read_lines(text, env), [])
        self.assertEqual(env, {"network": "yes", "channel": "PJSIP/1-0001",
                               "request": "agi://h:1/x", "arg_1": "a b"})

    def test_first_occurrence_wins_across_blocks(self):
        env = {}
        read_lines("agi_channel: PJSIP/1\nagi_callerid: 1", env)
        self.assertEqual(read_lines("agi_channel: other\nagi_dnid: 2", env), [])
        self.assertEqual(env, {"channel": "PJSIP/1", "callerid": "1", "dnid": "2"})
        self.assertEqual(list(env), ["channel", "callerid", "dnid"])
