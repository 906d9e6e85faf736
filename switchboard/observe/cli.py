"""
  switchboard status [--json]   the running server's health lights and today's routing

Asks the running server (its HTTP port, C{http:} in switchboard.yaml,
loopback by default) for C{/status.json}: the state is in the server's
memory, not in the database.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request

from switchboard.text import printable

#: Seconds to wait for the server's answer.
TIMEOUT = 5.0
_MARK = {"ok": "OK  ", "failing": "FAIL", "unknown": "?   "}


def register(subparsers) -> None:
    status = subparsers.add_parser(
        "status", help="the running server's health (AMI, AstDB, database, files) and routing")
    status.add_argument("--json", action="store_true", help="the server's /status.json as is")
    status.set_defaults(handler=status_command)


def fetch(http) -> dict:
    """C{/status.json} of the server whose HTTP settings are C{http}."""
    host = http.listen if http.listen not in ("0.0.0.0", "::", "") else "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    with urllib.request.urlopen(f"http://{host}:{http.port}/status.json",
                                timeout=TIMEOUT) as response:
        return json.loads(response.read().decode("utf-8"))


def render(status: dict) -> list[str]:
    """The lines C{switchboard status} prints for C{status} (a snapshot)."""
    lights = status.get("lights", {})
    ami, astdb, db = status.get("ami", {}), status.get("astdb", {}), status.get("database", {})
    lines = [f"as of {status.get('at')}",
             f"{_MARK.get(lights.get('ami'), '?   ')} AMI       {ami.get('state')} since "
             f"{ami.get('since')} ({ami.get('reconnects', 0)} reconnect(s))",
             *[f"{_MARK.get(a.get('light'), '?   ')}   {printable(str(a.get('name')))[:20]:<20} "
               f"{a.get('state')} since {a.get('since')} ({a.get('reconnects', 0)} reconnect(s))"
               for a in ami.get("asterisks", [])],
             f"{_MARK.get(lights.get('astdb'), '?   ')} AstDB     {astdb.get('state')}; last sync "
             f"{astdb.get('last_sync')}" + (f"; failing: {astdb['failure']}"
                                            if astdb.get("failure") else ""),
             f"{_MARK.get(lights.get('database'), '?   ')} database  {db.get('state')}; "
             f"{db.get('queued', 0)} record(s) waiting" + "".join(
                 f"; {name}: {j['failures_in_a_row']} refused in a row"
                 for name, j in sorted(db.get("journals", {}).items()) if j["failures_in_a_row"])]
    for f in status.get("files", []):
        mark = _MARK["failing"] if f.get("refused") else _MARK["ok"]
        lines.append(f"{mark} {f.get('what'):<9} {printable(str(f.get('file')))}: reloaded "
                     f"{f.get('last_reload')}; {f['loads'].get('refused', 0)} refused")
        if f.get("refused"):
            lines.append(f"          refused {f.get('last_refused')}: "
                         f"{printable(str(f.get('refused_file')))}")
            lines.extend(f"            {printable(e.get('text', ''))}" for e in f.get("errors", []))
    departments = status.get("departments", [])
    if departments:
        lines.append("routing now:")
    for d in departments:
        change = (f"; {d['next_state']} from {d['next_change']}" if d.get("next_change")
                  else "")
        lines.append(f"  {d['state']:<8} {printable(d['label'])}{change}")
    return lines


def status_command(args, context) -> int:
    out = getattr(context, "stdout", None) or sys.stdout
    http = context.settings.http
    if not http.enabled:
        print("the server's HTTP port is off (http: enabled: false): no status to read",
              file=out)
        return 1
    try:
        status = fetch(http)
    except (OSError, urllib.error.URLError, ValueError) as e:
        print(f"no answer from the server at {http.listen}:{http.port} ({e}): is it running?",
              file=out)
        return 1
    if args.json:
        print(json.dumps(status, ensure_ascii=False, indent=1, sort_keys=True), file=out)
        return 0
    for line in render(status):
        print(line, file=out)
    lights = status.get("lights", {})
    return 1 if "failing" in lights.values() else 0
