"""
The service configuration (C{config/switchboard.yaml}): where to listen,
how to reach Asterisk, the database, the numbering plan and trunks, and
which routing and alarm files to serve. Relative paths are taken from the
folder of the configuration file.

The core's keys are read here; each feature's keys (C{routing} for the
hotline, C{alarm} and C{households} for the alarm, ...) are read by the
feature that declares them (L{switchboard.features.IFeature.read_settings})
into its section: C{settings.section("alarm")}. A section's attributes are
also the settings' own (C{settings.routing}), so the file users write is the
same whichever feature reads which key.

The AMI secret is taken from the first of: the environment variable
C{SWITCHBOARD_AMI_SECRET}; the systemd credential C{ami-secret}
(C{LoadCredential=}, read as C{$CREDENTIALS_DIRECTORY/ami-secret}); the
file named by C{ami.secret_file}; C{ami.secret}. A file that holds a
secret (the configuration with C{ami.secret}, the C{ami.secret_file})
must be readable by its owner only: like ssh with a private key, the
configuration is refused otherwise.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from switchboard import features as features_module
from switchboard import yamlconf
from switchboard.dialing import Dialer
from switchboard.numbers import InvalidNumber, NumberPlan
from switchboard.texting.settings import TextingSettings
from switchboard.texting.settings import read_settings as read_texting

#: The environment variable, and the systemd credential's name, of the AMI secret.
SECRET_VARIABLE = "SWITCHBOARD_AMI_SECRET"
CREDENTIAL_NAME = "ami-secret"

#: The name of the one Asterisk of a configuration without C{asterisks:}.
DEFAULT_SERVER = "default"

_SERVER_NAME = re.compile(r"[A-Za-z0-9_-]{1,32}")

#: The core's keys of switchboard.yaml; the features declare theirs.
_TOP = {"agi", "ami", "asterisks", "database", "numbers", "timezone", "trunks", "hotline_number",
        "journal", "speech", "http", "texting"}


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
    #: Where Asterisk reaches this instance (C{agi://host:port}): the calls it
    #: places (an alarm's legs) are answered here first, where the alarm is
    #: held, whatever order the dialplan's SWITCHBOARD_AGI lists the servers
    #: in. Default: C{agi://LISTEN:PORT} unless it listens on every address.
    advertise: str = ""


@dataclass(frozen=True)
class AMISettings:
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "switchboard"
    secret: str = field(default="", repr=False)
    #: Where the secret came from (for messages; never the secret itself).
    secret_source: str = "none"


@dataclass(frozen=True)
class AsteriskSettings:
    """
    One Asterisk server the switchboard keeps an AMI link to (C{asterisks:}
    in switchboard.yaml; without it, C{ami:} is the one server). C{name} is
    what its dialplan says in C{SWITCHBOARD_ASTERISK} (L{switchboard.ami.servers});
    C{trunks} are this server's own dial templates, by trunk name, over the
    core's C{trunks} (how this Asterisk reaches phones on the others).
    """

    name: str
    ami: AMISettings
    trunks: dict = field(default_factory=dict)


@dataclass(frozen=True)
class SpeechSettings:
    """Where rendered prompts go (Asterisk's sounds folder), in which voice and rate."""

    sounds_dir: str = "/usr/share/asterisk/sounds"
    subdir: str = "switchboard-tts"
    voice: str = "zh"
    rate: int = 8000


@dataclass(frozen=True)
class HTTPSettings:
    """
    The server's HTTP port: C{/metrics} and C{/healthz}. On by default, on
    loopback only; 8573 echoes FastAGI's 4573 and stays clear of
    Asterisk's own HTTP ports (8088, 8089).
    """

    enabled: bool = True
    listen: str = "127.0.0.1"
    port: int = 8573


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
    hotline_number: str
    #: The folder of the local journals (alarms, call records) that keep
    #: what the database has not taken yet.
    journal: str = ""
    speech: SpeechSettings = SpeechSettings()
    http: HTTPSettings = HTTPSettings()
    texting: TextingSettings = TextingSettings()
    #: The Asterisk servers (L{AsteriskSettings}), the first the main one;
    #: empty: C{ami} alone, named C{"default"} (L{servers}).
    asterisks: tuple = ()
    #: Each feature's section: feature name -> what its C{read_settings} returned.
    sections: dict = field(default_factory=dict)

    def section(self, name: str):
        """The section of feature C{name} (KeyError if no such feature was loaded)."""
        return self.sections[name]

    def __getattr__(self, name: str):
        # A feature's setting read as the settings' own (settings.routing).
        if name.startswith("_"):
            raise AttributeError(name)
        for section in self.__dict__.get("sections", {}).values():
            if hasattr(section, name):
                return getattr(section, name)
        raise AttributeError(f"no setting {name!r} in the core or any feature's section")

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def dialer(self) -> Dialer:
        return Dialer(self.numbers, dict(self.trunks))

    @property
    def servers(self) -> tuple:
        """Every Asterisk server, the main one first: C{asterisks}, else C{ami} alone."""
        return self.asterisks or (AsteriskSettings(DEFAULT_SERVER, self.ami),)

    def dialer_for(self, server) -> Dialer:
        """How C{server} (an L{AsteriskSettings}) dials: its own trunks over the core's."""
        return Dialer(self.numbers, {**self.trunks, **dict(server.trunks)})


def load(path: str, environ=None, features=None) -> Settings:
    """
    Read and check C{path}; raise L{yamlconf.ConfigError} naming every problem.

    @param environ: where C{SWITCHBOARD_AMI_SECRET} and
        C{CREDENTIALS_DIRECTORY} are looked up (default: C{os.environ}).
    @param features: the L{features_module.IFeature}s whose sections are
        read (default: the installed ones).
    """
    environ = os.environ if environ is None else environ
    features = features_module.installed() if features is None else features
    data = yamlconf.load(path)
    if data is None:
        data = yamlconf.LocatedDict()
    check = yamlconf.Checker()
    data = check.mapping(data, "", allowed=_TOP.union(
        *(feature.settings_keys for feature in features)))
    base = os.path.dirname(os.path.abspath(path))

    def resolve(p):
        return p if os.path.isabs(p) else os.path.normpath(os.path.join(base, p))

    agi_data = check.mapping(data.get("agi", yamlconf.LocatedDict()), "agi", data.where("agi"),
                             allowed={"listen", "port", "allow", "idle_timeout", "key",
                                      "key_file", "insecure", "env_timeout", "max_sessions",
                                      "max_peer_sessions", "backlog", "advertise"})
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
        advertise=_advertise(check, agi_data),
    )
    ami_data = check.mapping(data.get("ami", yamlconf.LocatedDict()), "ami", data.where("ami"),
                             allowed={"host", "port", "username", "secret", "secret_file"})
    secret, source = _ami_secret(ami_data, path, environ, check, resolve)
    ami = AMISettings(
        host=check.typed(ami_data, "host", str, "ami.host", "127.0.0.1"),
        port=check.typed(ami_data, "port", int, "ami.port", 5038),
        username=check.typed(ami_data, "username", str, "ami.username", "switchboard"),
        secret=secret, secret_source=source,
    )
    asterisks = _asterisks(check, data, ami, path, environ, resolve)
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
    journal = check.typed(data, "journal", str, "journal", "")
    if journal:
        journal = resolve(journal)
    elif database.startswith("sqlite:///") and ":memory:" not in database:
        journal = os.path.join(os.path.dirname(database[len("sqlite:///"):]), "journal")
    else:
        journal = resolve("../var/journal")
    speech = _speech(check, data, resolve)
    http = _http(check, data)
    texting = read_texting(check, data)
    sections = {feature.name: feature.read_settings(data, check, resolve)
                for feature in features}
    check.raise_if_any()
    return Settings(path=os.path.abspath(path), agi=agi, ami=ami, asterisks=asterisks,
                    database=database,
                    numbers=numbers, timezone=timezone, trunks=dict(trunks),
                    hotline_number=hotline, journal=journal, speech=speech, http=http,
                    texting=texting, sections=sections)


def _asterisks(check, data, ami, path, environ, resolve) -> tuple:
    """
    C{asterisks:}, a list of C{{name, host, port, username, secret | secret_file,
    trunks}}: one AMI link each. What a server leaves out is C{ami:}'s (its
    user and secret, whose sources are read as for C{ami:}). Empty: C{()}.
    """
    if "asterisks" not in data:
        return ()
    listed = data["asterisks"]
    if not isinstance(listed, list) or not listed:
        check.add(data.where("asterisks"), "asterisks",
                  "must be a list of servers, each {name, host, port}",
                  "or leave it out: ami: is then the one server")
        return ()
    servers, names = [], set()
    for i, item in enumerate(listed):
        where = listed.where(i) if hasattr(listed, "where") else None
        key = f"asterisks[{i}]"
        m = check.mapping(item, key, where, required=("name",),
                          allowed={"name", "host", "port", "username", "secret", "secret_file",
                                   "trunks"})
        name = str(check.typed(m, "name", (str, int), f"{key}.name", ""))
        if "name" in m and not _SERVER_NAME.fullmatch(name):
            check.add(_where(m, "name"), f"{key}.name",
                      f"{name!r} is not a server name (letters, digits, - and _)", "e.g. a")
        elif name in names:
            check.add(_where(m, "name"), f"{key}.name", f"{name!r} is listed twice")
        names.add(name)
        if "secret" in m or "secret_file" in m:
            secret, source = _ami_secret(m, path, {}, check, resolve)
        else:
            secret, source = ami.secret, ami.secret_source
        trunks = check.typed(m, "trunks", dict, f"{key}.trunks", {})
        for trunk, template in trunks.items():
            if not isinstance(template, str) or "{number}" not in template:
                check.add(_where(trunks, trunk), f"{key}.trunks.{trunk}",
                          "must be a dial template containing {number}",
                          "e.g. PJSIP/{number}@other-asterisk")
        servers.append(AsteriskSettings(name=name, trunks=dict(trunks), ami=AMISettings(
            host=check.typed(m, "host", str, f"{key}.host", ami.host),
            port=check.typed(m, "port", int, f"{key}.port", ami.port),
            username=check.typed(m, "username", str, f"{key}.username", ami.username),
            secret=secret, secret_source=source)))
    return tuple(servers)


def _http(check, data) -> HTTPSettings:
    """C{http: {enabled, listen, port}}: where C{/metrics} and C{/healthz} are served."""
    m = check.mapping(data.get("http", yamlconf.LocatedDict()), "http", data.where("http"),
                      allowed={"enabled", "listen", "port"})
    default = HTTPSettings()
    port = check.typed(m, "port", int, "http.port", default.port)
    if not 0 <= port <= 65535:
        check.add(_where(m, "port"), "http.port", f"{port} is not a TCP port", "e.g. 8573")
        port = default.port
    return HTTPSettings(enabled=check.typed(m, "enabled", bool, "http.enabled", default.enabled),
                        listen=check.typed(m, "listen", str, "http.listen", default.listen),
                        port=port)


def _speech(check, data, resolve) -> SpeechSettings:
    """C{speech: {sounds_dir, subdir, voice, rate}}: prompts rendered from text."""
    m = check.mapping(data.get("speech", yamlconf.LocatedDict()), "speech", data.where("speech"),
                      allowed={"sounds_dir", "subdir", "voice", "rate"})
    default = SpeechSettings()
    rate = check.typed(m, "rate", int, "speech.rate", default.rate)
    if rate not in (8000, 16000):
        check.add(_where(m, "rate"), "speech.rate", f"{rate} Hz is not played as signed linear",
                  "8000 or 16000")
        rate = default.rate
    subdir = check.typed(m, "subdir", str, "speech.subdir", default.subdir)
    if not subdir or "/" in subdir.strip("/") or subdir in (".", ".."):
        check.add(_where(m, "subdir"), "speech.subdir", f"{subdir!r} is not one folder name",
                  "e.g. switchboard-tts")
        subdir = default.subdir
    return SpeechSettings(
        sounds_dir=resolve(check.typed(m, "sounds_dir", str, "speech.sounds_dir",
                                       default.sounds_dir)),
        subdir=subdir.strip("/"), voice=check.typed(m, "voice", str, "speech.voice",
                                                    default.voice), rate=rate)


def _ami_secret(ami_data, path, environ, check, resolve) -> tuple[str, str]:
    """The AMI secret and where it came from (see the module's docstring)."""
    inline = str(check.typed(ami_data, "secret", (str, int), "ami.secret", ""))
    if inline:
        # Whichever source wins, this file holds a secret.
        _check_private(path, ami_data.where("secret"), "ami.secret", check)
    if environ.get(SECRET_VARIABLE):
        return environ[SECRET_VARIABLE], f"environment {SECRET_VARIABLE}"
    credentials = environ.get("CREDENTIALS_DIRECTORY")
    if credentials:
        credential = os.path.join(credentials, CREDENTIAL_NAME)
        if os.path.exists(credential):
            # systemd made it readable by this service's user only.
            secret = _read_secret(credential, None, "ami.secret", check)
            return secret, f"systemd credential {credential}"
    secret_file = check.typed(ami_data, "secret_file", str, "ami.secret_file", None)
    if secret_file:
        where = ami_data.where("secret_file")
        secret_file = resolve(secret_file)
        if _check_private(secret_file, where, "ami.secret_file", check):
            return _read_secret(secret_file, where, "ami.secret_file", check), secret_file
        return "", secret_file
    return inline, (os.path.abspath(path) if inline else "none")


def _check_private(path, where, key, check) -> bool:
    """Whether C{path} exists and is readable by its owner only; a problem if not."""
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        check.add(where, key, f"cannot read {path}: {e.strerror}")
        return False
    if mode & 0o077:
        check.add(where, key,
                  f"{path} holds the AMI secret and is open to other users "
                  f"(mode {mode & 0o777:04o})",
                  f"chmod 600 {path}, or give the secret in {SECRET_VARIABLE} or the systemd "
                  f"credential {CREDENTIAL_NAME}")
        return False
    return True


def _read_secret(path, where, key, check) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            secret = f.read().strip("\r\n")
    except (OSError, UnicodeDecodeError) as e:
        check.add(where, key, f"cannot read the AMI secret from {path}: {e}")
        return ""
    if not secret:
        check.add(where, key, f"{path} is empty: no AMI secret in it")
    return secret


_AGI_URL = re.compile(r"agi://[A-Za-z0-9.:\[\]_-]+(:[0-9]{1,5})?")


def _advertise(check, agi_data) -> str:
    """C{agi.advertise}, or C{agi://LISTEN:PORT} when it listens on one address."""
    listen = agi_data.get("listen", "127.0.0.1")
    port = agi_data.get("port", 4573)
    default = "" if str(listen) in ("", "0.0.0.0", "::") else f"agi://{listen}:{port}"
    url = check.typed(agi_data, "advertise", str, "agi.advertise", default)
    if url and not _AGI_URL.fullmatch(url):
        check.add(_where(agi_data, "advertise"), "agi.advertise",
                  f"{url!r} is not a FastAGI address", "e.g. agi://10.0.0.5:4573")
        return default
    return url


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
