"""
The HTTP side: C{/metrics} (Prometheus' text format) and C{/healthz},
rendered on the reactor thread (the readings are the reactor's state: no
locks, and a scrape costs a few hundred microseconds).
"""

from __future__ import annotations

import json

from prometheus_client import CONTENT_TYPE_LATEST
from twisted.web import pages, resource, server


class MetricsPage(resource.Resource):
    """C{GET /metrics}: every metric of L{Metrics}."""

    isLeaf = True

    def __init__(self, metrics):
        super().__init__()
        self.metrics = metrics

    def render_GET(self, request):
        request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode("ascii"))
        request.setHeader(b"Cache-Control", b"no-store")
        return self.metrics.exposition()


class HealthPage(resource.Resource):
    """C{GET /healthz}: 200 and a small JSON body when ready, 503 when not."""

    isLeaf = True

    def __init__(self, health):
        super().__init__()
        self.health = health

    def render_GET(self, request):
        ready, body = self.health.check()
        request.setResponseCode(200 if ready else 503)
        request.setHeader(b"Content-Type", b"application/json")
        request.setHeader(b"Cache-Control", b"no-store")
        return json.dumps(body, sort_keys=True).encode("utf-8") + b"\n"


class StatusPage(resource.Resource):
    """
    C{GET /status.json}: L{switchboard.observe.status.Status.snapshot}.
    A leaf of its own, so that a site with logins can serve it behind
    them (C{guarded(StatusPage(status))}); this port serves it on loopback.
    """

    isLeaf = True

    def __init__(self, status):
        super().__init__()
        self.status = status

    def render_GET(self, request):
        request.setHeader(b"Content-Type", b"application/json; charset=utf-8")
        request.setHeader(b"Cache-Control", b"no-store")
        return json.dumps(self.status.snapshot(), ensure_ascii=False,
                          sort_keys=True).encode("utf-8") + b"\n"


class _Root(resource.Resource):
    """C{/}: its children, and 404 for anything else."""

    def getChild(self, path, request):
        return pages.notFound()


def root(metrics, health, status=None, pages=None) -> resource.Resource:
    """
    The pages under C{/}: C{metrics}, C{healthz}, C{status.json}, and the
    features' C{pages} (name -> resource, e.g. the duty board's C{board});
    the rest: 404.
    """
    top = _Root()
    for name, page in (pages or {}).items():
        top.putChild(name, page)
    top.putChild(b"metrics", MetricsPage(metrics))
    top.putChild(b"healthz", HealthPage(health))
    if status is not None:
        top.putChild(b"status.json", StatusPage(status))
    return top


class QuietSite(server.Site):
    """A site that does not log each request: a scrape every 15 s would fill the log."""

    def log(self, request):
        pass


def site(metrics, health, status=None, pages=None) -> server.Site:
    made = QuietSite(root(metrics, health, status, pages))
    made.noisy = False
    return made
