"""
On PostgreSQL, a household staff add with the CLI (another process) reaches
the running server at once (LISTEN/NOTIFY), not at its next look five
seconds later: AstDB holds its neighbours for the native fallback within a
second of the command.
"""

import os
import time

import pytest

from tests.conftest import PROJECT, wait_for
from tests.e2e.server import Server
from tests.postgres import fresh_postgres_url, postgres_url  # noqa: F401  (fixtures)

pytestmark = pytest.mark.asterisk


def test_a_household_added_on_postgres_is_in_astdb_within_a_second(asterisk, tmp_path,
                                                                     fresh_postgres_url):
    server = Server(tmp_path)
    server.rewrite_config(f"database: sqlite:///{server.db}", f"database: {fresh_postgres_url}")
    server.cli("households", "import", os.path.join(PROJECT, "config", "households.csv"))
    server.start()
    try:
        wait_for(lambda: "AstDB swb_ring" in server.log(), 20, message="the AstDB sync")
        times = []
        for n in range(3):
            number = f"8765018{n}"
            server.cli("households", "add", "--number", number, "--community", "Hualin Garden",
                       "--building", "9", "--room", f"10{n}", "--neighbour", "87650002")
            returned = time.monotonic()
            wait_for(lambda: "PJSIP/87650002" in asterisk.cli(f"database get swb_ring 8{n}/865918765018{n}"),
                     4, interval=0.02, message="the new household in AstDB")
            times.append(time.monotonic() - returned)
        print(f"\nCLI add -> AstDB key: {', '.join(f'{t * 1000:.0f} ms' for t in times)}")
        assert max(times) < 1.0, times
    finally:
        server.stop()
