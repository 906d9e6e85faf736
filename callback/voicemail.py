"""
Voicemails left at the offices become requests.

The hotline sends a caller nobody answers to an office's mailbox
(C{VoiceMail()}; the routing's C{voicemail} destinations). Asterisk keeps
each message as a recording and a small text file beside it in its spool:
C{<spool>/<context>/<mailbox>/INBOX/msg0000.txt}, holding the caller ID,
the time (C{origtime}) and a message id (C{msg_id}) that stays with the
message when it is moved. L{VoicemailWatcher} looks into the mailboxes of
the configured voicemail contexts every few seconds (on a thread: the
reactor never touches the disk) and records each message it has not seen
as a request of kind C{voicemail}. A message staff have heard on the
office phone moves to C{Old} under a new file name: its request follows it.

Why the spool and not the hotline's call: a caller ends a voicemail by
hanging up, so the FastAGI session is over before Asterisk has named the
file, and only the spool says for certain that a message was kept (not
one too short, not a caller who hung up before the beep). It also catches
messages left without the server (the dialplan's own fallback).

The text file is Asterisk's, but what is in it is the caller's choice
(the caller ID name): it is read as untrusted text, bounded, and a file
that does not parse is skipped and logged once.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone

from twisted.internet import defer, task, threads
from twisted.logger import Logger

from switchboard.text import printable

#: Asterisk's folders: new messages (C{Urgent}: left with the U option), heard
#: ones (C{Old}), and those a mailbox's owner filed.
FOLDERS = ("INBOX", "Urgent", "Old", "Work", "Family", "Friends")
#: Text files larger than this are not Asterisk's: skipped.
MAX_INFO_BYTES = 16 * 1024
#: Recording formats looked for beside the text file, in this order.
FORMATS = ("wav", "WAV", "wav49", "gsm", "ulaw", "alaw", "g722", "sln")
_MESSAGE = re.compile(r"msg\d{4,}\.txt")
_NUMBER = re.compile(r"<([^<>]*)>\s*$")


@dataclass(frozen=True)
class Message:
    """A voicemail as Asterisk keeps it."""

    message_id: str
    mailbox: str         # box@context
    caller: str          # E.164 when it can be read so, else as presented
    left_at: datetime    # UTC
    recording: str       # the sound file on this host ("" when none was found)
    duration: int = 0    # seconds


def read_info(path: str) -> dict:
    """The C{key=value} pairs of a message's text file (C{[message]} section)."""
    with open(path, "rb") as f:
        raw = f.read(MAX_INFO_BYTES + 1)
    if len(raw) > MAX_INFO_BYTES:
        raise ValueError(f"{path}: over {MAX_INFO_BYTES} bytes")
    info = {}
    for line in raw.decode("utf-8", "replace").splitlines():
        line = line.strip()
        if not line or line.startswith(";") or line.startswith("["):
            continue
        key, sep, value = line.partition("=")
        if sep:
            info.setdefault(key.strip(), value.strip())
    return info


def caller_number(callerid: str) -> str:
    """The number of C{"name" <number>} (or the text itself), printable and bounded."""
    match = _NUMBER.search(callerid or "")
    number = (match.group(1) if match else callerid or "").strip()
    return printable(number)[:64] or "unknown"


def message_from(path: str, mailbox: str, numbers=None) -> Message:
    """
    The L{Message} of the text file C{path} in C{mailbox}.

    @raise ValueError: not a message Asterisk wrote (no msg_id, no time).
    """
    info = read_info(path)
    message_id = info.get("msg_id", "")
    if not message_id or len(message_id) > 64:
        raise ValueError(f"{path}: no msg_id")
    try:
        left_at = datetime.fromtimestamp(int(info.get("origtime", "")), timezone.utc)
    except (ValueError, OverflowError, OSError):
        raise ValueError(f"{path}: no origtime") from None
    raw = caller_number(info.get("callerid", ""))
    caller = (numbers.try_normalise(raw) if numbers is not None else None) or raw
    stem = path[:-len(".txt")]
    recording = next((f"{stem}.{ext}" for ext in FORMATS if os.path.exists(f"{stem}.{ext}")), "")
    try:
        duration = int(info.get("duration", "0"))
    except ValueError:
        duration = 0
    return Message(message_id, mailbox, caller, left_at, recording, duration)


def scan(spool: str, contexts, numbers=None, *, problems=None, cache=None) -> list:
    """
    Every message in the mailboxes of C{contexts} under C{spool}, oldest
    first. A file that cannot be read is left out (its path and why added
    to C{problems}, a dict, when given). C{cache}, a dict kept between
    scans, spares reading again a text file that has not changed.
    """
    found, seen = [], set()
    for context in contexts:
        base = os.path.join(spool, context)
        try:
            boxes = sorted(os.listdir(base))
        except OSError:
            continue
        for box in boxes:
            for folder in FOLDERS:
                where = os.path.join(base, box, folder)
                try:
                    names = sorted(n for n in os.listdir(where) if _MESSAGE.fullmatch(n))
                except OSError:
                    continue
                for name in names:
                    path = os.path.join(where, name)
                    try:
                        stamp = os.stat(path).st_mtime_ns
                        kept = cache.get(path) if cache is not None else None
                        if kept is not None and kept[0] == stamp:
                            message = kept[1]
                        else:
                            message = message_from(path, f"{box}@{context}", numbers)
                    except (OSError, ValueError) as e:
                        if problems is not None:
                            problems[path] = str(e)
                        continue
                    if cache is not None:
                        seen.add(path)
                        cache[path] = (stamp, message)
                    found.append(message)
    if cache is not None:
        for gone in set(cache) - seen:
            del cache[gone]
    found.sort(key=lambda m: (m.left_at, m.message_id))
    return found


class VoicemailWatcher:
    """
    Turns new voicemails into requests: every C{interval} seconds, scans
    the spool on a thread and records what it has not seen
    (L{callback.requests.Requests.add_voicemail}, which also refuses a
    message id already recorded: a restart or a second server records no
    message twice).

    @param requests: a L{callback.requests.Requests}.
    @param spool: Asterisk's voicemail spool as this host sees it.
    @param contexts: the voicemail contexts whose mailboxes are the offices'.
    @param clock: for the L{task.LoopingCall}.
    @param run_in_thread: C{f(*args) -> Deferred} off the reactor.
    @ivar listeners: callables told C{(request_id, message)} of each new request.
    """

    log = Logger()

    def __init__(self, requests, spool, contexts, numbers=None, *, clock=None, interval=5.0,
                 run_in_thread=None):
        self.requests = requests
        self.spool = spool
        self.contexts = tuple(contexts)
        self.numbers = numbers
        self.interval = interval
        self.run_in_thread = run_in_thread or threads.deferToThread
        self.known: dict | None = None  # message id -> its recording (None: not read yet)
        self.listeners: list = []
        self.recorded = 0
        self._problems_logged: set = set()
        self._cache: dict = {}  # text file -> (mtime, Message): read once
        self._busy = False
        self._loop = task.LoopingCall(self.poll)
        if clock is not None:
            self._loop.clock = clock

    def start(self) -> None:
        if not self._loop.running:
            self._loop.start(self.interval, now=True).addErrback(
                lambda f: self.log.failure("voicemail watcher stopped", f))

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()

    def poll(self) -> defer.Deferred:
        """One look at the spool (skipped while the previous one still runs)."""
        if self._busy:
            return defer.succeed(0)
        self._busy = True
        d = defer.ensureDeferred(self._poll())
        d.addErrback(lambda f: self.log.failure(
            "voicemail: the spool {spool} could not be read; again in {s:g} s", f,
            spool=self.spool, s=self.interval) and 0)

        def done(result):
            self._busy = False
            return result

        return d.addBoth(done)

    async def _poll(self) -> int:
        if self.known is None:
            self.known = dict(await self.requests.message_ids())
        problems: dict = {}
        found = await self.run_in_thread(scan, self.spool, self.contexts, self.numbers,
                                         problems=problems, cache=self._cache)
        for path, why in problems.items():
            if path not in self._problems_logged:
                self._problems_logged.add(path)
                self.log.warn("voicemail {path} skipped: {why}", path=path, why=why)
        added = 0
        for message in found:
            if message.message_id in self.known:
                if message.recording and self.known[message.message_id] != message.recording:
                    # Heard on the office phone: moved to Old under another name.
                    await self.requests.move_recording(message.message_id, message.recording)
                    self.known[message.message_id] = message.recording
                continue
            request_id = await self.requests.add_voicemail(message)
            self.known[message.message_id] = message.recording
            if request_id is None:
                continue
            added += 1
            self.recorded += 1
            self.log.info("voicemail from {caller} at {mailbox}: request {id}",
                          caller=message.caller, mailbox=message.mailbox, id=request_id)
            for listener in list(self.listeners):
                try:
                    listener(request_id, message)
                except Exception:
                    self.log.failure("voicemail listener")
        return added
