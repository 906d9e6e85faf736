// The duty board: open alarms live (server-sent events), actions, recent alarms.
// Every text from the server goes into the page as text (textContent), never as HTML.
"use strict";

const TEXT = {
  zh: {
    title: "值班看板", connecting: "正在连接…", live: "实时", lost: "连接中断，正在重连…",
    sound_on: "开启提示音", sound_is_on: "提示音已开启", logout: "退出",
    open_alarms: "当前警报", no_alarms: "现在没有未结束的警报。", recent: "最近的警报",
    alarm: "警报", caller: "来电", address: "地址", residents: "住户", notes: "备注",
    unregistered: "未登记的来电", raised: "发起", since: "已过", legs: "呼叫",
    next: "下一级：{stage}，{left}后", next_now: "下一级：{stage}，即将呼叫",
    no_next: "无人确认时会再次呼叫值班电话", confirmed_by: "有人按1，正在赶来",
    ack_by: "{who} 正在处理（{at}）", acknowledge: "我来处理", note: "备注…", add_note: "添加备注",
    close: "结案", outcome: "结果…", ring_number: "再拨一个电话…", ring: "呼叫", call_back: "回拨求助人", emergency: "真实紧急情况", "false-alarm": "误报", test: "测试",
    new_alarm: "新警报", failed: "操作失败：{why}", viewer: "只读账号：不能操作",
    staff: "值班人员", online: "在线", neighbours: "邻居", health: "服务状态",
    calls: "热线来电", no_calls: "还没有热线来电。", to: "转到",
    call_answered: "已接通", call_busy: "占线", "call_no-answer": "无人接听", call_voicemail: "留言",
    call_announcement: "播放通知", call_abandoned: "来电挂断", call_failed: "失败",
    call_interrupted: "中断", "call_in progress": "通话中",
    requests: "服务请求", no_requests: "没有待回电的请求。", overdue: "超过一天", voicemail: "留言",
    callback: "回电请求", call_from: "用哪部电话回拨…", call_back_req: "回拨", done: "已处理",
    done_note: "处理情况…", called_back: "已回拨（{from}，{at}）",
    light_ami: "AMI 连接", light_astdb: "AstDB 同步", light_database: "数据库", light_config: "配置文件",
    ok: "正常", failing: "故障", unknown: "未知", refused_file: "{file} 被拒绝（{at}）：",
    dept_open: "开放", dept_closed: "关闭", dept_holiday: "假日", until: "{at} 起{state}", other: "English", other_lang: "en", timeline: "时间线",
    ringing: "正在响铃", answered: "已接听", "confirmed": "按1：马上到", declined: "按2：来不了",
    unconfirmed: "接听未按键", busy: "占线", "no-answer": "无人接听", "failed_leg": "未能呼出",
    cancelled: "已取消", status_open: "未确认", status_confirmed: "已确认", status_closed: "已结束",
    status_cancelled: "已取消", status_native: "交由拨号计划", status_failed: "未记录",
  },
  en: {
    title: "Duty board", connecting: "Connecting…", live: "Live", lost: "Connection lost, reconnecting…",
    sound_on: "Turn sound on", sound_is_on: "Sound on", logout: "Log out",
    open_alarms: "Open alarms", no_alarms: "No open alarm now.", recent: "Recent alarms",
    alarm: "Alarm", caller: "Caller", address: "Address", residents: "Residents", notes: "Notes",
    unregistered: "unregistered caller", raised: "Raised", since: "for", legs: "Calls",
    next: "Next: {stage} in {left}", next_now: "Next: {stage}, ringing now",
    no_next: "If nobody confirms, the duty phones are rung again", confirmed_by: "Someone pressed 1 and is coming",
    ack_by: "{who} is handling it ({at})", acknowledge: "I am handling it", note: "Note…", add_note: "Add note",
    close: "Close", outcome: "Outcome…", ring_number: "Ring one more phone…", ring: "Ring", call_back: "Call the caller back", emergency: "Real emergency", "false-alarm": "False alarm", test: "Test",
    new_alarm: "New alarm", failed: "Failed: {why}", viewer: "Viewer account: cannot act",
    staff: "Staff", online: "online", neighbours: "neighbours", health: "Service",
    calls: "Hotline calls", no_calls: "No hotline call yet.", to: "to",
    call_answered: "answered", call_busy: "busy", "call_no-answer": "no answer",
    call_voicemail: "voicemail", call_announcement: "announcement", call_abandoned: "abandoned",
    call_failed: "failed", call_interrupted: "interrupted", "call_in progress": "in progress",
    requests: "Requests", no_requests: "No request waiting for a call back.", overdue: "over a day",
    voicemail: "voicemail", callback: "call-me-back", call_from: "Call back from phone…",
    call_back_req: "Call back", done: "Done", done_note: "What was done…", called_back: "called back ({from}, {at})",
    light_ami: "AMI link", light_astdb: "AstDB sync", light_database: "Database", light_config: "Configuration",
    ok: "ok", failing: "failing", unknown: "unknown", refused_file: "{file} refused ({at}):",
    dept_open: "open", dept_closed: "closed", dept_holiday: "holiday", until: "{state} from {at}", other: "中文", other_lang: "zh", timeline: "Timeline",
    ringing: "ringing", answered: "answered", "confirmed": "pressed 1: coming", declined: "pressed 2: cannot come",
    unconfirmed: "answered, no key", busy: "busy", "no-answer": "no answer", "failed_leg": "not placed",
    cancelled: "cancelled", status_open: "not confirmed", status_confirmed: "confirmed", status_closed: "ended",
    status_cancelled: "cancelled", status_native: "left to the dialplan", status_failed: "not recorded",
  },
};
const ENDED = ["closed", "cancelled", "native", "failed"];
// The timeline's kinds (alarm/changes.py) as the page says them; others as they are.
const KINDS = {
  zh: {opened: "发起", joined: "再次呼叫", "no-neighbours": "没有邻居", recovered: "重启后接管",
       waiting: "等待", ringing: "呼叫", answered: "接听", confirmed: "按1确认", declined: "按2",
       unconfirmed: "未按键", busy: "占线", "no-answer": "无人接听", failed: "未能呼出",
       cancelled: "已取消", retry: "重拨", left: "离开", escalated: "升级", silent: "补呼",
       "caller-left": "求助人挂机", closed: "结案", acknowledged: "接手处理", note: "备注",
       native: "交由拨号计划", "calling-back": "回拨", "called-back": "回拨结果",
       texted: "短信"},
  en: {},
};

const board = {
  lang: "zh", me: null, tz: "Asia/Shanghai", offset: 0, alarms: new Map(), entries: new Map(),
  seen: new Set(), fresh: new Set(), audio: null, title: document.title, source: null,
};

function t(key, values) {
  let s = (TEXT[board.lang] || TEXT.zh)[key];
  if (s === undefined) s = key;
  for (const [k, v] of Object.entries(values || {})) s = s.replace("{" + k + "}", v);
  return s;
}
function legText(state) { return t(state === "failed" ? "failed_leg" : state); }
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}
function now() { return Date.now() / 1000 + board.offset; }
function clock(seconds, withDate) {
  const options = {timeZone: board.tz, hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false};
  if (withDate) Object.assign(options, {year: "numeric", month: "2-digit", day: "2-digit"});
  return new Intl.DateTimeFormat(board.lang === "zh" ? "zh-CN" : "en-GB", options).format(new Date(seconds * 1000));
}
function span(seconds) {
  seconds = Math.max(0, Math.floor(seconds));
  const h = Math.floor(seconds / 3600), m = Math.floor(seconds / 60) % 60, s = seconds % 60;
  const two = (n) => String(n).padStart(2, "0");
  return (h ? h + ":" + two(m) : String(m)) + ":" + two(s);
}

// Rendering ------------------------------------------------------------------------

function card(view) {
  const may = board.me && board.me.may_act;
  const node = el("article", {class: "alarm " + view.status + (board.fresh.has(view.id) ? " new" : ""),
                              id: "alarm-" + view.id, "data-id": String(view.id)});
  node.append(el("h3", {}, el("span", {text: t("alarm") + " " + view.id + " · " + t("status_" + view.status)}),
                 el("span", {class: "since", "data-since": String(view.opened)})));
  const dl = el("dl");
  const add = (label, value, cls) => { if (value) dl.append(el("dt", {text: t(label)}), el("dd", {class: cls || "", text: value})); };
  add("caller", view.caller + (view.caller_number && view.caller_number !== view.caller ? " (" + view.caller_number + ")" : ""), "caller");
  add("address", view.address || t("unregistered"), "address");
  add("residents", view.residents, "residents");
  add("notes", view.notes, "notes");
  add("raised", clock(view.opened));
  node.append(dl);
  if (view.acknowledged) {
    node.append(el("p", {class: "ack", text: t("ack_by", {who: view.acknowledged.by, at: clock(view.acknowledged.at)})}));
  }
  if (view.status === "confirmed") node.append(el("p", {class: "ack", text: t("confirmed_by")}));
  else if (view.next_stage) node.append(el("p", {class: "next", "data-next": String(view.next_stage.at),
                                                 "data-stage": view.next_stage.name}));
  else if (view.status === "open") node.append(el("p", {class: "next", text: t("no_next")}));
  const legs = el("ul", {class: "legs"});
  for (const leg of view.legs) {
    legs.append(el("li", {class: "leg s-" + leg.state, "data-leg": leg.id, "data-state": leg.state},
                   el("span", {text: leg.number + " · " + (leg.stage === "neighbours" ? t("neighbours") : leg.stage)
                                     + (leg.attempt > 1 ? " ×" + leg.attempt : "")}),
                   el("span", {class: "state", text: legText(leg.state)})));
  }
  node.append(legs);
  if (may && !ENDED.includes(view.status)) node.append(actions(view));
  const entries = board.entries.get(view.id) || [];
  if (entries.length) {
    const list = el("ul", {class: "timeline"});
    for (const e of entries.slice().reverse()) list.append(el("li", {text: line(e)}));  // newest first
    node.append(list);
  }
  return node;
}

function line(e) {
  const kind = (KINDS[board.lang] || {})[e.kind] || e.kind;
  return clock(e.at) + "  " + kind + (e.number ? "  " + e.number : "") + (e.detail ? "  " + e.detail : "");
}

function actions(view) {
  const box = el("div", {class: "actions"});
  const ack = el("button", {type: "button", class: "primary act-ack", text: t("acknowledge")});
  ack.addEventListener("click", () => act(view.id, "acknowledge", {}));
  const note = el("input", {type: "text", class: "note-text", maxlength: "250", placeholder: t("note")});
  const addNote = el("button", {type: "button", class: "act-note", text: t("add_note")});
  addNote.addEventListener("click", () => {
    const text = note.value.trim();
    if (!text) return;
    note.value = "";  // now: the card may be redrawn before the answer comes
    act(view.id, "note", {text}).then((ok) => {
      const again = document.querySelector("#alarm-" + view.id + " .note-text");
      if (!ok && again && !again.value) again.value = text;
    });
  });
  const outcome = el("select", {class: "outcome"}, el("option", {value: "", text: t("outcome")}));
  for (const o of board.me.outcomes) outcome.append(el("option", {value: o, text: t(o)}));
  const close = el("button", {type: "button", class: "act-close", text: t("close")});
  close.addEventListener("click", () => { if (outcome.value) act(view.id, "close", {outcome: outcome.value, text: note.value}); });
  const number = el("input", {type: "tel", class: "ring-number", maxlength: "40", placeholder: t("ring_number")});
  const ring = el("button", {type: "button", class: "act-ring", text: t("ring")});
  ring.addEventListener("click", () => {
    const text = number.value.trim();
    if (!text) return;
    number.value = "";
    act(view.id, "ring", {number: text});
  });
  box.append(ack, note, addNote, outcome, close, number, ring);
  if (view.caller_number) {
    const back = el("button", {type: "button", class: "act-call-back", text: t("call_back")});
    back.addEventListener("click", () => act(view.id, "call-back", {}));
    box.append(back);
  }
  return box;
}

function render() {
  const list = document.getElementById("alarms");
  const views = [...board.alarms.values()].sort((a, b) => b.opened - a.opened);
  // What is being typed survives the new cards: the inputs, the outcome, the focus.
  const typed = new Map();
  for (const node of list.querySelectorAll(".alarm")) {
    const values = {};
    for (const field of node.querySelectorAll("input, select")) values[field.className] = field.value;
    const focused = node.contains(document.activeElement) ? document.activeElement.className : null;
    typed.set(node.dataset.id, {values, focused});
  }
  list.textContent = "";
  for (const v of views) {
    const node = card(v);
    list.append(node);
    const was = typed.get(String(v.id));
    if (!was) continue;
    for (const field of node.querySelectorAll("input, select")) {
      if (was.values[field.className] !== undefined) field.value = was.values[field.className];
    }
    if (was.focused) { const again = node.getElementsByClassName(was.focused.split(" ").pop())[0]; if (again) again.focus(); }
  }
  document.getElementById("none").hidden = views.length > 0;
  tick();
}

function tick() {
  for (const node of document.querySelectorAll("[data-since]")) node.textContent = t("since") + " " + span(now() - Number(node.dataset.since));
  for (const node of document.querySelectorAll("[data-next]")) {
    const left = Number(node.dataset.next) - now();
    node.textContent = left > 0 ? t("next", {stage: node.dataset.stage, left: span(left)}) : t("next_now", {stage: node.dataset.stage});
  }
  const fresh = board.fresh.size;
  document.title = fresh ? "(" + fresh + ") " + t("new_alarm") + " · " + t("title") : (board.alarms.size ? "(" + board.alarms.size + ") " : "") + t("title");
}

function favicon(alarm) {
  const color = alarm ? "#dc2626" : "#059669";
  const svg = "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'><circle cx='8' cy='8' r='7' fill='" + color + "'/></svg>";
  document.getElementById("favicon").href = "data:image/svg+xml," + encodeURIComponent(svg);
}

function beep() {
  if (!board.audio) return;
  const ctx = board.audio, start = ctx.currentTime;
  for (let i = 0; i < 3; i++) {
    const osc = ctx.createOscillator(), gain = ctx.createGain();
    osc.frequency.value = i % 2 ? 660 : 880;
    gain.gain.setValueAtTime(0.3, start + i * 0.35);
    gain.gain.setValueAtTime(0, start + i * 0.35 + 0.25);
    osc.connect(gain).connect(ctx.destination);
    osc.start(start + i * 0.35);
    osc.stop(start + i * 0.35 + 0.3);
  }
}

// What the server says ----------------------------------------------------------------

function snapshot(data) {
  board.offset = data.now - Date.now() / 1000;
  board.alarms = new Map(data.alarms.map((v) => [v.id, v]));
  for (const v of data.alarms) board.seen.add(v.id);
  favicon(board.alarms.size > 0);
  render();
}

function changes(data) {
  // The changes of the last moments, and the views of the alarms they touched.
  board.offset = data.now - Date.now() / 1000;
  let fresh = false, ended = false;
  for (const e of data.entries) {
    const entries = board.entries.get(e.alarm_id) || [];
    entries.push(e);
    board.entries.set(e.alarm_id, entries.slice(-30));
    if (e.kind === "acknowledged") board.fresh.delete(e.alarm_id);
  }
  for (const v of data.views) {
    if (!ENDED.includes(v.status)) {
      if (!board.seen.has(v.id)) {
        board.seen.add(v.id);
        board.fresh.add(v.id);
        fresh = true;
      }
      board.alarms.set(v.id, v);
    } else {
      board.alarms.delete(v.id);
      board.fresh.delete(v.id);
      board.entries.delete(v.id);
      ended = true;
    }
  }
  if (fresh) beep();
  if (ended) loadRecent();
  favicon(board.fresh.size > 0 || board.alarms.size > 0);
  render();
}

function connect() {
  const link = document.getElementById("link");
  const source = new EventSource("/board/api/events");
  board.source = source;
  source.addEventListener("open", () => { link.textContent = t("live"); link.className = "link up"; });
  source.addEventListener("snapshot", (m) => snapshot(JSON.parse(m.data)));
  source.addEventListener("changes", (m) => changes(JSON.parse(m.data)));
  source.addEventListener("requests", () => loadRequests());
  source.addEventListener("calls", () => loadCalls());
  source.addEventListener("error", () => {
    link.textContent = t("lost"); link.className = "link down";
    fetch("/board/api/me", {credentials: "same-origin"}).then((r) => { if (r.status === 401) location.href = "/board/login"; });
  });
}

async function act(id, action, body) {
  try {
    const r = await fetch("/board/api/alarms/" + id + "/" + action, {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": board.me.csrf},
      body: JSON.stringify(body)});
    if (r.status === 401) { location.href = "/board/login"; return false; }
    const answer = await r.json();
    if (!r.ok) { alert(t("failed", {why: answer.error || r.status})); return false; }
    board.fresh.delete(id);
    return true;
  } catch (err) {
    alert(t("failed", {why: String(err)}));
    return false;
  }
}

async function loadRecent() {
  const r = await fetch("/board/api/recent?limit=20", {credentials: "same-origin"});
  if (!r.ok) return;
  const data = await r.json();
  const list = document.getElementById("recent-list");
  list.textContent = "";
  for (const a of data.alarms) {
    const head = t("alarm") + " " + a.id + " · " + clock(a.opened, true) + " · " + (a.address || a.caller || t("unregistered"))
      + " · " + t("status_" + a.status) + (a.outcome ? " · " + a.outcome : "");
    const item = el("details", {class: "recent-item", id: "recent-" + a.id}, el("summary", {text: head}));
    const ol = el("ol", {class: "timeline"});
    for (const e of a.timeline) ol.append(el("li", {text: line(e)}));
    item.append(ol);
    list.append(item);
  }
}

async function loadCalls() {
  const r = await fetch("/board/api/calls?limit=30", {credentials: "same-origin"});
  if (!r.ok) return;
  const data = await r.json();
  const list = document.getElementById("call-list");
  list.textContent = "";
  document.getElementById("no-calls").hidden = data.calls.length > 0;
  for (const c of data.calls) {
    const head = clock(Date.parse(c.started) / 1000, true) + " · " + (c.caller || "?")
      + (c.destination ? " · " + t("to") + " " + c.destination : "") + " · "
      + (TEXT[board.lang]["call_" + c.outcome] || c.outcome);
    const item = el("details", {class: "call-item", id: "call-" + c.id}, el("summary", {text: head}));
    const ol = el("ol", {class: "timeline"});
    for (const step of c.path) ol.append(el("li", {text: step}));
    item.append(ol);
    list.append(item);
  }
}

async function loadStaff() {
  const r = await fetch("/board/api/staff", {credentials: "same-origin"});
  if (!r.ok) return;
  const data = await r.json();
  const list = el("ul", {class: "staff-list"});
  for (const m of data.staff) list.append(el("li", {text: m.name + " · " + m.role + (m.online ? " · " + t("online") : "")}));
  const section = el("section", {id: "staff"}, el("h2", {text: t("staff")}), list);
  const old = document.getElementById("staff");
  if (old) old.replaceWith(section); else document.querySelector("main").append(section);
}

async function loadRequests() {
  const r = await fetch("/board/api/requests", {credentials: "same-origin"});
  if (!r.ok) return;
  const data = await r.json();
  const list = document.getElementById("request-list");
  list.textContent = "";
  document.getElementById("no-requests").hidden = data.open.length > 0;
  for (const q of data.open) {
    const when = clock(Date.parse(q.requested_at) / 1000, true);
    const item = el("div", {class: "request" + (q.overdue ? " overdue" : ""), id: "request-" + q.id},
      el("div", {text: t(q.kind) + " · " + q.caller + (q.office_label ? " → " + q.office_label : "")
                       + " · " + when + (q.overdue ? " · " + t("overdue") : "")}));
    if (q.called_back_at) item.append(el("div", {text: t("called_back", {from: q.called_back_from || "", at: clock(Date.parse(q.called_back_at) / 1000)})}));
    if (q.recording) item.append(el("audio", {controls: "", preload: "none", src: "/board/api/requests/" + q.id + "/recording"}));
    if (board.me.may_act) {
      const box = el("div", {class: "actions"});
      const phone = el("input", {type: "tel", class: "call-from", maxlength: "64", placeholder: t("call_from")});
      const call = el("button", {type: "button", class: "req-call", text: t("call_back_req")});
      call.addEventListener("click", () => { if (phone.value.trim()) requestAct(q.id, "call-back", {from: phone.value.trim()}); });
      const note = el("input", {type: "text", class: "done-note", maxlength: "500", placeholder: t("done_note")});
      const done = el("button", {type: "button", class: "req-done", text: t("done")});
      done.addEventListener("click", () => requestAct(q.id, "done", {note: note.value}));
      box.append(phone, call, note, done);
      item.append(box);
    }
    list.append(item);
  }
}

async function requestAct(id, action, body) {
  const r = await fetch("/board/api/requests/" + id + "/" + action, {
    method: "POST", credentials: "same-origin",
    headers: {"Content-Type": "application/json", "X-CSRF-Token": board.me.csrf},
    body: JSON.stringify(body)});
  if (!r.ok) { const answer = await r.json().catch(() => ({})); alert(t("failed", {why: answer.error || r.status})); }
  loadRequests();
}

async function loadHealth() {
  // The status lights (/status.json on the same port): AMI, AstDB, database, files; the routing now.
  let data;
  try {
    const r = await fetch("/status.json", {credentials: "same-origin"});
    if (!r.ok) return;
    data = await r.json();
  } catch (err) { return; }
  const lights = document.getElementById("lights");
  lights.textContent = "";
  for (const [name, light] of Object.entries(data.lights || {})) {
    lights.append(el("li", {class: light, "data-light": name, text: t("light_" + name) + "：" + t(light)}));
  }
  const refused = document.getElementById("refused");
  refused.textContent = "";
  for (const f of data.files || []) {
    if (!f.refused) continue;
    const at = f.last_refused ? clock(Date.parse(f.last_refused) / 1000, true) : "";
    refused.append(el("li", {text: t("refused_file", {file: f.refused_file || f.file, at})
                                   + " " + (f.errors || []).map((e) => e.text).join("; ")}));
  }
  const table = document.getElementById("departments");
  table.textContent = "";
  for (const d of data.departments || []) {
    const state = t("dept_" + d.state) === "dept_" + d.state ? d.state : t("dept_" + d.state);
    const next = d.next_change ? t("until", {at: clock(Date.parse(d.next_change) / 1000),
                                          state: t("dept_" + d.next_state) === "dept_" + d.next_state ? d.next_state : t("dept_" + d.next_state)}) : "";
    table.append(el("tr", {}, el("td", {text: d.label || d.name}), el("td", {class: d.state, text: state}),
                    el("td", {text: next})));
  }
}

async function start() {
  const asked = new URLSearchParams(location.search).get("lang");
  const r = await fetch("/board/api/me", {credentials: "same-origin"});
  if (r.status === 401) { location.href = "/board/login"; return; }
  board.me = await r.json();
  board.lang = asked === "en" || asked === "zh" ? asked : board.me.language;
  board.tz = board.me.timezone;
  document.documentElement.lang = board.lang === "zh" ? "zh-CN" : "en";
  for (const node of document.querySelectorAll("[data-t]")) node.textContent = t(node.dataset.t);
  const other = document.getElementById("lang");
  other.textContent = t("other");
  other.href = "?lang=" + t("other_lang");
  document.querySelector("#logout input[name=csrf]").value = board.me.csrf;
  document.getElementById("me").textContent = board.me.name + " · " + board.me.role + (board.me.may_act ? "" : " · " + t("viewer"));
  const sound = document.getElementById("sound");
  sound.addEventListener("click", () => {
    const Context = window.AudioContext || window.webkitAudioContext;
    if (!board.audio && Context) board.audio = new Context();
    if (board.audio) board.audio.resume();
    sound.textContent = t("sound_is_on");
    sound.disabled = true;
    beep();
  });
  document.addEventListener("click", (ev) => {
    const cardNode = ev.target.closest && ev.target.closest(".alarm.new");
    if (cardNode) { board.fresh.delete(Number(cardNode.dataset.id)); cardNode.classList.remove("new"); tick(); }
  });
  favicon(false);
  connect();
  loadRecent();
  loadHealth();
  setInterval(loadHealth, 15000);
  loadRequests();
  loadCalls();
  setInterval(loadRequests, 60000);  // "over a day" comes with time, not with a change
  if (board.me.role === "admin") { loadStaff(); setInterval(loadStaff, 60000); }
  setInterval(tick, 1000);
}

document.addEventListener("DOMContentLoaded", start);
