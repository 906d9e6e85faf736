"""
Checking switchboard's dialplan before Asterisk loads it.

The file is parsed with pyst2's Asterisk C{.conf} parser; the checks are
the ones that keep calls alive when the server is away: every AGI() hand-off
is followed by a test of C{SWITCHBOARD_RESULT} (the native fallback), every
Goto/GotoIf/Gosub names a context, extension or label that exists, and the
contexts the features rely on (L{switchboard.features.IFeature.dialplan_contexts})
are there.
"""

from __future__ import annotations

import glob
import os
import re
import sys
from dataclasses import dataclass

from asterisk.config import Config, ParseError

from switchboard import features as features_module

DIALPLANS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "dialplans")
_PRIORITY = re.compile(r"^\s*(?P<prio>n|\d+)(?:\((?P<label>[\w-]+)\))?\s*,\s*(?P<app>\w+)\((?P<args>.*)\)\s*$")
_TARGET = re.compile(r"(?:^|[?:])\s*([^?:,()]+(?:,[^?:,()]+){0,2})\s*$")


@dataclass
class Step:
    context: str
    exten: str
    line: int
    label: str | None
    app: str
    args: str


class _ConfFile(Config):
    """pyst2's parser, with C{#include} lines followed rather than refused."""

    def load(self):
        super().load()
        self.includes = []
        for i, line in enumerate(self.raw_lines):
            if line.lstrip().startswith("#include"):
                self.includes.append(line.split(None, 1)[1].strip().strip('"<>'))
                self.raw_lines[i] = ";\n"


def parse(path: str, contexts: dict | None = None, _including: tuple = ()) -> dict:
    """
    context -> extension -> [Step]; raise C{ValueError} naming the line on a
    parse error, and the chain of files when one includes itself (directly
    or through others), which Asterisk refuses too.
    """
    real = os.path.realpath(path)
    if real in _including:
        chain = " -> ".join(list(_including[_including.index(real):]) + [real])
        raise ValueError(f"{path}: #include loop: {chain}")
    try:
        config = _ConfFile(path)
    except ParseError as e:
        raise ValueError(f"{path}:{e.args[0]}: {e.args[1]}")
    except OSError as e:
        raise ValueError(f"{path}: {e.strerror}")
    contexts = {} if contexts is None else contexts
    for included in config.includes:
        # Extensions files that include the shipped dialplan (or a feature's
        # snippet) by name find it in dialplans/ (or the feature's package).
        found = [p for p in [os.path.join(os.path.dirname(path), included),
                             os.path.join(DIALPLANS, included)]
                 + [s for s in feature_dialplans() if os.path.basename(s) == included]
                 if os.path.exists(p)]
        parse(found[0] if found else os.path.join(DIALPLANS, included), contexts,
              _including + (real,))
    for category in config.categories:
        extens = contexts.setdefault(category.name, {})
        current = None
        for item in category.items:
            if item.name not in ("exten", "same"):
                continue
            text = item.value
            if item.name == "exten":
                current, _, text = text.partition(",")
                current = current.strip()
            if current is None:
                raise ValueError(f"{path}:{item.number}: 'same' before any 'exten'")
            m = _PRIORITY.match(text)
            if not m:
                raise ValueError(f"{path}:{item.number}: cannot read priority {text!r}")
            extens.setdefault(current, []).append(
                Step(category.name, current, item.number, m.group("label"), m.group("app"),
                     m.group("args")))
    return contexts


def _targets(step: Step) -> list[str]:
    """The Goto-style destinations of C{step} (label, exten,label or context,exten,label)."""
    if step.app in ("Goto",):
        return [step.args]
    if step.app == "GotoIf":
        _, _, branches = step.args.partition("?")
        return [b for b in branches.split(":") if b]
    if step.app == "Dial":
        return [m.group(1).replace("^", ",") for m in re.finditer(r"U\(([^)]*)\)", step.args)]
    return []


# Applications that place a call to a dial string built from their arguments.
_DIALLING_APPS = ("Dial", "Originate", "Queue", "Page")
_RAW_EXTEN = re.compile(r"\$\{EXTEN(?::[^}]*)?\}")


def _unfiltered_exten(exten: str, step: Step) -> bool:
    """
    Whether C{step} dials C{${EXTEN}} of a pattern that lets any character
    through ('.' or '!'): a caller dialling C{123&PJSIP/other} rings any
    channel (Asterisk's README-SERIOUSLY.bestpractices.md, "Dialplan
    injection"). C{FILTER(0-9,${EXTEN})} or a digits-only pattern is safe.
    """
    if step.app not in _DIALLING_APPS or not exten.startswith("_"):
        return False
    if "." not in exten and "!" not in exten:
        return False
    unfiltered = re.sub(r"FILTER\([^,]*,\s*\$\{EXTEN(?::[^}]*)?\}\)", "", step.args)
    return bool(_RAW_EXTEN.search(unfiltered))


def feature_dialplans(features=None) -> list[str]:
    """
    The dialplan snippets features ship in their own package (C{*.conf}
    beside their declaration's package, e.g. C{broadcast/broadcast.conf}),
    which a site includes after switchboard.conf.
    """
    features = features_module.installed() if features is None else features
    found = []
    for feature in features:
        top = type(feature).__module__.split(".")[0]
        module = sys.modules.get(top)
        folder = os.path.dirname(os.path.abspath(module.__file__)) if module else None
        if folder and os.path.abspath(folder) != os.path.dirname(DIALPLANS):
            found.extend(sorted(glob.glob(os.path.join(folder, "*.conf"))))
    return found


def required_contexts(features=None) -> dict:
    """Context -> the name of the feature relying on it (the installed features by default)."""
    features = features_module.installed() if features is None else features
    return {context: feature.name for feature in features
            for context in feature.dialplan_contexts}


def _astdb_reads(features=None) -> list:
    """(context, AstDB family it must read, feature name) the features declare."""
    features = features_module.installed() if features is None else features
    return [(context, family, feature.name) for feature in features
            for context, family in getattr(feature, "dialplan_astdb", {}).items()]


def check(path: str, features=None) -> list[str]:
    """
    Every problem found in the dialplan at C{path}, each naming its line.

    @param features: whose contexts must be there (default: the installed features).
    """
    try:
        contexts = parse(path)
        if os.path.realpath(path) == os.path.realpath(os.path.join(DIALPLANS, "switchboard.conf")):
            # The shipped dialplan is switchboard.conf with the features' snippets.
            for snippet in feature_dialplans(features):
                parse(snippet, contexts)
    except ValueError as e:
        return [str(e)]
    problems = []
    for name, feature in required_contexts(features).items():
        if name not in contexts:
            problems.append(f"{path}: missing context [{name}] the server relies on "
                            f"(feature {feature})")
    for context, family, feature in _astdb_reads(features):
        steps = [s for extens in contexts.get(context, {}).values() for s in extens]
        if steps and not any(f"DB({family}/" in s.args for s in steps):
            problems.append(f"{path}:{steps[0].line}: [{context}] reads no DB({family}/...): "
                            f"feature {feature} keeps its AstDB copy there, and the native "
                            "fallback would find nothing")
    for context, extens in contexts.items():
        for exten, steps in extens.items():
            labels = {s.label for s in steps if s.label}
            for i, step in enumerate(steps):
                if step.app == "AGI":
                    following = steps[i + 1] if i + 1 < len(steps) else None
                    if not (following and following.app == "GotoIf"
                            and "SWITCHBOARD_RESULT" in following.args):
                        problems.append(f"{path}:{step.line}: AGI() in [{context}] {exten} is not "
                                        "followed by a GotoIf on SWITCHBOARD_RESULT: nothing "
                                        "would serve the call while the server is down")
                if _unfiltered_exten(exten, step):
                    problems.append(f"{path}:{step.line}: {step.app} in [{context}] {exten} "
                                    "uses ${EXTEN} of a pattern that matches any character: "
                                    "a caller can dial '123&PJSIP/other' and ring any channel; "
                                    "match digits only (no '.' or '!') or dial "
                                    "${FILTER(0-9,${EXTEN})}")
                for target in _targets(step):
                    if "$" in target:
                        continue  # computed at run time
                    parts = [p.strip() for p in target.split(",")]
                    if len(parts) == 1:
                        ok = parts[0] in labels or parts[0].isdigit()
                    elif len(parts) == 2:
                        ok = parts[0] in extens
                    else:
                        ok = parts[0] in contexts and parts[1] in contexts[parts[0]]
                    if not ok:
                        problems.append(f"{path}:{step.line}: {step.app} to {target!r}: "
                                        "no such context, extension or label")
    return problems
