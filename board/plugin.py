"""
The duty board's declaration (L{switchboard.features.IFeature}), named by the
entry point C{switchboard.features: board}. It serves no call: it brings the
staff accounts (its table, its C{switchboard staff} commands) and the page
the server's HTTP port serves at C{/board/}.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from zope.interface import implementer

from switchboard import yamlconf
from switchboard.features import IFeature

LANGUAGES = ("zh", "en")


@dataclass(frozen=True)
class BoardSettings:
    """C{board:} in switchboard.yaml (all optional)."""

    #: The page's language unless the browser asks (C{?lang=en}).
    language: str = "zh"
    #: How long a login lasts (a duty shift and some).
    session_hours: float = 14.0
    #: Failed logins of a name (or from an address) before it is locked out...
    lockout_attempts: int = 5
    #: ... for this long (and within this long, the failures counted).
    lockout_minutes: float = 15.0
    #: Cookies only over HTTPS: set it behind a TLS reverse proxy.
    secure_cookies: bool = False
    #: Reverse proxies whose X-Forwarded-For is believed (for the lockout by address).
    trusted_proxies: tuple = field(default_factory=tuple)


@implementer(IFeature)
class Board:
    name = "board"
    agi_scripts = ()
    ami_events = ()
    migrations = "board.migrations"
    settings_keys = ("board",)
    dialplan_contexts = ()

    def read_settings(self, data, check, resolve) -> BoardSettings:
        default = BoardSettings()
        m = check.mapping(data.get("board", yamlconf.LocatedDict()), "board",
                          data.where("board"),
                          allowed={"language", "session_hours", "lockout_attempts",
                                   "lockout_minutes", "secure_cookies", "trusted_proxies"})
        language = check.typed(m, "language", str, "board.language", default.language)
        if language not in LANGUAGES:
            check.add(m.where("language"), "board.language", f"{language!r} is not offered",
                      "zh or en")
            language = default.language

        def positive(name, types, what):
            value = check.typed(m, name, types, f"board.{name}", getattr(default, name), what)
            if value <= 0:
                check.add(m.where(name), f"board.{name}", "must be more than 0")
                return getattr(default, name)
            return value

        proxies = check.typed(m, "trusted_proxies", list, "board.trusted_proxies", [],
                              "a list of addresses")
        if not all(isinstance(p, str) for p in proxies):
            check.add(m.where("trusted_proxies"), "board.trusted_proxies",
                      "must be a list of addresses", "e.g. [127.0.0.1]")
            proxies = []
        return BoardSettings(
            language=language,
            session_hours=positive("session_hours", (int, float), "a number of hours"),
            lockout_attempts=positive("lockout_attempts", int, "a whole number"),
            lockout_minutes=positive("lockout_minutes", (int, float), "a number of minutes"),
            secure_cookies=check.typed(m, "secure_cookies", bool, "board.secure_cookies",
                                       default.secure_cookies),
            trusted_proxies=tuple(proxies))

    def add_commands(self, subparsers) -> None:
        from board import cli
        cli.register(subparsers)

    def make_service(self, core):
        from board.service import BoardService
        return BoardService(core.settings.section(self.name), core.database, core.services,
                            core.settings.timezone, reactor=core.reactor)


feature = Board()
