"""
The alarm configuration (C{alarm.yaml}): how long neighbours' phones ring,
how the alarm escalates when nobody confirms, and which prompts are played.

Like the routing file, a refused file is reported with every problem, each
with its file:line:column, key path and what would be right
(L{switchboard.yamlconf.ConfigError}).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from switchboard import yamlconf
from switchboard.dialing import is_channel
from switchboard.numbers import InvalidNumber, NumberPlan

_SOUND = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]*")  # fullmatch: "$" allows "\n"
_UNSAFE_NAME = re.compile(r"[\r\n\0\"<>]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
#: Characters of a prompt's text (the speech engine may allow fewer).
MAX_TEXT = 500

_TOP = {"neighbours", "escalation", "caller", "responder", "caller_id_name",
        "originate_retry", "prompts", "notify"}
#: What an alarm's text messages (C{notify.when}) can be sent for.
NOTIFY_EVENTS = ("opened", "escalated", "confirmed", "ended")


@dataclass(frozen=True)
class AlarmPrompt:
    """
    One prompt of the alarm as staff wrote it: sound names (a recording, or
    Asterisk's stock sounds), text to say, or both.

    C{sounds} are staff's recording when C{recorded} (it wins over the
    text), else the stock sounds played when the text has no rendering
    yet (or no text was given). L{play_list} never renders: it is called
    while a caller waits.
    """

    sounds: tuple
    text: str | None = None
    recorded: bool = False
    #: Where the text is written (for the problems of rendering it).
    where: yamlconf.Location | None = field(default=None, compare=False, repr=False)

    def play_list(self, speech=None) -> list:
        """The sound names to play now: the recording, else the rendered text, else stock."""
        if self.text and not self.recorded and speech is not None:
            name = speech.sound_name(self.text)
            if name:
                return [name]
        return list(self.sounds)


def _stock(*sounds) -> AlarmPrompt:
    return field(default_factory=lambda: AlarmPrompt(tuple(sounds)))


@dataclass(frozen=True)
class Prompts:
    """What is played at each step (L{AlarmPrompt}); stock English sounds by default."""

    caller_hold: AlarmPrompt = _stock("one-moment-please")
    caller_cancelled: AlarmPrompt = _stock("cancelled", "goodbye")
    responder_intro: AlarmPrompt = _stock("beep", "beep", "vm-theperson")
    responder_location: AlarmPrompt = _stock("location")
    responder_separator: AlarmPrompt = _stock("letters/dash")
    responder_unregistered: AlarmPrompt = _stock("vm-from-phonenumber")
    responder_ask: AlarmPrompt = _stock("vm-press", "digits/1")
    responder_coming: AlarmPrompt = _stock("auth-thankyou")
    responder_declined: AlarmPrompt = _stock("goodbye")
    responder_unconfirmed: AlarmPrompt = _stock("goodbye")
    responder_cancelled: AlarmPrompt = _stock("cancelled", "goodbye")

    def items(self) -> list:
        """(name, L{AlarmPrompt}) in declaration order."""
        return [(name, getattr(self, name)) for name in self.__dataclass_fields__]

    def all(self) -> set:
        """Every sound name that may be played (recordings and stock fallbacks)."""
        return {s for _, prompt in self.items() for s in prompt.sounds}

    def texts(self) -> list:
        """Every text to render, in declaration order, each once."""
        out = []
        for _, prompt in self.items():
            if prompt.text and not prompt.recorded and prompt.text not in out:
                out.append(prompt.text)
        return out

    @property
    def spoken(self) -> bool:
        """Whether any prompt is written as text (the alarm then speaks Mandarin)."""
        return any(p.text for _, p in self.items())


@dataclass(frozen=True)
class Stage:
    """
    One escalation stage: ring C{phones} (E.164 numbers or explicit channels)
    C{after} seconds after the alarm was raised if nobody has confirmed.
    """

    name: str
    after: float
    phones: tuple
    trunk: str = "default"


@dataclass(frozen=True)
class Notify:
    """
    Who is texted about alarms (C{phones}: numbers or channels), C{when}
    (which of L{NOTIFY_EVENTS}), and whether the household's notes for responders
    go in the text (off by default: a text may be read on a shared phone).
    """

    phones: tuple = ()
    when: tuple = ("opened", "escalated")
    notes: bool = False


@dataclass(frozen=True)
class AlarmConfig:
    """Everything alarm.yaml says, checked. Times in seconds."""

    stages: tuple
    max_neighbours: int = 10
    ring_timeout: float = 30.0
    confirm_within: float = 45.0
    retry_unanswered: int = 1
    retry_after: float = 10.0
    neighbour_trunk: str = "default"
    repeat_every: float = 120.0
    cancel_key: str = "*"
    answer_attempts: int = 3
    digit_timeout: float = 5.0
    caller_id_name: str = "ALARM"
    originate_retry: float = 2.0
    prompts: Prompts = field(default_factory=Prompts)
    notify: Notify = field(default_factory=Notify)

    @property
    def duty(self) -> Stage:
        """The first stage: where an unregistered caller or a recovered alarm goes at once."""
        return self.stages[0]


#: What parses alarm.yaml for a running server, in a child process
#: (L{switchboard.routing.parsing.ChildProcessParser}).
LOADER = "alarm.config:load_bytes"


def load(path: str, numbers: NumberPlan, trunks=None, speech=None) -> AlarmConfig:
    """
    Read (within L{yamlconf.MAX_FILE_BYTES}) and check C{path}; raise
    L{yamlconf.ConfigError} naming every problem.
    """
    return check(yamlconf.load(path), numbers, trunks, path, speech)


def load_bytes(raw: bytes, path: str, numbers: NumberPlan, trunks=None) -> AlarmConfig:
    """Check C{raw}, the bytes of C{path} (what the child process parsing a reload runs)."""
    return check(yamlconf.loads(yamlconf.decode(raw, path), path), numbers, trunks, path)


def loads(text: str, numbers: NumberPlan, trunks=None, path: str = "<string>",
          speech=None) -> AlarmConfig:
    return check(yamlconf.loads(text, path), numbers, trunks, path, speech)


def check(data, numbers: NumberPlan, trunks=None, path: str = "<string>",
          speech=None) -> AlarmConfig:
    """
    Validate a loaded document; C{trunks}, if given, are the known trunk
    names. With C{speech} (a L{switchboard.speech.Speech}), text it cannot
    render is a problem too (what C{switchboard alarms check} reports; the
    server logs those and plays the stock sounds instead).
    """
    c = _Check(numbers, trunks, path)
    config = c.document(data)
    if speech is not None and not c.checker.problems:
        c.checker.problems += text_problems(config, speech)
    # In file order, as staff read the file.
    c.checker.problems.sort(key=lambda p: (p.location.line, p.location.column)
                            if p.location else (0, 0))
    c.checker.raise_if_any()
    return config


class _Check:
    def __init__(self, numbers, trunks, path):
        self.checker = yamlconf.Checker()
        self.numbers = numbers
        self.trunks = set(trunks) if trunks is not None else None
        self.path = path

    def add(self, where, key, message, hint=""):
        self.checker.add(where, key, message, hint)

    def document(self, data) -> AlarmConfig:
        if data is None:
            data = yamlconf.LocatedDict()
            data.location = yamlconf.Location(self.path, 1, 1)
        data = self.checker.mapping(data, "", allowed=_TOP, required=("escalation",))
        defaults = AlarmConfig(stages=())
        kw = {}

        n = self.section(data, "neighbours", {"max", "ring_timeout", "confirm_within",
                                              "retry_unanswered", "retry_after", "trunk"})
        kw["max_neighbours"] = self.whole(n, "max", "neighbours.max",
                                          defaults.max_neighbours, 1, 50)
        kw["ring_timeout"] = self.seconds(n, "ring_timeout", "neighbours.ring_timeout",
                                          defaults.ring_timeout, 5, 300)
        kw["confirm_within"] = self.seconds(n, "confirm_within", "neighbours.confirm_within",
                                            defaults.confirm_within, 5, 600)
        kw["retry_unanswered"] = self.whole(n, "retry_unanswered", "neighbours.retry_unanswered",
                                            defaults.retry_unanswered, 0, 3)
        kw["retry_after"] = self.seconds(n, "retry_after", "neighbours.retry_after",
                                         defaults.retry_after, 0, 600)
        kw["neighbour_trunk"] = self.trunk(n, "neighbours.trunk")

        e = self.section(data, "escalation", {"stages", "repeat_every"})
        kw["repeat_every"] = self.seconds(e, "repeat_every", "escalation.repeat_every",
                                          defaults.repeat_every, 0, 3600)
        kw["stages"] = self.stages(e)

        caller = self.section(data, "caller", {"cancel_key"})
        key = self.checker.typed(caller, "cancel_key", str, "caller.cancel_key", "*")
        if key not in tuple("0123456789*#"):
            self.add(caller.where("cancel_key"), "caller.cancel_key", f"{key!r} is not a phone key",
                     "one of 0-9, * or #")
            key = "*"
        kw["cancel_key"] = key

        r = self.section(data, "responder", {"attempts", "digit_timeout"})
        kw["answer_attempts"] = self.whole(r, "attempts", "responder.attempts",
                                           defaults.answer_attempts, 1, 10)
        kw["digit_timeout"] = self.seconds(r, "digit_timeout", "responder.digit_timeout",
                                           defaults.digit_timeout, 1, 60)

        name = self.checker.typed(data, "caller_id_name", str, "caller_id_name", "ALARM")
        if _UNSAFE_NAME.search(name) or len(name) > 40:
            self.add(data.where("caller_id_name"), "caller_id_name",
                     "must be at most 40 characters without quotes, < > or line breaks")
            name = "ALARM"
        kw["caller_id_name"] = name
        kw["originate_retry"] = self.seconds(data, "originate_retry", "originate_retry",
                                             defaults.originate_retry, 0.1, 60)
        kw["prompts"] = self.prompts(data)
        kw["notify"] = self.notify(data)
        return AlarmConfig(**kw)

    def notify(self, data) -> Notify:
        # "when", not "on": YAML 1.1 reads a key on as True.
        m = self.section(data, "notify", {"text", "when", "notes"})
        phones = []
        listed = self.checker.typed(m, "text", list, "notify.text", [])
        for j, value in enumerate(listed):
            phone = self.phone(value, listed.where(j), f"notify.text[{j}]")
            if phone:
                phones.append(phone)
        default = Notify()
        when = self.checker.typed(m, "when", list, "notify.when", list(default.when))
        events = []
        for j, value in enumerate(when):
            if value not in NOTIFY_EVENTS:
                self.add(when.where(j) if hasattr(when, "where") else m.where("when"),
                         f"notify.when[{j}]", f"{value!r} is not an alarm event",
                         "one of: " + ", ".join(NOTIFY_EVENTS))
            elif value not in events:
                events.append(value)
        notes = self.checker.typed(m, "notes", bool, "notify.notes", default.notes)
        return Notify(phones=tuple(phones), when=tuple(events), notes=notes)

    def section(self, data, name, allowed):
        if name not in data:
            empty = yamlconf.LocatedDict()
            empty.location = data.location
            return empty
        return self.checker.mapping(data[name], name, data.where(name), allowed=allowed)

    def whole(self, mapping, name, key, default, low, high):
        value = self.checker.typed(mapping, name, int, key, default)
        if not low <= value <= high:
            self.add(mapping.where(name), key, f"{value} is out of range",
                     f"a whole number from {low} to {high}")
            return default
        return value

    def seconds(self, mapping, name, key, default, low, high):
        value = self.checker.typed(mapping, name, (int, float), key, default, "a number of seconds")
        if not low <= value <= high:
            self.add(mapping.where(name), key, f"{value} seconds is out of range",
                     f"from {low} to {high} seconds")
            return float(default)
        return float(value)

    def trunk(self, mapping, key, name="trunk"):
        trunk = self.checker.typed(mapping, name, str, key, "default")
        if self.trunks is not None and trunk not in self.trunks:
            self.add(mapping.where(name), key, f"unknown trunk {trunk!r}",
                     "trunks in switchboard.yaml: " + ", ".join(sorted(self.trunks)))
            return "default"
        return trunk

    def phone(self, value, where, key):
        plain = isinstance(value, (str, int)) and not isinstance(value, bool)
        text = str(value).strip() if plain else ""
        if not text:
            self.add(where, key, "must be a phone number or a channel such as PJSIP/duty-office")
            return None
        if is_channel(text):
            return text
        try:
            return self.numbers.normalise(text)
        except InvalidNumber as e:
            self.add(where, key, str(e), "a phone number or a channel such as PJSIP/duty-office")
            return None

    def stages(self, e) -> tuple:
        items = self.checker.typed(e, "stages", list, "escalation.stages", None)
        if not items:
            if "stages" not in e or isinstance(e.get("stages"), list):
                self.add(e.where("stages"), "escalation.stages", "at least one stage is needed",
                         "the first stage (e.g. the duty officer) is also rung at once for "
                         "unregistered callers")
            return ()
        out, previous = [], None
        for i, item in enumerate(items):
            key = f"escalation.stages[{i}]"
            where = items.where(i)
            s = self.checker.mapping(item, key, where,
                                     allowed={"name", "after", "phones", "number", "trunk"},
                                     required=("name", "after"))
            name = self.checker.typed(s, "name", str, f"{key}.name", f"stage {i + 1}")
            if "after" in s:
                after = self.seconds(s, "after", f"{key}.after", 0, 0, 86400)
                if previous is not None and after <= previous:
                    self.add(s.where("after"), f"{key}.after",
                             f"{after:g} s is not later than the stage before ({previous:g} s)",
                             "each stage's 'after' counts from the alarm and must grow")
                previous = after
            else:
                after = previous or 0.0  # already reported as missing
            phones = []
            if "phones" in s and "number" in s:
                self.add(s.where("number"), f"{key}.number", "give either 'phones' or 'number'")
            if "number" in s:
                phone = self.phone(s["number"], s.where("number"), f"{key}.number")
                phones = [phone] if phone else []
            elif "phones" in s:
                listed = self.checker.typed(s, "phones", list, f"{key}.phones", [])
                for j, value in enumerate(listed):
                    phone = self.phone(value, listed.where(j), f"{key}.phones[{j}]")
                    if phone:
                        phones.append(phone)
                if not listed and isinstance(s.get("phones"), list):
                    self.add(s.where("phones"), f"{key}.phones", "is empty")
            elif isinstance(s, dict) and s:
                self.add(where, key, "missing 'phones' (a list) or 'number'")
            out.append(Stage(name=name, after=after, phones=tuple(phones),
                             trunk=self.trunk(s, f"{key}.trunk")))
        return tuple(out)

    def prompts(self, data) -> Prompts:
        allowed = set(Prompts.__dataclass_fields__)
        p = self.section(data, "prompts", allowed)
        defaults = Prompts()
        kw = {}
        for name in allowed & set(p):
            prompt = self.prompt(p, name, f"prompts.{name}", getattr(defaults, name))
            if prompt is not None:
                kw[name] = prompt
        return Prompts(**kw)

    def prompt(self, p, name, key, default) -> AlarmPrompt | None:
        """
        C{[sound, ...]} or C{sound} (a recording), C{{say: TEXT}} (text,
        the stock sounds as fallback) or C{{sound: ..., say: TEXT}} (the
        recording wins).
        """
        value = p[name]
        if isinstance(value, dict):
            m = self.checker.mapping(value, key, p.where(name), allowed={"say", "sound"})
            if not m:
                self.add(p.where(name), key, "is empty", "say: TEXT or sound: NAME")
                return None
            text = None
            if "say" in m:
                text = self.text(m, "say", f"{key}.say")
                if text is None:
                    return None
            if "sound" in m:
                sounds = self.sounds(m, "sound", f"{key}.sound")
                if sounds is None:
                    return None
                return AlarmPrompt(sounds, text, recorded=True, where=m.where("say"))
            if text is None:
                return None  # only unknown keys: already reported
            return AlarmPrompt(default.sounds, text, where=m.where("say"))
        sounds = self.sounds(p, name, key)
        return AlarmPrompt(sounds, recorded=True) if sounds is not None else None

    def text(self, m, name, key) -> str | None:
        value = m[name]
        if not isinstance(value, str) or not value.strip():
            self.add(m.where(name), key, "must be the text to say",
                     'e.g. say: "别着急，正在为您呼叫邻居，请不要挂机。"')
            return None
        if _CONTROL.search(value):
            self.add(m.where(name), key, "has a control character (line breaks are not said)",
                     "write the prompt on one line")
            return None
        if len(value) > MAX_TEXT:
            self.add(m.where(name), key, f"{len(value)} characters, longer than {MAX_TEXT}",
                     "a prompt is a sentence or two")
            return None
        return value.strip()

    def sounds(self, m, name, key) -> tuple | None:
        value = m[name]
        sounds = [value] if isinstance(value, str) else value
        if not isinstance(sounds, list) or not sounds:
            self.add(m.where(name), key, "must be a sound name or a list of them",
                     "e.g. [beep, vm-press, digits/1], or say: TEXT")
            return None
        good = True
        for j, sound in enumerate(sounds):
            if not isinstance(sound, str) or not _SOUND.fullmatch(sound) or ".." in sound:
                located = isinstance(sounds, yamlconf.LocatedList)
                where = sounds.where(j) if located else m.where(name)
                self.add(where, key if isinstance(value, str) else f"{key}[{j}]",
                         f"{sound!r} is not a sound name",
                         "a name under the sounds folder without extension, e.g. digits/1")
                good = False
        return tuple(sounds) if good else None


def text_problems(config: AlarmConfig, speech) -> list:
    """
    Why prompts written as text cannot be rendered by C{speech} (a
    L{switchboard.speech.Speech}), each a located L{yamlconf.Problem}.
    """
    out = []
    for name, prompt in config.prompts.items():
        if prompt.text and not prompt.recorded:
            for reason in speech.problems(prompt.text):
                out.append(yamlconf.Problem(prompt.where, f"prompts.{name}.say", reason))
    return out


def missing_sounds(config: AlarmConfig, sounds_dir: str) -> list:
    """The prompts of C{config} with no file of any format in C{sounds_dir} (a check for staff)."""
    import glob
    import os
    missing = []
    for sound in sorted(config.prompts.all() | {f"digits/{d}" for d in range(10)}):
        if not glob.glob(os.path.join(sounds_dir, glob.escape(sound) + ".*")):
            missing.append(sound)
    return missing
