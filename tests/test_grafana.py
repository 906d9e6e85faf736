"""
The example Grafana dashboard (docs/grafana-dashboard.json) is valid JSON
and every metric its queries name is one the server exposes: checked
against the /metrics text of a server built as `switchboard run` builds
it (every installed feature), so a renamed metric fails here.
"""

from __future__ import annotations

import json
import os
import re
import shutil

from twisted.internet.testing import MemoryReactorClock

from switchboard.observe.service import ObserveService
from switchboard.service import build
from tests.conftest import PROJECT
from tests.test_hotline_support import ROUTING
from tests.test_service import settings
import pytest

pytestmark = pytest.mark.database

DASHBOARD = os.path.join(PROJECT, "docs", "grafana-dashboard.json")
_NAME = re.compile(r"\bswitchboard_[a-z0-9_]+")


def exposed_names(tmp_path) -> set:
    """The sample names of a freshly built server's /metrics."""
    (tmp_path / "r.yaml").write_text(ROUTING, encoding="utf-8")
    shutil.copy(os.path.join(PROJECT, "config", "alarm.yaml"), tmp_path / "a.yaml")
    server = build(settings(tmp_path), MemoryReactorClock())
    [observe] = [s for s in server if isinstance(s, ObserveService)]
    text = observe.metrics.exposition().decode()
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines()
            if line and not line.startswith("#")}


def queries(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr":
                yield value
            else:
                yield from queries(value)
    elif isinstance(node, list):
        for value in node:
            yield from queries(value)


def test_the_dashboard_names_only_metrics_the_server_exposes(tmp_path):
    with open(DASHBOARD, encoding="utf-8") as f:
        dashboard = json.load(f)
    exprs = list(queries(dashboard))
    assert len(exprs) >= 20
    named = {name for expr in exprs for name in _NAME.findall(expr)}
    exposed = exposed_names(tmp_path)
    assert named - exposed == set()
    # And the dashboard shows every family the server has (a new one gets a panel).
    families = {re.sub(r"_(total|bucket|count|sum)$", "", n) for n in exposed}
    shown = {re.sub(r"_(total|bucket|count|sum)$", "", n) for n in named}
    assert families - shown == set()
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_the_readme_lists_every_metric(tmp_path):
    with open(os.path.join(PROJECT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    families = {re.sub(r"_(total|bucket|count|sum)$", "", n) for n in exposed_names(tmp_path)}
    missing = {f for f in families if f not in readme}
    assert missing == set()
