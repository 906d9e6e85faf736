"""
Expand, then contract (switchboard.migrations.phases): every migration not
marked as a contract is one an instance on the old code survives, and the
server's own upgrade stops before a contract migration.
"""

import importlib.util
import textwrap
import types

from sqlalchemy import create_engine
from twisted.trial.unittest import SynchronousTestCase

from switchboard import migrations
from switchboard.migrations.phases import contracting_operations, expand_targets, is_contract


def module_from(tmp, source, name="m"):
    path = tmp / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_migration_not_marked_contract_only_expands():
    script = migrations.script_directory()
    revisions = list(script.walk_revisions())
    assert len(revisions) >= 4
    for revision in revisions:
        if is_contract(revision):
            continue
        assert contracting_operations(revision.module) == [], (
            f"{revision.path}: takes away what an instance on the old code uses; split it "
            f"into an expand migration and a contract one (contract = True)")


def test_what_an_old_instance_would_not_survive_is_named(tmp_path):
    module = module_from(tmp_path, '''
        from alembic import op
        import sqlalchemy as sa

        def upgrade():
            op.create_table("t", sa.Column("id", sa.Integer()))
            op.add_column("t", sa.Column("a", sa.Text(), nullable=True))
            op.add_column("t", sa.Column("b", sa.Text(), nullable=False, server_default=""))
            op.create_index("ix", "t", ["a"])
            op.add_column("t", sa.Column("c", sa.Text(), nullable=False))
            op.drop_column("t", "old")
            with op.batch_alter_table("t") as batch:
                batch.alter_column("a", new_column_name="aa")
                batch.alter_column("b", nullable=False)
            op.execute("drop table gone")
            op.create_unique_constraint("u", "t", ["a"])
    ''')
    found = contracting_operations(module)
    assert [f.split(": ", 1)[1] for f in found] == [
        "add_column NOT NULL without a server_default", "drop_column",
        "alter_column new_column_name", "alter_column nullable=False", "execute DROP",
        "create_unique_constraint"]
    assert found[0].startswith("line 10:")


class FakeScript:
    """Alembic's ScriptDirectory, as much as expand_targets reads."""

    def __init__(self, *chains):
        self.revisions = {}
        self.heads = []
        for chain in chains:
            down = None
            for name in chain:
                contract = name.endswith("!")
                name = name.rstrip("!")
                self.revisions[name] = types.SimpleNamespace(
                    revision=name, down_revision=down,
                    module=types.SimpleNamespace(contract=contract))
                down = name
            self.heads.append(down)

    def get_heads(self):
        return self.heads

    def get_revision(self, name):
        return self.revisions[name]


class ExpandTargetsTests(SynchronousTestCase):
    def test_each_branch_stops_before_its_first_contract(self):
        script = FakeScript(["a1", "a2", "a3!", "a4"], ["b1", "b2"], ["c1!", "c2"])
        targets, waiting = expand_targets(script, {"a1"})
        self.assertEqual((targets, waiting), (["a2", "b2"], ["a3", "c1"]))

    def test_once_applied_the_branch_goes_on(self):
        script = FakeScript(["a1", "a2", "a3!", "a4"])
        self.assertEqual(expand_targets(script, {"a1", "a2", "a3"}), (["a4"], []))
        self.assertEqual(expand_targets(script, {"a1", "a2", "a3", "a4"}), ([], []))


def test_the_server_upgrade_of_an_empty_database_reaches_every_head(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        done = migrations.upgrade(engine)
        assert done.waiting == ()
        script = migrations.script_directory()
        assert set(script.get_heads()) <= migrations._ancestors(script, done.after)
    finally:
        engine.dispose()
