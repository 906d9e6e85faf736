"""
The staff's commands:

  switchboard callbacks [--limit N]          the latest *0 "call me back" requests
  switchboard requests list [--all] [--json] open requests (*0 and voicemail), oldest first
  switchboard requests done ID --note TEXT   mark one done, with a note
  switchboard requests callback ID --from EXT  ring EXT, then the resident from it (AMI)
"""

from __future__ import annotations

import json
import sys
from datetime import datetime

from switchboard.text import printable

from callback.models import CALLBACK
from callback.requests import NoSuchRequest, Requests


def register(subparsers) -> None:
    """Add C{callbacks} and C{requests} to the C{switchboard} command."""
    callbacks = subparsers.add_parser("callbacks", help='the latest *0 "call me back" requests')
    callbacks.add_argument("--limit", type=int, default=20,
                           help="how many (default: %(default)s)")
    callbacks.set_defaults(handler=callbacks_command)

    requests = subparsers.add_parser(
        "requests", help="residents to call back: *0 requests and voicemails left at offices")
    actions = requests.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    listing = actions.add_parser("list", help="open requests, oldest first (! = over a day)")
    listing.add_argument("--all", action="store_true", help="the latest done ones too")
    listing.add_argument("--limit", type=int, default=100, help="how many (default: %(default)s)")
    listing.add_argument("--json", action="store_true", help="as the duty board reads them")
    listing.set_defaults(handler=list_command)
    done = actions.add_parser("done", help="mark a request done, with a note")
    done.add_argument("id", type=int)
    done.add_argument("--note", required=True, help="what was done (kept with the request)")
    done.add_argument("--by", help="who did it (default: your user name)")
    done.set_defaults(handler=done_command)
    back = actions.add_parser("callback", help="ring a staff phone, then the resident from it")
    back.add_argument("id", type=int)
    back.add_argument("--from", dest="from_phone", required=True, metavar="EXT",
                      help="the staff phone: a number (87650061) or a channel (PJSIP/desk)")
    back.set_defaults(handler=callback_command)


def _out(context):
    return getattr(context, "stdout", None) or sys.stdout


def callbacks_command(args, context) -> int:
    out = _out(context)
    rows = Requests(context.database()).recent(args.limit, kind=CALLBACK)
    for row in rows:
        when = row.requested_at.astimezone(context.tz).strftime("%Y-%m-%d %H:%M:%S")
        print(f"{row.id:>6}  {when}  {printable(row.caller)}", file=out)
    if not rows:
        print("no callback requests", file=out)
    return 0


def office_labels(context) -> dict:
    """Mailbox (C{box@context}) -> the routing's label for it; {} without a routing."""
    path = getattr(context.settings, "routing", None)
    if not path:
        return {}
    from switchboard.routing import schema
    from switchboard.routing.glance import mailbox_labels
    from switchboard.yamlconf import ConfigError
    try:
        routing = schema.load(path, context.numbers, trunks=tuple(context.settings.trunks))
    except (ConfigError, OSError):
        return {}
    return mailbox_labels(routing)


def _local(text, tz):
    return datetime.fromisoformat(text).astimezone(tz).strftime("%Y-%m-%d %H:%M")


def list_command(args, context) -> int:
    out = _out(context)
    rows = Requests(context.database()).listing(include_done=args.all, limit=max(1, args.limit),
                                                labels=office_labels(context))
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=1), file=out)
        return 0
    if not rows:
        print("no open requests", file=out)
        return 0
    for r in rows:
        flag = "!" if r["overdue"] else " "
        what = "*0" if r["kind"] == CALLBACK else printable(r["office_label"] or "voicemail")
        print(f"{flag}{r['id']:>5}  {_local(r['requested_at'], context.tz)}  "
              f"{printable(r['caller']):<16} {what}  [{r['status']}]", file=out)
        if r["recording"]:
            print(f"        recording: {printable(r['recording'])}", file=out)
        if r.get("call"):
            print("        call: " + printable(" | ".join(map(str, r["call"]["path"]))), file=out)
        if r["called_back_at"]:
            print(f"        called back {_local(r['called_back_at'], context.tz)} from "
                  f"{printable(r['called_back_from'] or '?')}", file=out)
        if r["status"] == "done":
            print(f"        done {_local(r['done_at'], context.tz)} by "
                  f"{printable(r['done_by'] or '?')}: "
                  f"{printable(r['note'] or '')}", file=out)
    return 0


def done_command(args, context) -> int:
    out = _out(context)
    if not args.note.strip():
        print("--note: say what was done", file=out)
        return 2
    try:
        Requests(context.database()).done(args.id, args.note.strip(),
                                          getattr(args, "by", None) or _user())
    except NoSuchRequest as e:
        print(str(e), file=out)
        return 1
    print(f"request {args.id} done", file=out)
    return 0


def _user() -> str | None:
    import getpass
    try:
        return getpass.getuser()
    except Exception:
        return None


def callback_command(args, context) -> int:
    """Ring the staff phone through AMI; once answered, the resident is dialled."""
    out = _out(context)
    requests = Requests(context.database())
    try:
        row = requests.get(args.id)
    except NoSuchRequest as e:
        print(str(e), file=out)
        return 1
    result = _originate(context, row.caller, args.from_phone)
    if isinstance(result, str):
        print(result, file=out)
        return 1
    if not result.answered:
        print(f"{args.from_phone}: {result.outcome} ({result.message}); nobody called",
              file=out)
        return 1
    requests.called_back(args.id, args.from_phone)
    print(f"{args.from_phone} answered: calling {printable(row.caller)} "
          f"(request {args.id}; mark it done with a note when it is)", file=out)
    return 0


def _originate(context, caller, from_phone):
    """Log in to AMI, originate, log off: the L{OriginateResult}, or why not (a str)."""
    originate = getattr(context, "originate", None)  # tests
    if originate is not None:
        return originate(caller, from_phone)
    from twisted.internet import defer
    from switchboard.ami.client import AMIClient
    from callback.ringback import CannotCallBack, call_back

    ami_settings = context.settings.ami
    outcome = []

    async def run(reactor):
        ami = AMIClient(ami_settings.host, ami_settings.port, ami_settings.username,
                        ami_settings.secret, reactor=reactor, events="call",
                        only_events=("OriginateResponse",))
        ami.start()
        try:
            timeout = reactor.callLater(10, lambda: waiting.cancel())
            waiting = ami.when_connected()
            try:
                await waiting
            except defer.CancelledError:
                outcome.append(f"AMI {ami_settings.host}:{ami_settings.port}: not connected "
                               "within 10 s; nobody called")
                return
            if timeout.active():
                timeout.cancel()
            outcome.append(await call_back(ami, context.dialer, caller, from_phone))
        except CannotCallBack as e:
            outcome.append(str(e))
        finally:
            await ami.stop()

    _react(run)
    return outcome[0] if outcome else "no answer from AMI"


def _react(run):
    """Run C{run(reactor)} to its end on the global reactor (the command is one-shot)."""
    from twisted.internet import defer, reactor
    failures = []

    def go():
        d = defer.ensureDeferred(run(reactor))
        d.addErrback(failures.append)
        d.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(go)
    reactor.run(installSignalHandlers=False)
    if failures:
        failures[0].raiseException()
