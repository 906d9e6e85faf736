"""
C{switchboard say "TEXT" --to FILE.wav [--voice zh]}: render one prompt so
staff can listen to it before saving it in a configuration file.
"""

from __future__ import annotations

import sys
import tempfile

from switchboard.speech.engine import RATES, VOICES


def register(sub) -> None:
    say = sub.add_parser("say", help="render text as speech to a WAV file, to listen before saving")
    say.add_argument("text", help="what to say, e.g. \"您好，这里是华林社区服务热线。\"")
    say.add_argument("--to", required=True, metavar="FILE.wav", help="the WAV file to write")
    say.add_argument("--voice", default="zh", choices=sorted(VOICES),
                     help="voice (default: %(default)s, Mandarin)")
    say.add_argument("--rate", type=int, default=8000, choices=sorted(RATES),
                     help="sample rate in Hz (default: %(default)s, as on a phone call)")
    say.set_defaults(handler=_say)


def _say(args, context) -> int:
    """Render, print what was said and where; exit 1 with a clear message otherwise."""
    from twisted.internet import task

    task.react(_render, [args])  # exits with the code _render's Deferred gives
    return 0


def _render(reactor, args):
    from twisted.internet import defer

    from switchboard.speech import Speech
    from switchboard.speech.render import said

    def stop(code, message=""):
        if message:
            print(message, file=sys.stderr if code else sys.stdout)
        return defer.fail(SystemExit(code)) if code else defer.succeed(None)

    speech = Speech(tempfile.gettempdir(), rate=args.rate, default_voice=args.voice,
                    reactor=reactor)
    if not speech.available:
        return stop(1, f"switchboard say: no speech engine: {speech.unavailable_reason}")
    problems = speech.problems(args.text, args.voice)
    if problems:
        return stop(1, "\n".join(f"switchboard say: {p}" for p in problems))
    d = speech.render_to(args.text, args.to, args.voice)
    d.addCallback(lambda path: stop(0, f"{path}: {said(args.text, VOICES[args.voice])} "
                                       f"({speech.version}, voice {args.voice}, {args.rate} Hz)"))
    d.addErrback(lambda f: f if f.check(SystemExit) else
                 stop(1, f"switchboard say: {f.getErrorMessage()}"))
    return d
