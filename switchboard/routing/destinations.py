"""
The destinations section of a routing file: one reader per kind.
"""

from __future__ import annotations

from switchboard.routing.fields import as_list, key_where, where
from switchboard.routing.model import (
    ANNOUNCEMENT,
    DEPARTMENT,
    KINDS,
    MENU,
    OPERATOR,
    RINGING,
    SERVICE,
    STRATEGIES,
    VOICEMAIL,
)
from switchboard.yamlconf import _suggest

_COMMON = ("type", "label", "code")
_RINGS = ("ring_timeout", "trunk", "hours", "closed", "overflow")
KIND_KEYS = {
    DEPARTMENT: _COMMON + _RINGS + ("phones", "strategy"),
    OPERATOR: _COMMON + _RINGS + ("phones", "strategy"),
    SERVICE: _COMMON + _RINGS + ("number",),
    VOICEMAIL: _COMMON + ("mailbox", "options", "greeting"),
    ANNOUNCEMENT: _COMMON + ("sound",),
    MENU: _COMMON + ("menu",),
}
_ALL_DESTINATION_KEYS = sorted({k for keys in KIND_KEYS.values() for k in keys})


class DestinationSection:
    """Reads one entry of C{destinations} (part of the validator)."""

    def destination(self, name, value, parent, key):
        path = f"destinations.{name}"
        self.locations[name] = (parent.where(key), path)
        self.declared.add(name)
        m = self.check.mapping(value, path, parent.where(key), required=("type",))
        kind = self.read.text(m, "type", f"{path}.type")
        if kind is not None and kind not in KINDS:
            self.check.add(m.where("type"), f"{path}.type", f"unknown destination type '{kind}'",
                           _suggest(kind, KINDS))
            kind = None
        allowed = KIND_KEYS.get(kind, _ALL_DESTINATION_KEYS)
        for k in m:
            if k not in allowed:
                hint = (f"a {kind} destination has: {', '.join(allowed)}"
                        if k in _ALL_DESTINATION_KEYS else _suggest(str(k), allowed))
                self.check.add(key_where(m, k), f"{path}.{k}", "unknown key", hint)
        if kind is None:
            return
        r = self.read
        fields = dict(name=name, kind=kind, label=r.text(m, "label", f"{path}.label", name))
        if "code" in m:
            code = m["code"]
            code = str(code) if isinstance(code, int) and not isinstance(code, bool) else code
            if (not isinstance(code, str) or not code.isascii() or not code.isdigit()
                    or not 1 <= len(code) <= 8):
                self.check.add(m.where("code"), f"{path}.code", f"{code!r} is not a dialling code",
                               "digits only, e.g. \"801\"")
            else:
                fields["code"] = code
                self.codes.append((code, name, m.where("code"), f"{path}.code"))
        if kind in RINGING:
            fields.update(self.ringing(m, path, kind))
        elif kind == VOICEMAIL:
            mailbox = m.get("mailbox")
            mailbox = str(mailbox) if isinstance(mailbox, int) else mailbox
            if "mailbox" not in m:
                self.check.add(m.location, path, "missing required key 'mailbox'",
                               "e.g. mailbox: 100@switchboard")
            elif not isinstance(mailbox, str) or not _mailbox_ok(mailbox):
                self.check.add(m.where("mailbox"), f"{path}.mailbox",
                               f"{mailbox!r} is not a mailbox", "box or box@context, e.g. 100@switchboard")
            else:
                fields["mailbox"] = mailbox if "@" in mailbox else f"{mailbox}@{self.voicemail_context}"
            # With a greeting of the community's own (Mandarin), VoiceMail
            # skips its own English greeting and instructions: just the beep.
            greeting = r.sound(m, "greeting", f"{path}.greeting")
            options = r.text(m, "options", f"{path}.options", "s" if greeting else "u")
            fields["greeting"] = greeting
            if not options.isalpha():
                self.check.add(m.where("options"), f"{path}.options", f"'{options}' are not "
                               "VoiceMail options", "letters such as u (unavailable) or b (busy)")
            fields["voicemail_options"] = options
        elif kind == ANNOUNCEMENT:
            fields["sound"] = r.sound(m, "sound", f"{path}.sound")
            if "sound" not in m:
                self.check.add(m.location, path, "missing required key 'sound'")
        elif kind == MENU:
            fields["menu"] = self.ref(r.name(m, "menu", f"{path}.menu"), m.where("menu"),
                                      f"{path}.menu", menus_only=True)
            if "menu" not in m:
                self.check.add(m.location, path, "missing required key 'menu'")
        self.destinations[name] = fields

    def ringing(self, m, path, kind) -> dict:
        r = self.read
        if kind == SERVICE:
            if "number" not in m:
                self.check.add(m.location, path, "missing required key 'number'",
                               "the outside number to dial, e.g. 0591-87650041")
                raw = []
            else:
                raw = [(m["number"], m.where("number"), f"{path}.number")]
        else:
            phones = m.get("phones")
            if "phones" not in m or phones in (None, []):
                self.check.add(m.where("phones") if "phones" in m else m.location, f"{path}.phones",
                               "a destination that rings needs at least one phone",
                               "phones: [0591-87650001]")
                phones = []
            items = as_list(phones)
            raw = [(v, where(items, i) if isinstance(phones, list) else m.where("phones"),
                    f"{path}.phones[{i}]" if isinstance(phones, list) else f"{path}.phones")
                   for i, v in enumerate(items)]
        targets, seen = [], {}
        for value, location, item_path in raw:
            target = r.phone(value, location, item_path)
            if target is None:
                continue
            if target in seen:
                self.check.add(location, item_path, f"{target} is listed twice (as {seen[target]})")
                continue
            seen[target] = item_path.rsplit(".", 1)[-1]
            targets.append(target)
        trunk = r.text(m, "trunk", f"{path}.trunk", "default")
        if self.trunks is not None and "trunk" in m and trunk not in self.trunks:
            self.check.add(m.where("trunk"), f"{path}.trunk", f"no trunk named '{trunk}'",
                           _suggest(trunk, sorted(self.trunks)))
        hours = r.hours(m["hours"], m.where("hours"), f"{path}.hours") if "hours" in m else None
        closed = self.ref(r.name(m, "closed", f"{path}.closed"), m.where("closed"), f"{path}.closed")
        if closed is not None:
            self.closed_at[m_name(path)] = (m.where("closed"), f"{path}.closed")
        if closed is not None and "hours" not in m:
            self.check.add(m.where("closed"), f"{path}.closed", "never used: no hours are given",
                           "add hours, or remove closed")
        own = r.names(m, "overflow", f"{path}.overflow")
        if own is not None:
            for n, loc, p in own:
                self.ref(n, loc, p)
            self.own_overflow[m_name(path)] = (own, m.where("overflow"))
        return dict(targets=tuple(targets),
                    strategy=r.choice(m, "strategy", f"{path}.strategy", self.strategy, STRATEGIES),
                    ring_timeout=r.whole(m, "ring_timeout", f"{path}.ring_timeout",
                                         self.ring_timeout, 5, 300),
                    trunk=trunk, hours=hours, closed=closed)


def m_name(path: str) -> str:
    return path.split(".", 1)[1]


def _mailbox_ok(text: str) -> bool:
    box, _, context = text.partition("@")
    ok = all(c.isalnum() or c in "_-." for c in box) and box
    return bool(ok) and all(c.isalnum() or c in "_-." for c in context)
