"""
The server observed by its operators: Prometheus metrics (C{/metrics}) and
a readiness check (C{/healthz}) on the server's own HTTP port.

The parts observed know nothing of this package: the metrics listen to
the callbacks and listeners they offer (L{switchboard.listeners}) and read
their state when scraped. See L{switchboard.observe.service.attach}.
"""
