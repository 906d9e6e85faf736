"""
Staff commands of the #9 alarm (registered into the C{switchboard} command):

  switchboard households import FILE.csv     all rows or none; every bad row reported
  switchboard households add --number N --building B --unit U --room R [...]
  switchboard households show ID|NUMBER
  switchboard households list
  switchboard households export [FILE]
  switchboard households remove ID|NUMBER
  switchboard neighbours set HOUSEHOLD NUMBER[=NAME]...
  switchboard mobiles set HOUSEHOLD [MOBILE[=NAME]...]   residents' mobiles, for text notices
  switchboard alarms [--limit N]
  switchboard alarms show ID                 the timeline
  switchboard alarms close ID [--note TEXT]  staff close (the server stops escalating)
  switchboard alarms check [FILE]            alarm.yaml: every problem with file:line:column,
                                             text the speech engine cannot say included

A running server notices registry changes within seconds.
"""

from __future__ import annotations

import os
import sys

from sqlalchemy import select

from alarm import config as alarm_config
from alarm.models import CLOSED, Alarm, AlarmEvent
from switchboard.pgnotify import notify
from alarm.recorder import room_name
from switchboard.community import csvfile, mobiles
from switchboard.community.models import from_utc, now_utc
from switchboard.community.registry import (
    HouseholdData, Registry, RegistryError, parse_neighbour)
from switchboard.numbers import InvalidNumber
from switchboard.text import printable


def register(subparsers) -> None:
    """Add C{households}, C{neighbours} and C{alarms} to the C{switchboard} command."""
    households = subparsers.add_parser("households", help="the community's registry of households")
    hsub = households.add_subparsers(dest="households_command", metavar="ACTION")
    hsub.required = True
    p = hsub.add_parser("import", help="import households from CSV (all rows or none)")
    p.add_argument("file")
    p.set_defaults(handler=households_import)
    p = hsub.add_parser("add", help="register one household")
    p.add_argument("--number", action="append", required=True, metavar="NUMBER",
                   help="a landline it calls from (repeat for several)")
    for name in ("community", "building", "unit", "room", "residents", "notes"):
        p.add_argument(f"--{name}", default="")
    p.add_argument("--neighbour", action="append", default=[], metavar="NUMBER[=NAME]",
                   help="a neighbour's phone, in ring order (repeat, up to the maximum)")
    p.add_argument("--mobile", action="append", default=[], metavar="MOBILE[=NAME]",
                   help="a resident's mobile, for text notices (repeat for several)")
    p.set_defaults(handler=households_add)
    p = hsub.add_parser("show", help="one household and its neighbours")
    p.add_argument("household", metavar="ID|NUMBER")
    p.set_defaults(handler=households_show)
    p = hsub.add_parser("list", help="every household")
    p.set_defaults(handler=households_list)
    p = hsub.add_parser("export", help="write every household as CSV (to FILE or stdout)")
    p.add_argument("file", nargs="?")
    p.set_defaults(handler=households_export)
    p = hsub.add_parser("remove", help="remove a household from the registry")
    p.add_argument("household", metavar="ID|NUMBER")
    p.set_defaults(handler=households_remove)

    neighbours = subparsers.add_parser("neighbours", help="a household's ring group")
    nsub = neighbours.add_subparsers(dest="neighbours_command", metavar="ACTION")
    nsub.required = True
    p = nsub.add_parser("set", help="replace the neighbours of a household (in ring order)")
    p.add_argument("household", metavar="HOUSEHOLD")
    p.add_argument("numbers", nargs="*", metavar="NUMBER[=NAME]")
    p.set_defaults(handler=neighbours_set)

    mobiles = subparsers.add_parser("mobiles", help="residents' mobiles, for text notices")
    msub = mobiles.add_subparsers(dest="mobiles_command", metavar="ACTION")
    msub.required = True
    p = msub.add_parser("set", help="replace the mobiles of a household (none: remove them)")
    p.add_argument("household", metavar="HOUSEHOLD")
    p.add_argument("numbers", nargs="*", metavar="MOBILE[=NAME]")
    p.set_defaults(handler=mobiles_set)

    alarms = subparsers.add_parser("alarms", help="#9 alarms and their timelines")
    alarms.add_argument("--limit", type=int, default=20, help="how many (default %(default)s)")
    alarms.set_defaults(handler=alarms_list)
    asub = alarms.add_subparsers(dest="alarms_command", metavar="ACTION")
    p = asub.add_parser("show", help="the timeline of one alarm")
    p.add_argument("id", type=int)
    p.set_defaults(handler=alarms_show)
    p = asub.add_parser("close", help="close an alarm (a running server stops escalating it)")
    p.add_argument("id", type=int)
    p.add_argument("--note", default="")
    p.set_defaults(handler=alarms_close)
    p = asub.add_parser("check", help="validate alarm.yaml (text prompts included)")
    p.add_argument("file", nargs="?", help="alarm file (default: the configured one)")
    p.set_defaults(handler=alarms_check)


def _registry(context) -> Registry:
    config = alarm_config.load(context.settings.alarm, context.numbers,
                               context.settings.trunks)
    return Registry(context.database(), context.numbers, max_neighbours=config.max_neighbours)


def _refused(error: RegistryError) -> int:
    for problem in error.problems:
        print(problem, file=sys.stderr)
    print(f"nothing was changed ({len(error.problems)} problem"
          f"{'s' if len(error.problems) != 1 else ''})", file=sys.stderr)
    return 1


def _neighbours(context, texts):
    out, bad = [], []
    for text in texts:
        try:
            out.append(parse_neighbour(context.numbers, text))
        except InvalidNumber as e:
            bad.append(f"neighbour {text!r}: {e}")
    return out, bad


def _mobiles(texts):
    out, bad = [], []
    for i, text in enumerate(texts, 1):
        try:
            out.append(mobiles.parse_entry(text))
        except InvalidNumber as e:
            bad.append(f"mobile {i}: {e}")  # the message masks the number
    return out, bad


# Households ------------------------------------------------------------------------

def households_import(args, context) -> int:
    try:
        summary = csvfile.import_csv(_registry(context), args.file)
    except RegistryError as e:
        return _refused(e)
    print(f"{args.file}: {summary}")
    return 0


def households_add(args, context) -> int:
    registry = _registry(context)
    problems, numbers = [], []
    for text in args.number:
        try:
            numbers.append(context.numbers.normalise(text))
        except InvalidNumber as e:
            problems.append(f"number {text!r}: {e}")
    neighbours, bad = _neighbours(context, args.neighbour)
    problems += bad
    mobiles, bad = _mobiles(args.mobile)
    problems += bad
    data = HouseholdData(numbers=numbers, neighbours=neighbours, mobiles=mobiles,
                         **{k: getattr(args, k) for k in ("community", "building", "unit",
                                                          "room", "residents", "notes")})
    try:
        if problems:
            raise RegistryError(problems + registry.problems(data))
        hid = registry.add(data)
    except RegistryError as e:
        return _refused(e)
    print(f"household {hid} added")
    return households_show(_Args(household=str(hid)), context, registry)


def households_show(args, context, registry=None) -> int:
    registry = registry or _registry(context)
    h = registry.find(args.household)
    if h is None:
        print(f"no household {args.household}", file=sys.stderr)
        return 1
    local = context.numbers.dialable
    print(f"Household {h.id}  {h.address}")
    print("  landlines:  " + ", ".join(f"{n.number} ({local(n.number)})" for n in h.numbers))
    if h.residents:
        print(f"  residents:  {h.residents}")
    if h.notes:
        print(f"  notes:      {h.notes}")
    print(f"  neighbours: {len(h.neighbours)}")
    for n in h.neighbours:
        print(f"    {n.position:2d}. {n.number:<16} {local(n.number):<12} {n.name}")
    if h.mobiles:
        # Masked: the export (0600) has them in full.
        print("  mobiles:    " + ", ".join(mobiles.mask(m.number) + (f" {m.name}" if m.name else "")
                                           for m in h.mobiles))
    return 0


def households_list(args, context) -> int:
    households = _registry(context).households()
    for h in households:
        numbers = ",".join(context.numbers.dialable(n.number) for n in h.numbers)
        print(f"{h.id:>6}  {numbers:<12} {h.address:<50} {len(h.neighbours):>2} neighbours"
              f"  {h.residents}")
    print(f"{len(households)} households")
    return 0


def households_export(args, context) -> int:
    registry = _registry(context)
    if args.file:
        # With a BOM: Chinese Excel and WPS read a CSV without one as GBK. Only
        # its owner reads it: residents' names and numbers, their mobiles.
        fd = os.open(args.file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8-sig", newline="") as out:
            count = csvfile.export_csv(registry, out)
        print(f"{args.file}: {count} households")
    else:
        csvfile.export_csv(registry, sys.stdout)
    return 0


def households_remove(args, context) -> int:
    try:
        hid = _registry(context).remove(args.household)
    except RegistryError as e:
        return _refused(e)
    print(f"household {hid} removed")
    return 0


def mobiles_set(args, context) -> int:
    registry = _registry(context)
    found, bad = _mobiles(args.numbers)
    try:
        if bad:
            raise RegistryError(bad)
        hid = registry.set_mobiles(args.household, found)
    except RegistryError as e:
        return _refused(e)
    print(f"household {hid}: {len(found)} mobile{'s' if len(found) != 1 else ''}")
    return 0


def neighbours_set(args, context) -> int:
    registry = _registry(context)
    neighbours, bad = _neighbours(context, args.numbers)
    try:
        if bad:
            raise RegistryError(bad)
        hid = registry.set_neighbours(args.household, neighbours)
    except RegistryError as e:
        return _refused(e)
    return households_show(_Args(household=str(hid)), context, registry)


class _Args:
    def __init__(self, **kw):
        self.__dict__.update(kw)


# Alarms --------------------------------------------------------------------------

def alarms_check(args, context) -> int:
    """
    Check alarm.yaml as the server does, and the text of its prompts as the
    speech engine would say it; a missing engine is a problem here (the
    server would play the stock sounds).
    """
    from alarm.speaking import make_speech
    from switchboard.yamlconf import ConfigError
    path = args.file or context.settings.alarm
    speech = make_speech(context.settings.speech)
    try:
        config = alarm_config.load(path, context.numbers, context.settings.trunks, speech=speech)
    except ConfigError as e:
        for problem in e.problems:
            print(problem)
        print(f"{path}: {len(e.problems)} problem(s), not valid")
        return 1
    texts = len(config.prompts.texts())
    if texts and not speech.available:
        print(f"{path}: {texts} prompt(s) written as text, but {speech.unavailable_reason}: "
              f"the server would play the stock sounds instead")
        return 1
    print(f"{path}: OK: {len(config.stages)} escalation stage(s), {texts} prompt(s) as text")
    return 0


def _when(stored, tz) -> str:
    local = from_utc(stored, tz)
    return local.strftime("%Y-%m-%d %H:%M:%S") if local else "-"


def alarms_list(args, context) -> int:
    with context.database().session() as session:
        rows = session.execute(select(Alarm).order_by(Alarm.id.desc())
                               .limit(max(1, args.limit))).scalars().all()
    tz = context.tz
    print(f"{'ID':>6}  {'opened':<19}  {'status':<9}  {'caller':<16}  where / how it ended")
    for a in rows:
        where = a.address or "unregistered"
        ended = f" - {a.outcome}" if a.outcome else ""
        print(f"{a.id:>6}  {_when(a.opened_at, tz)}  {a.status:<9}  {printable(a.caller_raw or '-'):<16}  "
              f"{where}{ended}")
    if not rows:
        print("no alarms")
    return 0


def alarms_show(args, context) -> int:
    with context.database().session() as session:
        a = session.get(Alarm, args.id)
        if a is None:
            print(f"no alarm {args.id}", file=sys.stderr)
            return 1
        events = session.execute(select(AlarmEvent).where(AlarmEvent.alarm_id == a.id)
                                 .order_by(AlarmEvent.id)).scalars().all()
    tz = context.tz
    print(f"Alarm {a.id}: {a.status}")
    print(f"  caller:    {printable(a.caller_raw or '(no caller ID)')}"
          + (f" ({a.caller_number})" if a.caller_number not in (None, a.caller_raw) else ""))
    print(f"  where:     {a.address or 'unregistered caller'}")
    print(f"  room:      {a.room or room_name(a.id)}")
    print(f"  opened:    {_when(a.opened_at, tz)}")
    if a.confirmed_at:
        print(f"  confirmed: {_when(a.confirmed_at, tz)} "
              f"(+{(a.confirmed_at - a.opened_at).total_seconds():.0f} s)")
    if a.closed_at:
        print(f"  ended:     {_when(a.closed_at, tz)} - {a.outcome}")
    print("  timeline:")
    for e in events:
        local = from_utc(e.at, tz)
        offset = "+%.1fs" % (e.at - a.opened_at).total_seconds()
        who = printable(e.number or "")
        print(f"    {local:%H:%M:%S}.{local.microsecond // 100000}  {offset:>8}  "
              f"{e.kind:<12} {who:<16} {printable(e.detail or '')}".rstrip())
    return 0


def alarms_close(args, context) -> int:
    db = context.database()
    with db.sessions.begin() as session:
        a = session.get(Alarm, args.id)
        if a is None:
            print(f"no alarm {args.id}", file=sys.stderr)
            return 1
        if a.closed_at is not None:
            print(f"alarm {a.id} is already {a.status}: {a.outcome}", file=sys.stderr)
            return 1
        how = "closed by staff" + (f": {args.note}" if args.note else "")
        now = now_utc()
        a.status, a.closed_at, a.outcome = CLOSED, now, how[:200]
        session.add(AlarmEvent(alarm_id=a.id, at=now, kind=CLOSED, detail=how[:300]))
        notify(session, "alarms")
    print(f"alarm {args.id} closed")
    return 0
