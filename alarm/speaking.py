"""
The alarm's speech: every prompt of alarm.yaml written as text, the digits
0-9 in Mandarin, and one announcement sentence per household
(L{alarm.announcement}), rendered ahead of time so that nobody on a #9
call ever waits for a speech engine.

When things are rendered:

  - the prompts and digits when alarm.yaml is loaded or reloaded;
  - a household's announcement when the server starts (every household
    without one) and when the registry watcher sees the household added or
    changed (the CLI runs in another process). The rendering of what it
    said before is deleted: it names a resident and where they live.

On a call, L{Announcer.sound_for} and L{Announcer.digits} only look
(L{switchboard.speech.Speech.sound_name}); what is not rendered is played
from the stock sounds instead.
"""

from __future__ import annotations

import os
import threading
import time

from twisted.internet import defer, threads
from twisted.logger import Logger

from alarm import announcement
from alarm.astdb import landline_digits
from switchboard.speech import chinese


#: The sound (under the speech folder) the native dialplan plays to a
#: neighbour when this server is away (dialplans/switchboard.conf,
#: switchboard-alarm-confirm): the intro and the question, no personal data.
NATIVE_ASK = "alarm-native-ask"
#: Digit D in Mandarin under a name the native dialplan can build,
#: C{alarm-native-digit-D}: how it says the caller's number
#: (switchboard-alarm-put-through).
NATIVE_DIGIT = "alarm-native-digit-"
#: A household's announcement under a name the native dialplan finds from the
#: caller ID alone, C{alarm-native-who-<landline in E.164 without +>} (as in
#: AstDB C{swb_ring}): a symbolic link to the rendering, one per landline. The
#: rendering deleted (the household changed or left), the link leads nowhere
#: and the dialplan plays the general question instead.
NATIVE_WHO = "alarm-native-who-"


def make_speech(described, reactor=None, engine=None):
    """The L{switchboard.speech.Speech} of C{described} (switchboard.yaml's C{speech:})."""
    from switchboard.speech import Speech
    return Speech.from_settings(described, reactor=reactor, engine=engine)


def digit_texts() -> dict:
    """C{"0"} -> 零 ... C{"1"} -> 幺: each digit as said in a number read digit by digit."""
    return {d: chinese.digits(d) for d in "0123456789"}


class Announcer:
    """
    Renders and finds the alarm's speech with C{speech} (a
    L{switchboard.speech.Speech}, or None: nothing is spoken, stock sounds
    are played).

    @param blocking: how to run a blocking function (hashing and looking
        at thousands of files) off the reactor; a thread by default.
    """

    log = Logger()

    def __init__(self, speech, *, clock=None, blocking=None):
        if clock is None:
            from twisted.internet import reactor as clock
        self.speech = speech
        self.clock = clock
        self._blocking = blocking or (lambda f, *a: threads.deferToThreadPool(
            clock, clock.getThreadPool(), f, *a))
        self._digits = digit_texts()
        self._turns = defer.succeed(None)

    @property
    def speaking(self) -> bool:
        return self.speech is not None and self.speech.available

    # On a call: look, never render ------------------------------------

    def sound_for(self, household) -> str | None:
        """The rendered announcement of C{household} (a snapshot), or None."""
        if household is None or not self.speaking:
            return None
        for text in announcement.candidates(household):
            name = self.speech.sound_name(text)
            if name:
                return name
        return None

    def digits(self, number: str) -> list | None:
        """The rendered Mandarin digits of C{number} (幺 for 1), or None unless all are."""
        if not self.speaking or not number:
            return None
        names = []
        for d in number:
            name = self.speech.sound_name(self._digits[d]) if d in self._digits else None
            if name is None:
                return None
            names.append(name)
        return names

    # Ahead of time ----------------------------------------------------

    def text_for(self, household) -> str | None:
        """The first candidate sentence the engine can say, or None (with why, logged)."""
        text, why = self._speakable(household)
        if text is None:
            self._unspeakable(household.id, why)
        return text

    def _speakable(self, household):
        """(first sentence the engine can say or None, why none can). Pure: any thread."""
        tried = []
        for text in announcement.candidates(household):
            problems = self.speech.problems(text)
            if not problems:
                return text, ""
            tried += problems
        return None, "; ".join(tried)

    def _unspeakable(self, hid, why) -> None:
        self.log.warn("household {id}: its announcement cannot be spoken ({why}); "
                      "neighbours hear the stock prompts and digits", id=hid, why=why)

    def prepare_prompts(self, config) -> defer.Deferred:
        """
        Render the prompts of C{config} written as text, and the digits when
        any prompt is text (a Mandarin alarm). Fires with the number of
        texts that could not be rendered; never fails.
        """
        if self.speech is None or not config.prompts.spoken:
            return defer.succeed(0)
        if not self.speech.available:
            self.log.error("speech: {why}; the alarm's prompts are played from Asterisk's "
                           "stock sounds", why=self.speech.unavailable_reason)
            return defer.succeed(0)
        texts = config.prompts.texts() + list(self._digits.values())
        native = self.native_text(config)
        if native:
            texts.append(native)
        d = self.speech.render_all((text, None) for text in texts)

        def done(results):
            failed = [(t, r) for (t, _), r in results.items() if not isinstance(r, str)]
            for text, failure in failed:
                self.log.error("speech: prompt {text!r} not rendered ({why}); its stock sound "
                               "is played", text=text, why=failure.getErrorMessage())
            self.log.info("speech: {n} alarm prompts ready", n=len(results) - len(failed))
            fixed = [(NATIVE_DIGIT + digit, text) for digit, text in self._digits.items()]
            if native:
                fixed.append((NATIVE_ASK, native))
            fixed = [(name, text) for name, text in fixed
                     if isinstance(results.get((text, None)), str)]
            if not fixed:
                return len(failed)
            published = self._blocking(self._publish_fixed, fixed)
            published.addErrback(lambda f: self.log.failure(
                "speech: the native dialplan's question and digits not written; it plays "
                "Asterisk's stock sounds", f))
            return published.addCallback(lambda _: len(failed))

        return d.addCallback(done)

    @staticmethod
    def native_text(config) -> str | None:
        """What the native fallback asks a neighbour: the intro and the question, when text."""
        p = config.prompts
        if p.responder_intro.text and p.responder_ask.text and not (
                p.responder_intro.recorded or p.responder_ask.recorded):
            return p.responder_intro.text + p.responder_ask.text
        return None

    def native_path(self, name: str = NATIVE_ASK) -> str:
        """Where the sound the native dialplan knows as C{switchboard-tts/<name>} is."""
        return os.path.join(self.speech.folder, f"{name}.{self.speech.extension}")

    def _publish_fixed(self, named) -> None:
        """
        Copy the rendering of each (name, text) of C{named} to the fixed name
        the dialplan looks for (runs on a thread): a new file renamed over
        the old one, so Asterisk reads one whole file or the other.
        """
        for name, text in named:
            final = self.native_path(name)
            tmp = f"{final}.{os.getpid()}.{threading.get_ident()}.tmp"
            with open(self.speech.path(text), "rb") as src:
                audio = src.read()
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
            try:
                os.write(fd, audio)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, final)

    # The households' announcements for the native dialplan -----------------------

    def _links(self, pairs) -> dict:
        """landline -> the rendering's file name, for (household, text) C{pairs}."""
        return {landline_digits(n): os.path.basename(self.speech.path(text))
                for household, text in pairs for n in household.numbers}

    def _link(self, wanted, dropped=(), everything=False) -> list:
        """
        Point C{alarm-native-who-<landline>} at its rendering for each of
        C{wanted} (landline -> file name) whose rendering is there; remove
        the links of C{dropped} landlines, and with C{everything} every
        other link not in C{wanted} (start-up: what an older registry left).
        Runs on a thread. A link is made under a temporary name and renamed
        over the old one: the dialplan finds one whole link or the other.
        """
        folder = self.speech.folder
        linked, errors = set(), []
        for number, target in wanted.items():
            if not os.path.exists(os.path.join(folder, target)):
                continue  # not rendered: no link, the general question is played
            final = self.native_path(NATIVE_WHO + number)
            try:
                if os.readlink(final) == target:
                    linked.add(number)
                    continue
            except OSError:
                pass
            tmp = f"{final}.{os.getpid()}.{threading.get_ident()}.tmp"
            try:
                if os.path.lexists(tmp):
                    os.unlink(tmp)
                os.symlink(target, tmp)
                os.replace(tmp, final)
                linked.add(number)
            except OSError as e:
                errors.append(e)
        gone = (set(dropped) | set(wanted)) - linked
        if everything and os.path.isdir(folder):
            suffix = "." + self.speech.extension
            gone.update(entry[len(NATIVE_WHO):-len(suffix)] for entry in os.listdir(folder)
                        if entry.startswith(NATIVE_WHO) and entry.endswith(suffix))
            gone -= linked
        for number in gone:
            try:
                os.unlink(self.native_path(NATIVE_WHO + number))
            except FileNotFoundError:
                pass
            except OSError as e:
                errors.append(e)
        return errors

    def _linked(self, errors) -> None:
        if errors:
            self.log.error("speech: {n} landline link(s) for the native dialplan not made or "
                           "not removed (first: {e}); those neighbours hear the general question "
                           "when the server is away", n=len(errors), e=errors[0])

    def _in_turn(self, work) -> defer.Deferred:
        """
        Run C{work()} (a Deferred that never fails) once the renderings and
        links asked for before it are done: start-up works from the
        households as they were when it began, and each change after it
        moves on from there, so a landline never links to a household it
        has left.
        """
        done = defer.Deferred()
        self._turns.addCallback(lambda _: defer.maybeDeferred(work).addBoth(done.callback))
        return done

    def prepare(self, households) -> defer.Deferred:
        """
        Render the announcement of every household in C{households}
        (snapshots) that has none yet (start-up). Which ones lack it is
        found off the reactor. Fires with the number rendered; never fails.
        """
        if not self.speaking:
            return defer.succeed(0)
        households = list(households)
        return self._in_turn(lambda: self._prepare(households))

    def _prepare(self, households) -> defer.Deferred:
        d = self._blocking(self._missing, households)

        def found(result):
            todo, said, unspeakable = result
            for hid, why in unspeakable:
                self._unspeakable(hid, why)
            d = self._render_many(todo, each=False)
            return d.addCallback(lambda n: self._blocking(
                self._link, self._links(said), (), True).addCallback(self._linked)
                .addCallback(lambda _: n))

        d.addCallback(found)
        d.addErrback(lambda f: self.log.failure("speech: rendering announcements", f) or 0)
        return d

    def _missing(self, households) -> tuple:
        """
        (household, text) of those without a rendering and of all that can
        be said, and (id, why) of those whose sentence cannot be said (runs
        on a thread: no logging).
        """
        todo, said, unspeakable = [], [], []
        for h in households:
            text, why = self._speakable(h)
            if text is None:
                unspeakable.append((h.id, why))
                continue
            said.append((h, text))
            if not os.path.exists(self.speech.path(text)):
                todo.append((h, text))
        return todo, said, unspeakable

    def changed(self, changes) -> defer.Deferred:
        """
        The registry watcher's news: C{changes} is a list of (old snapshot
        or None, new snapshot or None). Render what the new ones say, delete
        what the old ones said when it differs. Fires with the number
        rendered; never fails.
        """
        if not self.speaking or not changes:
            return defer.succeed(0)
        return self._in_turn(lambda: self._changed(changes))

    def _changed(self, changes) -> defer.Deferred:
        todo, stale, dropped = [], set(), set()
        for old, new in changes:
            text = self.text_for(new) if new is not None else None
            if text is not None:
                todo.append((new, text))
            elif new is not None:
                dropped.update(landline_digits(n) for n in new.numbers)
            if old is not None:
                stale.update(t for t in announcement.candidates(old) if t != text)
                dropped.update(landline_digits(n) for n in old.numbers)
        # What a household still says is never deleted (two flats could read alike).
        keep = {t for _, t in todo}
        stale -= keep
        wanted = self._links(todo)
        d = self._render_many(todo)
        d.addCallback(lambda n: self._blocking(self._link, wanted, sorted(dropped - set(wanted)))
                      .addCallback(self._linked).addCallback(lambda _: n))
        if stale:
            d.addCallback(lambda n: self._blocking(self._delete, sorted(stale))
                          .addCallback(lambda _: n))
        d.addErrback(lambda f: self.log.failure("speech: changed announcements", f) or 0)
        return d

    def _render_many(self, todo, each=True) -> defer.Deferred:
        """Render (household, text) pairs; log each one only when C{each} (a change)."""
        if not todo:
            return defer.succeed(0)
        started = time.monotonic()

        def one(household, text):
            began = time.monotonic()
            d = self.speech.render(text)

            def rendered(name):
                took = time.monotonic() - began
                if each:
                    self.log.info("speech: household {id} announcement rendered ({name}, "
                                  "{took:.2f} s)", id=household.id, name=name, took=took)
                return 1

            def failed(failure):
                self.log.warn("speech: household {id} announcement not rendered ({why}); "
                              "neighbours hear the stock prompts and digits",
                              id=household.id, why=failure.getErrorMessage())
                return 0

            return d.addCallbacks(rendered, failed)

        d = defer.gatherResults([one(h, t) for h, t in todo])

        def total(counts):
            n = sum(counts)
            if not each or len(todo) > 1:
                self.log.info("speech: {n} of {m} announcements rendered in {took:.1f} s",
                              n=n, m=len(todo), took=time.monotonic() - started)
            return n

        return d.addCallback(total)

    def _delete(self, texts) -> None:
        """Remove the renderings of C{texts} (runs on a thread)."""
        for text in texts:
            try:
                os.unlink(self.speech.path(text))
            except FileNotFoundError:
                pass
            except OSError as e:
                self.log.warn("speech: cannot delete an old announcement: {e}", e=e)
