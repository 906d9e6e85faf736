"""
The service configuration (C{config/switchboard.yaml}): where to listen,
how to reach Asterisk, the database, the numbering plan and trunks, and
which routing and alarm files to serve. Relative paths are taken from the
folder of the configuration file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from switchboard import yamlconf
from switchboard.dialing import Dialer
from switchboard.numbers import InvalidNumber, NumberPlan

_TOP = {"agi", "ami", "database", "numbers", "timezone", "trunks", "routing", "alarm",
        "hotline_number", "households"}


@dataclass(frozen=True)
class AGISettings:
    listen: str = "127.0.0.1"
    port: int = 4573
    allow: tuple = ("127.0.0.1", "::1")
    idle_timeout: float = 300.0
    #: The shared key the dialplan passes (C{?key=${SWITCHBOARD_KEY}}):
    #: from C{SWITCHBOARD_AGI_KEY}, C{agi.key_file} or C{agi.key}.
    key: str = field(default="", repr=False)
    #: Serve FastAGI without a key (any local process may raise an alarm).
    insecure: bool = False
    env_timeout: float = 10.0
    max_sessions: int = 2000
    max_peer_sessions: int = 1000
    backlog: int = 1024


@dataclass(frozen=True)
class AMISettings:
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "switchboard"
    secret: str = field(default="", repr=False)


@dataclass(frozen=True)
class Settings:
    """Everything switchboard.yaml says, checked."""

    path: str
    agi: AGISettings
    ami: AMISettings
    database: str
    numbers: NumberPlan
    timezone: str
    trunks: dict
    routing: str
    alarm: str
    hotline_number: str
    households: str | None = None

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def dialer(self) -> Dialer:
        return Dialer(self.numbers, dict(self.trunks))


def load(path: str) -> Settings:
    """Read and check C{path}; raise L{yamlconf.ConfigError} naming every problem."""
    data = yamlconf.load(path)
    if data is None:
        data = yamlconf.LocatedDict()
    check = yamlconf.Checker()
    data = check.mapping(data, "", allowed=_TOP)
    base = os.path.dirname(os.path.abspath(path))

    def resolve(p):
        return p if os.path.isabs(p) else os.path.normpath(os.path.join(base, p))

    agi_data = check.mapping(data.get("agi", yamlconf.LocatedDict()), "agi", data.where("agi"),
                             allowed={"listen", "port", "allow", "idle_timeout", "key",
                                      "key_file", "insecure", "env_timeout", "max_sessions",
                                      "max_peer_sessions", "backlog"})
    allow = check.typed(agi_data, "allow", list, "agi.allow", ["127.0.0.1", "::1"])
    agi = AGISettings(
        listen=check.typed(agi_data, "listen", str, "agi.listen", "127.0.0.1"),
        port=check.typed(agi_data, "port", int, "agi.port", 4573),
        allow=tuple(str(a) for a in allow),
        idle_timeout=float(check.typed(agi_data, "idle_timeout", (int, float), "agi.idle_timeout", 300)),
        key=_agi_key(check, agi_data, resolve),
        insecure=check.typed(agi_data, "insecure", bool, "agi.insecure", False),
        env_timeout=float(check.typed(agi_data, "env_timeout", (int, float), "agi.env_timeout", 10)),
        max_sessions=check.typed(agi_data, "max_sessions", int, "agi.max_sessions", 2000),
        max_peer_sessions=check.typed(agi_data, "max_peer_sessions", int,
                                      "agi.max_peer_sessions", 1000),
        backlog=check.typed(agi_data, "backlog", int, "agi.backlog", 1024),
    )
    ami_data = check.mapping(data.get("ami", yamlconf.LocatedDict()), "ami", data.where("ami"),
                             allowed={"host", "port", "username", "secret"})
    ami = AMISettings(
        host=check.typed(ami_data, "host", str, "ami.host", "127.0.0.1"),
        port=check.typed(ami_data, "port", int, "ami.port", 5038),
        username=check.typed(ami_data, "username", str, "ami.username", "switchboard"),
        secret=os.environ.get("SWITCHBOARD_AMI_SECRET")
        or str(check.typed(ami_data, "secret", (str, int), "ami.secret", "")),
    )
    numbers_data = check.mapping(data.get("numbers", yamlconf.LocatedDict()), "numbers",
                                 data.where("numbers"), allowed={"region", "area_code"})
    numbers = NumberPlan(
        region=check.typed(numbers_data, "region", str, "numbers.region", "CN"),
        area_code=str(check.typed(numbers_data, "area_code", (str, int), "numbers.area_code", "")),
    )
    timezone = check.typed(data, "timezone", str, "timezone", "Asia/Shanghai")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        check.add(data.where("timezone"), "timezone", f"unknown time zone {timezone!r}",
                  "e.g. Asia/Shanghai")
        timezone = "Asia/Shanghai"
    trunks = check.typed(data, "trunks", dict, "trunks", {"default": "PJSIP/{number}"})
    for name, template in trunks.items():
        if not isinstance(template, str) or "{number}" not in template:
            check.add(trunks.where(name) if hasattr(trunks, "where") else None, f"trunks.{name}",
                      "must be a dial template containing {number}", "e.g. PJSIP/{number}@trunk")
    if "default" not in trunks:
        check.add(data.where("trunks"), "trunks", "missing the 'default' trunk")
    hotline = str(check.typed(data, "hotline_number", (str, int), "hotline_number", ""))
    if hotline:
        try:
            numbers.normalise(hotline)
        except InvalidNumber as e:
            if not hotline.isdigit():
                check.add(data.where("hotline_number"), "hotline_number", str(e))
    database = check.typed(data, "database", str, "database", "sqlite:///../var/switchboard.db")
    if database.startswith("sqlite:///") and not database.startswith("sqlite:////") \
            and ":memory:" not in database:
        database = "sqlite:///" + resolve(database[len("sqlite:///"):])
    routing = resolve(check.typed(data, "routing", str, "routing", "routing.yaml"))
    alarm = resolve(check.typed(data, "alarm", str, "alarm", "alarm.yaml"))
    households = check.typed(data, "households", str, "households", None)
    check.raise_if_any()
    return Settings(path=os.path.abspath(path), agi=agi, ami=ami, database=database,
                    numbers=numbers, timezone=timezone, trunks=dict(trunks), routing=routing,
                    alarm=alarm, hotline_number=hotline,
                    households=resolve(households) if households else None)


def _agi_key(check, agi_data, resolve) -> str:
    """
    The FastAGI key: C{SWITCHBOARD_AGI_KEY}, else the first line of
    C{agi.key_file}, else C{agi.key}; C{""} when none is set.
    """
    from_env = os.environ.get("SWITCHBOARD_AGI_KEY", "").strip()
    if from_env:
        return from_env
    key_file = check.typed(agi_data, "key_file", str, "agi.key_file", "")
    if key_file:
        try:
            with open(resolve(key_file), encoding="utf-8") as f:
                key = f.readline().strip()
        except OSError as e:
            check.add(_where(agi_data, "key_file"), "agi.key_file",
                      f"cannot read {key_file!r}: {e.strerror}")
            return ""
        if not key:
            check.add(_where(agi_data, "key_file"), "agi.key_file", f"{key_file!r} is empty")
        return key
    return str(check.typed(agi_data, "key", (str, int), "agi.key", ""))


def _where(mapping, name):
    return mapping.where(name) if hasattr(mapping, "where") else None
