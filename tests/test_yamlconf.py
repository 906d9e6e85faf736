"""Located YAML: where every value came from, duplicates and odd documents refused."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from switchboard.yamlconf import ConfigError, LocatedDict, LocatedList, Location, loads


class LoadsTests(SynchronousTestCase):
    def test_locations_of_keys_values_and_items(self):
        data = loads("a: 1\nb:\n  - x\n  - {c: 08:30}\n", "f.yaml")
        self.assertIsInstance(data, LocatedDict)
        self.assertEqual(data.location, Location("f.yaml", 1, 1))
        self.assertEqual(data.key_locations["b"], Location("f.yaml", 2, 1))
        self.assertEqual(data.where("b"), Location("f.yaml", 3, 3))
        items = data["b"]
        self.assertIsInstance(items, LocatedList)
        self.assertEqual(items.where(1), Location("f.yaml", 4, 5))
        self.assertEqual(items[1]["c"], "08:30")  # a time stays text
        self.assertEqual(data["a"], 1)

    def test_duplicate_keys_are_refused_with_both_lines(self):
        with self.assertRaises(ConfigError) as caught:
            loads("a: 1\nb: 2\na: 3\n", "f.yaml")
        self.assertEqual(str(caught.exception),
                         "f.yaml:3:1: a: duplicate key (first at line 1) (remove one of them)")

    def test_an_alias_is_one_value(self):
        data = loads("base: &b {ring_timeout: 20}\none: *b\ntwo: *b\n", "f.yaml")
        self.assertIs(data["one"], data["two"])
        self.assertEqual(data["one"]["ring_timeout"], 20)

    def test_merge_keys(self):
        data = loads("base: &b {ring_timeout: 20, strategy: hunt}\n"
                     "dept: {<<: *b, strategy: ring-all}\n", "f.yaml")
        self.assertEqual(dict(data["dept"]), {"ring_timeout": 20, "strategy": "ring-all"})

    def test_duplicates_next_to_a_merge_are_still_refused(self):
        with self.assertRaises(ConfigError) as caught:
            loads("base: &b {a: 0}\nd: {<<: *b, a: 1, a: 2}\n", "f.yaml")
        self.assertIn("f.yaml:2:19: a: duplicate key (first at line 2)", str(caught.exception))

    def test_alias_inside_itself_is_refused(self):
        with self.assertRaises(ConfigError) as caught:
            loads("a: &x [1, *x]\n", "f.yaml")
        self.assertIn("f.yaml:1:4: YAML syntax: an alias may not refer to a value inside itself",
                      str(caught.exception))

    def test_many_aliases_stay_cheap(self):
        # Nine levels of nine aliases would be 387 million strings if expanded.
        lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x]"]
        for level in range(1, 10):
            lines.append(f"l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * 9) + "]")
        data = loads("\n".join(lines) + "\n", "f.yaml")
        self.assertIs(data["l9"][0], data["l8"])

    def test_a_key_must_be_plain(self):
        with self.assertRaises(ConfigError) as caught:
            loads("? [a, b]\n: 1\n", "f.yaml")
        self.assertIn("a key must be a plain value", str(caught.exception))

    def test_empty_document(self):
        self.assertIsNone(loads("", "f.yaml"))
        self.assertIsNone(loads("# only a comment\n", "f.yaml"))
