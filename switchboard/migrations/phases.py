"""
Expand, then contract: schema changes that two switchboards can share.

Two instances serve from one database, and they are upgraded one at a
time: while the second still runs the old code, the schema must suit both.
So a migration is one of two kinds:

- expand (the default): adds what the new code uses (tables, nullable
  columns or columns with a server default, indexes) and takes away nothing
  the old code reads or writes. Any instance applies it when it starts.
- contract: takes away or tightens (drops, renames, a column made NOT
  NULL, a changed type). It says so (C{contract = True} in its module)
  and is applied only by C{switchboard db upgrade --contract}, run once
  every instance runs code that no longer needs what it removes.

L{contracting_operations} reads a migration's C{upgrade()} and names what
would break an old instance, so that a test holds every migration not
marked as a contract to expand-only.
"""

from __future__ import annotations

import ast
import inspect

#: Operations (of C{op} or of a batch) that take away or rename.
_REMOVING = {"drop_table", "drop_column", "rename_table", "drop_table_comment"}
#: Constraints an old instance's writes may not meet.
_TIGHTENING = {"create_unique_constraint", "create_check_constraint", "create_foreign_key",
               "create_primary_key"}
_SQL_WORDS = ("DROP ", "RENAME ", "DELETE ", "TRUNCATE ")


def is_contract(revision) -> bool:
    """Whether the revision (an Alembic C{Script}) says it is a contract migration."""
    return bool(getattr(revision.module, "contract", False))


def contracting_operations(module) -> list[str]:
    """What C{module}'s C{upgrade()} does that an instance on the old code would not survive."""
    source = inspect.getsource(module.upgrade)
    tree = ast.parse(_dedent(source))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        name = node.func.attr
        line = node.lineno + module.upgrade.__code__.co_firstlineno - 1
        keywords = {k.arg: k.value for k in node.keywords}
        if name in _REMOVING or name in _TIGHTENING:
            found.append(f"line {line}: {name}")
        elif name == "alter_column":
            for key in ("new_column_name", "type_"):
                if key in keywords:
                    found.append(f"line {line}: alter_column {key}")
            if _is_false(keywords.get("nullable")):
                found.append(f"line {line}: alter_column nullable=False")
        elif name == "add_column":
            column = node.args[-1] if node.args else keywords.get("column")
            if isinstance(column, ast.Call):
                inner = {k.arg: k.value for k in column.keywords}
                if _is_false(inner.get("nullable")) and "server_default" not in inner:
                    found.append(f"line {line}: add_column NOT NULL without a server_default")
        elif name == "execute":
            text = " ".join(n.value for n in ast.walk(node) if isinstance(n, ast.Constant)
                            and isinstance(n.value, str)).upper()
            for word in _SQL_WORDS:
                if word in text:
                    found.append(f"line {line}: execute {word.strip()}")
    return sorted(found, key=lambda f: int(f.split()[1].rstrip(":")))


def _is_false(node) -> bool:
    return isinstance(node, ast.Constant) and node.value is False


def _dedent(source: str) -> str:
    import textwrap
    return textwrap.dedent(source)


def expand_targets(script, applied: set) -> tuple[list[str], list[str]]:
    """
    Where each branch may be upgraded to without a contract migration:
    C{(targets, waiting)}, the revisions to upgrade to and the contract
    revisions left for C{--contract}. C{applied}: the revisions the
    database has (L{switchboard.migrations._ancestors} of its heads).
    """
    targets, waiting = [], []
    for head in script.get_heads():
        chain = []
        revision = script.get_revision(head)
        while revision is not None:
            chain.append(revision)
            down = revision.down_revision
            down = down if isinstance(down, str) or down is None else down[0]
            revision = script.get_revision(down) if down else None
        chain.reverse()  # base first
        target = None
        for revision in chain:
            if revision.revision in applied:
                target = revision.revision
                continue
            if is_contract(revision):
                waiting.append(revision.revision)
                break
            target = revision.revision
        if target is not None and target not in applied:
            targets.append(target)
    return targets, waiting
