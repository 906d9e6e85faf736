"""
Text messages about alarms to the duty officer (C{notify:} in alarm.yaml):
who needs help and where when an alarm opens, that nobody has confirmed
when it escalates, who is coming, how it ended. Sent through the core's
L{switchboard.texting.TextSender}; each message's fate goes on the
alarm's timeline (kind C{texted}), as everything else that happened.
"""

from __future__ import annotations

import re
from datetime import datetime

from twisted.logger import Logger

from alarm.changes import OPENED, AlarmChange

TEXTED = "texted"
_ENDED = ("cancelled", "closed")
#: The timeline's kinds that notify.when names, as it names them.
_NOTIFIED = {OPENED: "opened", "escalated": "escalated", "confirmed": "confirmed"}
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _shown(text, limit=40) -> str:
    """A caller ID (anyone can set it) as one short line of plain text."""
    return _CONTROL.sub("", str(text or ""))[:limit] or "未知号码"


class DutyTexts:
    """
    The listener of L{alarm.changes.AlarmChanges} that texts
    C{config().notify.phones} on the events of C{config().notify.when}.

    @param config: returns the L{alarm.config.AlarmConfig} in force (it
        changes on reloads).
    @param sender: a L{switchboard.texting.TextSender}.
    @param changes: the L{AlarmChanges} the fates are told to.
    @param tz: the community's time zone (a C{tzinfo}).
    @param clock: an C{IReactorTime}. A text is sent in a later turn of the
        reactor than the change it tells of: an alarm opens and its legs are
        originated in one turn, and its texts' C{MessageSend} actions, on the
        same AMI session, queue behind the ten C{Originate}s instead of
        ahead of them (Asterisk runs one session's actions in order).
    """

    log = Logger()

    def __init__(self, config, sender, changes, tz, clock):
        self.config = config
        self.sender = sender
        self.changes = changes
        self.tz = tz
        self.clock = clock

    def __call__(self, change) -> None:
        config = self.config()
        if config is None or not config.notify.phones:
            return
        event = self._event(change)
        if event is None or event not in config.notify.when:
            return
        body = self.body(event, change, config)
        self.clock.callLater(0, self._send, list(config.notify.phones), body, change, event)

    def _send(self, phones, body, change, event) -> None:
        for phone in phones:
            d = self.sender.send(phone, body)
            d.addCallback(self._sent, change, event)

    @staticmethod
    def _event(change):
        if change.kind in _ENDED:
            return "ended" if change.leg is None else None
        return _NOTIFIED.get(change.kind)

    def body(self, event, change, config) -> str:
        """The text for C{event} of C{change}'s alarm, in Mandarin."""
        alarm = change.alarm
        household = alarm.household if alarm is not None else None
        where = household.address if household is not None else ""
        number = f"警报{change.alarm_id}"
        if event == "opened":
            at = datetime.fromtimestamp(change.at, self.tz).strftime("%H:%M")
            if alarm is None:  # handed to the dialplan: only the opening's words are known
                return (f"【紧急求助】{at} {_shown(change.detail, 120)}。服务器无法呼叫，"
                        f"电话交换机正在直接呼叫邻居。{number}。")
            caller = _shown(alarm.caller_raw)
            if household is None:
                text = f"【紧急求助】{at} 未登记的号码 {caller} 按下 #9 求助。{number}。"
            else:
                who = f"，{household.residents}" if household.residents else ""
                text = f"【紧急求助】{at} {where}{who}（来电 {caller}）按下 #9 求助，正在呼叫邻居。{number}。"
                if config.notify.notes and household.notes:
                    text += f"备注：{household.notes}"
            return text
        place = f"（{where}）" if where else ""
        if event == "escalated":
            stage = _stage(alarm, config)
            return f"【紧急求助】{number}{place}仍无人确认，已呼叫：{stage}。"
        if event == "confirmed":
            return f"【紧急求助】{number}{place}：{change.number or '一位邻居'} 已按 1，正在赶去。"
        return f"【紧急求助】{number}{place}已结束：{change.detail}。"

    def _sent(self, result, change, event):
        detail = (f"{event}: sent ({result.detail})" if result.sent
                  else f"{event}: NOT sent ({result.detail})")
        self.changes.tell(AlarmChange(change.alarm_id, change.alarm, TEXTED, change.at,
                                      number=result.to, detail=detail[:200]))


def _stage(alarm, config) -> str:
    rung = sorted(alarm.stages_rung) if alarm is not None else []
    if rung and rung[-1] < len(config.stages):
        return config.stages[rung[-1]].name
    return config.stages[0].name if config.stages else "值班电话"
