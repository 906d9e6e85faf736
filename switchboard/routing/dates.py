"""
The calendar section of a routing file (holidays and working-day
exceptions), and the location of dates YAML cannot build.
"""

from __future__ import annotations

from datetime import timedelta

from switchboard import yamlconf
from switchboard.routing.fields import where
from switchboard.routing.schedule import Calendar, Holiday, WorkingDay, parse_days


class CalendarSection:
    """Reads C{holidays} and C{working_days} (part of the validator)."""

    def calendar(self, data) -> Calendar:
        holidays, days = [], {}
        for i, item in enumerate(self._list(data, "holidays")):
            path, location = f"holidays[{i}]", data["holidays"].where(i)
            if isinstance(item, dict):
                item = self.check.mapping(item, path, location, allowed=("date", "to", "name"),
                                          required=("date",))
                first = self.read.date(item["date"], item.where("date"), f"{path}.date") \
                    if "date" in item else None
                last = self.read.date(item["to"], item.where("to"), f"{path}.to") \
                    if "to" in item else first
                name = self.read.text(item, "name", f"{path}.name", "holiday")
            else:
                first = last = self.read.date(item, location, path)
                name = "holiday"
            if first is None or last is None:
                continue
            if last < first:
                self.check.add(where(item, "to"), f"{path}.to", f"{last} is before {first}",
                               "'to' is the last day of the holiday")
                continue
            if (last - first).days > 366:
                self.check.add(where(item, "to"), f"{path}.to", "a holiday longer than a year",
                               "check the year of 'to'")
                continue
            day = first
            while day <= last:
                if day in days:
                    other, line = days[day]
                    self.check.add(location, path, f"{day} is already in holiday {other} "
                                   f"(line {line})", "list each day once")
                    break
                days[day] = (name, location.line if location else "?")
                day += timedelta(days=1)
            holidays.append(Holiday(first, last, name))
        working, seen = [], {}
        for i, item in enumerate(self._list(data, "working_days")):
            path, location = f"working_days[{i}]", data["working_days"].where(i)
            weekday = 0
            if isinstance(item, dict):
                item = self.check.mapping(item, path, location, allowed=("date", "name", "as"),
                                          required=("date",))
                day = self.read.date(item["date"], item.where("date"), f"{path}.date") \
                    if "date" in item else None
                name = self.read.text(item, "name", f"{path}.name", "working day")
                as_day = self.read.text(item, "as", f"{path}.as")
                if as_day is not None:
                    try:
                        (weekday,) = parse_days(as_day)
                    except ValueError:
                        self.check.add(item.where("as"), f"{path}.as",
                                       f"'{as_day}' is not one weekday", "mon, tue, ... fri")
            else:
                day, name = self.read.date(item, location, path), "working day"
            if day is None:
                continue
            if day.weekday() < 5:
                self.check.add(location, path, f"{day} is a {day.strftime('%A')}, a working day "
                               "anyway", "working_days lists weekend days that are working days")
            elif day in days:
                self.check.add(location, path, f"{day} is also a holiday ({days[day][0]}, line "
                               f"{days[day][1]})", "a day is either a holiday or a working day")
            elif day in seen:
                self.check.add(location, path, f"{day} is listed twice (line {seen[day]})")
            else:
                seen[day] = location.line if location else "?"
                working.append(WorkingDay(day, name, weekday))
        return Calendar(tuple(holidays), tuple(working))

    def _list(self, data, key):
        if key not in data:
            return []
        if not isinstance(data[key], list):
            self.check.add(data.where(key), key, "must be a list",
                           "one '- ' item per line")
            return []
        return data[key]


def bad_scalars(text: str, path: str) -> list:
    """
    Locate the values YAML recognises but cannot build (the date
    2026-02-30): the YAML loader reports them without a place.
    """
    import yaml
    problems = []
    constructor = yaml.constructor.SafeConstructor()

    def walk(node, key):
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                walk(v, f"{key}.{k.value}" if key else str(k.value))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, f"{key}[{i}]")
        elif node.tag == "tag:yaml.org,2002:timestamp":
            try:
                constructor.construct_yaml_timestamp(node)
            except ValueError as e:
                mark = node.start_mark
                problems.append(yamlconf.Problem(
                    yamlconf.Location(path, mark.line + 1, mark.column + 1), key,
                    f"'{node.value}' is not a date ({e})", "write YYYY-MM-DD, e.g. 2026-10-01"))

    walk(yaml.compose(text, Loader=yaml.SafeLoader), "")
    return problems or [yamlconf.Problem(yamlconf.Location(path, 1, 1), "",
                                         "a value cannot be read", "check the dates")]
