"""
Staff commands of the voice broadcast (registered into the C{switchboard} command):

  switchboard broadcast send --text "..." --to TARGET [--at "2026-12-03 09:00"]
                             [--priority normal|urgent] [--recording SOUND]
        TARGET: all | community:NAME | building:3 | building:3-5 | households.csv
  switchboard broadcast status [ID] [--watch]   progress: done / heard / failed / pending,
                                               rate, time left
  switchboard broadcast pause|resume|cancel ID
  switchboard broadcast report ID (--csv FILE | --xlsx FILE)
        who heard it, who did not and why (for the committee's follow-up visits)

The campaign and one delivery per household are written at once; a running
server starts calling at the time given (now by default) within a second.
"""

from __future__ import annotations

import csv
import os
import sys
import time
from datetime import datetime, timezone

from broadcast import store
from broadcast.models import ACTIVE, CHANNELS, NORMAL, PRIORITIES, TEXT, URGENT, VOICE
from switchboard.community.csvfile import quote
from switchboard.community.models import from_utc
from switchboard.community.targets import FORMS, TargetError, for_texts, select_households
from switchboard.text import printable

REPORT_COLUMNS = ("household", "address", "number", "heard", "why not", "calls counted",
                  "calls placed", "heard at", "last call at")
BAR = 30


def register(subparsers) -> None:
    """Add C{broadcast} and its actions to the C{switchboard} command."""
    top = subparsers.add_parser("broadcast", help="voice notices to households (语音推送)")
    sub = top.add_subparsers(dest="broadcast_command", metavar="ACTION")
    sub.required = True
    p = sub.add_parser("send", help="send a notice to households")
    p.add_argument("--text", default="", help="the notice, said by the speech engine")
    p.add_argument("--recording", default=None, metavar="SOUND",
                   help="an Asterisk sound name played instead of the text's rendering")
    p.add_argument("--to", required=True, metavar="TARGET", help=FORMS)
    p.add_argument("--at", default=None, metavar='"YYYY-MM-DD HH:MM"',
                   help="when to start, the community's local time (default: now)")
    p.add_argument("--priority", choices=PRIORITIES, default=NORMAL,
                   help="urgent: called in quiet hours too, before normal campaigns")
    p.add_argument("--channel", choices=CHANNELS, default=VOICE,
                   help="voice: a call, 1 = heard (default); text: a text message to "
                        "each resident's registered mobile, else the landline "
                        "(texting: in switchboard.yaml)")
    p.set_defaults(handler=send_command)
    p = sub.add_parser("status", help="progress of one campaign, or of the latest")
    p.add_argument("id", type=int, nargs="?")
    p.add_argument("--watch", action="store_true", help="keep the bar up to date until it ends")
    p.set_defaults(handler=status_command)
    for action in ("pause", "resume", "cancel"):
        p = sub.add_parser(action, help=f"{action} a campaign")
        p.add_argument("id", type=int)
        p.set_defaults(handler=change_command, action=action)
    p = sub.add_parser("report", help="who heard it, who did not and why")
    p.add_argument("id", type=int)
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument("--csv", metavar="FILE", help="write CSV (- for standard output)")
    out.add_argument("--xlsx", metavar="FILE", help="write an Excel workbook")
    p.set_defaults(handler=report_command)


def _out(context):
    return getattr(context, "stdout", None) or sys.stdout


def _now_utc() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _fail(message) -> int:
    print(f"switchboard broadcast: {message}", file=sys.stderr)
    return 1


def send_command(args, context) -> int:
    text = args.text.strip()
    if not text and not args.recording:
        return _fail("give the notice: --text TEXT or --recording SOUND")
    if args.channel == TEXT:
        from switchboard.texting.channel import MAX_BODY_BYTES
        if not text or args.recording:
            return _fail("a text notice is --text TEXT (no recording)")
        if len(text.encode()) > MAX_BODY_BYTES:
            return _fail(f"--text: {len(text.encode())} bytes, more than the "
                         f"{MAX_BODY_BYTES} a text message carries")
    elif text and not args.recording:
        problems = _speech_problems(context, text)
        if problems:
            for problem in problems:
                print(f"--text: {problem}", file=sys.stderr)
            return _fail("nothing was sent")
    start = _now_utc()
    if args.at:
        try:
            local = datetime.strptime(args.at.strip(), "%Y-%m-%d %H:%M")
        except ValueError:
            return _fail(f'--at {args.at!r}: not "YYYY-MM-DD HH:MM"')
        start = local.replace(tzinfo=context.tz).astimezone(timezone.utc).replace(tzinfo=None)
    database = context.database()
    try:
        targets = select_households(database, context.numbers, args.to)
    except TargetError as e:
        for problem in e.problems:
            print(problem, file=sys.stderr)
        return _fail("nothing was sent")
    if args.channel == TEXT:
        targets = for_texts(targets)   # residents' mobiles where registered
    campaign_id = store.run(database, store.create, text=text, recording=args.recording,
                            priority=args.priority, target=args.to, targets=targets,
                            start_at=start, now=_now_utc(), channel=args.channel)
    when = from_utc(start, context.tz).strftime("%Y-%m-%d %H:%M")
    households = len({t.household_id for t in targets})
    print(f"campaign {campaign_id}: {households} households, {args.priority}"
          + (f", by text to {len(targets)} phones" if args.channel == TEXT else "") + ", "
          f"starts {when}", file=_out(context))
    return 0


def _speech_problems(context, text) -> list:
    try:
        from switchboard.speech import Speech
        return Speech.from_settings(context.settings.speech).problems(text)
    except Exception as e:  # no speech configured: the server says so when it starts
        return [f"cannot be checked: {e}"]


def status_command(args, context) -> int:
    out = _out(context)
    database = context.database()
    if args.id is None:
        rows = store.run(database, store.progress)
        for p in rows:
            print(_line(p, context.tz), file=out)
        if not rows:
            print("no campaigns", file=out)
        return 0
    while True:
        rows = store.run(database, store.progress, [args.id])
        if not rows:
            return _fail(f"no campaign {args.id}")
        p = rows[0]
        bar = progress_line(p, _now_utc())
        if args.watch and out.isatty():
            print("\r" + bar, end="", file=out, flush=True)
        else:
            print(bar, file=out)
        if not args.watch or p.status not in ACTIVE:
            break
        time.sleep(1.0)
    if args.watch and out.isatty():
        print(file=out)
    print(f"{p.status}: {printable(p.text)[:60]}" + (f" ({p.note})" if p.note else ""),
          file=out)
    return 0


def _line(p, tz) -> str:
    when = from_utc(p.created_at, tz).strftime("%Y-%m-%d %H:%M")
    urgent = " URGENT" if p.priority == URGENT else ""
    return (f"{p.id:>5}  {when}  {p.status:<9}{urgent}  {p.heard}/{p.total} heard, "
            f"{p.failed} failed, {p.pending + p.calling} left  {printable(p.text)[:40]}")


def progress_line(p, now) -> str:
    """C{[#####-----] 12/30 done  9 heard  3 failed  18 pending  4.0/min  5 min left}."""
    filled = int(BAR * p.done / p.total) if p.total else BAR
    rate = p.rate(now)
    left = p.time_left(now)
    return (f"[{'#' * filled}{'-' * (BAR - filled)}] {p.done}/{p.total} done  "
            f"{p.heard} heard  {p.failed} failed  {p.pending + p.calling} pending  "
            + (f"{rate:.1f}/min" if rate else "-/min") + "  "
            + (f"{_minutes(left)} left" if left is not None else "time left unknown"))


def _minutes(delta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    return f"{seconds // 60} min"


def change_command(args, context) -> int:
    try:
        status = store.run(context.database(), store.change, args.id, args.action, _now_utc())
    except store.CampaignError as e:
        return _fail(str(e))
    print(f"campaign {args.id}: {status}", file=_out(context))
    return 0


def report_command(args, context) -> int:
    try:
        campaign, rows = store.run(context.database(), store.report, args.id)
    except store.CampaignError as e:
        return _fail(str(e))
    table = [report_cells(row, context.tz, text=campaign.channel == TEXT) for row in rows]
    if args.csv:
        write_csv(args.csv, table, _out(context))
    else:
        write_xlsx(args.xlsx, table, campaign)
    heard = sum(1 for r in rows if r.heard)
    if args.csv != "-":
        print(f"campaign {args.id}: {heard} of {len(rows)} heard; written to "
              f"{args.csv or args.xlsx}", file=_out(context))
    return 0


def report_cells(row, tz, text=False) -> list:
    def when(stored):
        return from_utc(stored, tz).strftime("%Y-%m-%d %H:%M:%S") if stored else ""
    return [row.household_id if row.household_id is not None else "", row.address,
            row.number, ("sent" if text else "yes") if row.heard else "no", row.why,
            row.attempts, row.calls,
            when(row.heard_at), when(row.last_call_at)]


def _private(path):
    """A new file only its owner reads: it names households and their numbers."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    return fd


def write_csv(path, table, stdout) -> None:
    """UTF-8 with a BOM (Excel opens it as Chinese text), formula-safe cells."""
    if path == "-":
        f = stdout
        close = False
    else:
        f = os.fdopen(_private(path), "w", encoding="utf-8-sig", newline="")
        close = True
    try:
        writer = csv.writer(f)
        writer.writerow(REPORT_COLUMNS)
        for cells in table:
            writer.writerow([quote(str(c)) for c in cells])
    finally:
        if close:
            f.close()


def write_xlsx(path, table, campaign) -> None:
    from openpyxl import Workbook
    book = Workbook()
    sheet = book.active
    sheet.title = f"campaign {campaign.id}"
    sheet.append(list(REPORT_COLUMNS))
    for cells in table:
        # Text cells as text: a number such as +86... must not become a formula or a float.
        sheet.append([c if isinstance(c, int) else quote(str(c)) for c in cells])
    os.close(_private(path))
    book.save(path)
