// callvault web page: sign in with an API token, search calls, open one
// (legs, queue visit, recordings, player, what happened), daily report, billing CSV and .xlsx,
// and (administrators) the devices. Plain DOM, no framework, no network
// access beyond this server. Where the user is lives in the URL's fragment
// (#/calls?from=…, #/calls/{id}, #/report?date=…, #/billing, #/devices), so
// a reload or a shared link opens the same view.
"use strict";

const $ = (sel) => document.querySelector(sel);
// The page signs in by trading the token for a session (POST /api/session):
// from then on only the session cookie (HttpOnly, so this script cannot read
// it) authenticates its requests. The token itself is kept only when the user
// ticks "remember me", in localStorage, to open a new session on a later
// visit; otherwise it is forgotten as soon as the session exists.
const KEY = "callvault.token";
// An older page kept the token in sessionStorage: never any more.
sessionStorage.removeItem(KEY);
// `callvault demo` prints a link with the token in the fragment (never sent
// to the server, so it stays out of access logs): take it and clear it.
let linkToken = "";
if (location.hash.startsWith("#token=")) {
  linkToken = decodeURIComponent(location.hash.slice(7));
  history.replaceState(null, "", location.pathname + location.search);
}
// Cursor paging: cursors[i] is the cursor that fetches page i (page 0 = null).
let cursors = [null];
let page = 0;
const VIEWS = ["calls", "report", "billing", "devices"];
// The filters of the search on screen ("" before the first one), and the
// fragment of the list to go back to when a call's detail closes.
let searched = "";
let listHash = "#/calls";

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return e;
}

function ymd(d) {
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

function daysAgo(n) { const d = new Date(); d.setDate(d.getDate() - n); return ymd(d); }

// A YYYY-MM-DD day plus n days, by the calendar alone (no zone involved).
function addDays(day, n) {
  const d = new Date(day + "T00:00:00Z");
  d.setUTCDate(d.getUTCDate() + n);
  return d.toISOString().slice(0, 10);
}

// The date fields default to the devices' days (the server's configured
// zone, GET /api/today), not the browser's: a browser a few zones west of
// the office would otherwise open yesterday's report on the day before.
async function serverDays() {
  let t;
  try { t = await api("/api/today"); } catch (_) { return; /* the browser's days stay */ }
  $("#from").value = addDays(t.today, -6);
  $("#to").value = t.today;
  $("#report-date").value = t.yesterday;
  $("#bill-from").value = addDays(t.today, -30);
  $("#bill-to").value = t.yesterday;
}

// Links the browser follows by itself (audio, downloads, the report frame)
// cannot send an Authorization header either: everything rides on the
// session cookie, so no token is ever put in a URL (URLs end up in history,
// access logs and Referer headers).
async function startSession(token) {
  const r = await fetch("/api/session", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ token }),
  });
  if (!r.ok) throw new HttpError(r.status, r.statusText);
  return r.json();
}

class HttpError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, retried) {
  const r = await fetch(path);
  if (!r.ok) {
    let msg = r.statusText;
    try { msg = (await r.json()).error || msg; } catch (_) { /* not JSON */ }
    if (r.status === 401) {
      // The session ended (idle, signed out elsewhere): a remembered token
      // opens a new one; otherwise sign in again.
      const remembered = localStorage.getItem(KEY);
      if (remembered && !retried) {
        try { showWho(await startSession(remembered)); return api(path, true); } catch (_) { /* refused */ }
      }
      signOut("Your session has ended or your token is no longer valid. Please sign in again.");
    }
    throw new HttpError(r.status, msg);
  }
  return r.json();
}

function secs(n) {
  if (n === null || n === undefined) return "";
  const m = Math.floor(n / 60), s = n % 60;
  return m ? `${m}:${String(s).padStart(2, "0")}` : `${s}s`;
}

function localTime(iso) {
  // Times are ISO 8601 with the device's offset; show the device-local wall clock.
  return typeof iso === "string" ? iso.replace("T", " ").replace(/(\.\d+)?([+-]\d\d:\d\d|Z)$/, "") : "";
}

// ---- sign in / out -------------------------------------------------------

function show(view) {
  for (const v of VIEWS) $(`#${v}-view`).hidden = v !== view;
  for (const b of document.querySelectorAll(".tab")) b.classList.toggle("active", b.dataset.view === view);
  if (view !== "calls") $("#detail-panel").hidden = true;
  if (view === "report") loadReport();
  if (view === "billing") updateBillingLink();
  if (view === "devices") loadDevices();
}

// Goes to a fragment; the same fragment again (a repeated search) is
// routed too, as no hashchange fires for it.
function go(hash) {
  if (location.hash === hash) route(); else location.hash = hash;
}

function route() {
  if ($("#nav").hidden) return; // signed out
  const h = location.hash || "#/calls";
  const [path, qs] = h.slice(1).split("?");
  const params = new URLSearchParams(qs || "");
  const m = path.match(/^\/calls\/([^/]+)$/);
  if (m) {
    show("calls");
    if (!searched) search(true);
    openCall(decodeURIComponent(m[1]));
    return;
  }
  const view = path.replace(/^\//, "");
  if (view === "report") {
    if (params.get("date")) $("#report-date").value = params.get("date");
    show("report");
  } else if (view === "billing" || view === "devices") {
    show(view);
  } else {
    $("#detail-panel").hidden = true;
    setFilters(params);
    show("calls");
    listHash = h;
    if (filterParams().toString() !== searched) search(true);
  }
}

window.addEventListener("hashchange", route);

function showWho(who) {
  $("#who").textContent = who && who.name ? `${who.name} (${who.role})` : "";
}

async function signedIn(who) {
  showWho(who);
  $("#login-view").hidden = true;
  $("#nav").hidden = false;
  // The devices' figures are for administrators (GET /api/devices).
  $("button[data-view='devices']").hidden = !(who && who.role === "admin");
  searched = "";
  await serverDays();
  route();
}

function signOut(message) {
  // keepalive: the sign-out still reaches the server when the tab is closed
  // or reloaded right after the click (else the session would live on until
  // its idle timeout).
  fetch("/api/session", { method: "DELETE", keepalive: true }).catch(() => {});
  localStorage.removeItem(KEY);
  showWho(null);
  $("#nav").hidden = true;
  for (const v of VIEWS) $(`#${v}-view`).hidden = true;
  $("#detail-panel").hidden = true;
  $("#login-view").hidden = false;
  $("#login-error").textContent = message || "";
}

$("#login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const token = $("#token").value.trim();
  $("#login-error").textContent = "";
  let who;
  try {
    who = await startSession(token);
  } catch (e) {
    $("#login-error").textContent = e.status === 401 ? "That token was not accepted." : "Sign-in failed: " + e.message;
    return;
  }
  if ($("#remember").checked) localStorage.setItem(KEY, token); else localStorage.removeItem(KEY);
  $("#token").value = "";
  await signedIn(who);
});

$("#logout").addEventListener("click", () => {
  // Signed out on purpose: the next sign-in starts on the calls list. (A
  // session that ended keeps the fragment, so a shared link survives.)
  history.replaceState(null, "", location.pathname + location.search);
  listHash = "#/calls";
  signOut("");
});
for (const b of document.querySelectorAll(".tab")) {
  b.addEventListener("click", () => go(b.dataset.view === "calls" ? listHash : "#/" + b.dataset.view));
}

// ---- calls ---------------------------------------------------------------

const FILTERS = ["from", "to", "number", "ext", "direction", "answered", "has_recording",
  "longest_silence_min", "overtalk_min", "talk_ratio_min", "talk_ratio_max", "limit"];

// The search's filters as they are in the form (also the list's fragment).
function filterParams() {
  const q = new URLSearchParams();
  for (const k of FILTERS) {
    const v = $("#" + k).value.trim();
    if (v) q.set(k, v);
  }
  return q;
}

// Fills the form from a fragment's filters; those it does not name keep
// their value (the dates default to the devices' last week).
function setFilters(params) {
  for (const k of FILTERS) {
    if (params.has(k)) $("#" + k).value = params.get(k);
    else if (!["from", "to", "limit"].includes(k) && [...params.keys()].length) $("#" + k).value = "";
  }
}

function query(cursor) {
  const q = filterParams();
  if (cursor) q.set("cursor", cursor);
  return "/api/calls?" + q.toString();
}

async function search(newSearch = true) {
  if (newSearch) { cursors = [null]; page = 0; searched = filterParams().toString(); }
  $("#calls-status").textContent = "Loading…";
  let data;
  try {
    data = await api(query(cursors[page]));
  } catch (e) {
    $("#calls-status").textContent = "Search failed: " + e.message;
    return;
  }
  const calls = data.calls || [];
  cursors[page + 1] = data.next_cursor || null;
  const tbody = $("#calls-table tbody");
  tbody.replaceChildren(...calls.map(row));
  const status = $("#calls-status");
  if (!calls.length) status.textContent = "No calls match.";
  else {
    const total = data.total_capped ? `more than ${data.total.toLocaleString("en")}` : data.total.toLocaleString("en");
    status.replaceChildren(el("span", { id: "calls-total", "data-total": data.total }, `${total} calls match`),
      ` · ${calls.length} on this page`);
  }
  $("#page").textContent = `Page ${page + 1}`;
  $("#prev").disabled = page === 0;
  $("#next").disabled = !data.next_cursor;
}

function row(c) {
  const tr = el("tr", { "data-id": c.id },
    el("td", {}, localTime(c.start)),
    el("td", {}, c.direction + (c.forwarded_out ? " ↪" : "")),
    el("td", {}, c.caller),
    el("td", {}, c.callee),
    el("td", {}, (c.extensions || []).join(" ")),
    el("td", {}, c.answered_by || ""),
    el("td", { class: "n" }, secs(c.talk_seconds)),
    el("td", { class: "n" }, secs(c.billable_seconds)),
    el("td", {}, el("span", { class: "tag " + (c.answered ? "yes" : "no") }, c.answered ? "answered" : "missed"),
      c.settled === false ? el("span", { class: "tag", title: "legs may still arrive" }, "provisional") : ""),
    el("td", { class: "rec", "data-rec": c.recording || "" },
      c.recording ? el("span", { class: "tag " + c.recording }, c.recording) : "—"));
  tr.addEventListener("click", () => go("#/calls/" + encodeURIComponent(c.id)));
  return tr;
}

$("#search-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  searched = ""; // the same filters again: search again (new calls came in)
  go("#/calls?" + filterParams().toString());
});
$("#detail-close").addEventListener("click", () => go(listHash));
$("#next").addEventListener("click", () => { if (cursors[page + 1]) { page += 1; search(false); } });
$("#prev").addEventListener("click", () => { if (page > 0) { page -= 1; search(false); } });

function table(headers, rows) {
  return el("div", { class: "table-wrap" }, el("table", {},
    el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows.map((r) => el("tr", {}, ...r.map((v) => el("td", {}, v ?? "")))))));
}

async function queueVisits(call) {
  if (Array.isArray(call.queue_visits)) return call.queue_visits;
  const day = localTime(call.start).slice(0, 10);
  try {
    const data = await api(`/api/queues/visits?from=${day}&to=${day}`);
    return (data.visits || []).filter((v) => v.call_id === call.id);
  } catch (_) {
    return null; // queue visits not available
  }
}

async function openCall(id) {
  for (const r of document.querySelectorAll("#calls-table tr.selected")) r.classList.remove("selected");
  for (const r of document.querySelectorAll("#calls-table tbody tr")) if (r.dataset.id === id) r.classList.add("selected");
  const box = $("#detail");
  $("#detail-panel").hidden = false;
  $("#detail-panel").scrollTop = 0;
  box.replaceChildren(el("p", { class: "status" }, "Loading call…"));
  let c;
  try {
    c = await api("/api/calls/" + encodeURIComponent(id));
  } catch (e) {
    box.replaceChildren(el("p", { class: "error" }, "Could not load the call: " + e.message));
    return;
  }
  const parts = [el("h3", {}, `${c.direction} call ${c.caller} → ${c.callee}`)];
  const facts = [
    ["Call id", c.id], ["Device", c.device], ["Start", localTime(c.start)], ["End", localTime(c.end)],
    ["Extensions", (c.extensions || []).join(" ")], ["Answered by", c.answered_by || "—"],
    ["Trunk", c.trunk || "—"], ["Talk", secs(c.talk_seconds)], ["Billable", secs(c.billable_seconds)],
    ["Status", (c.answered ? "answered" : "missed") + (c.settled === false ? ", provisional" : "")],
  ];
  parts.push(el("dl", {}, ...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, String(v ?? ""))])));

  const recs = c.recordings || [];
  parts.push(el("h4", {}, "Recording"));
  const playable = recs.length === 0 ? false : recs.some((r) => r.status === "done");
  if (playable) {
    const src = `/api/calls/${encodeURIComponent(c.id)}/recording`;
    parts.push(el("audio", { id: "player", controls: true, preload: "auto", src }));
    parts.push(el("p", {}, el("a", { id: "download-rec", href: src + "?download=1", download: `${c.id}.wav` }, "Download WAV")));
  } else {
    parts.push(el("p", { class: "status" }, recs.length ? "No playable recording yet." : "This call has no recording."));
  }
  parts.push(conversationView(c));
  if (recs.length) {
    parts.push(table(["Leg", "Path", "Codec", "Status", "Attempts", "Last error"],
      recs.map((r) => [String(r.cdr_id ?? r.leg_id ?? ""), r.path, r.codec, el("span", { class: "tag " + r.status }, r.status),
        String(r.attempts ?? ""), r.last_error || ""])));
  }

  parts.push(el("h4", {}, "Legs"));
  parts.push(table(["Cdr id", "Type", "Route", "CPN", "CDPN", "Start", "End", "Duration", "Trunk", "Recording"],
    (c.legs || []).map((l) => [l.cdr_id, l.type, l.route, l.cpn, l.cdpn, localTime(l.start || l.time_start),
      localTime(l.end || l.time_end), secs(l.duration), l.trunk_number, l.recording || ""])));

  parts.push(el("h4", {}, "Queue"));
  const visitsBox = el("div", { id: "queue-visits" }, el("p", { class: "status" }, "Loading…"));
  parts.push(visitsBox);
  parts.push(whatHappened(c.id));
  box.replaceChildren(...parts);
  const visits = await queueVisits(c);
  if (visits === null) visitsBox.replaceChildren(el("p", { class: "status" }, "Queue visits are not available."));
  else if (!visits.length) visitsBox.replaceChildren(el("p", { class: "status" }, "The call did not wait in a queue."));
  else visitsBox.replaceChildren(table(["Group", "Entered", "Outcome", "Agent", "Wait"],
    visits.map((v) => [v.group_number ? `${v.grp ?? v.group} (${v.group_number})` : String(v.grp ?? v.group ?? ""),
      localTime(v.entered_at || v.entered_local), v.outcome, v.agent || "", v.wait_seconds == null ? "" : `${Math.round(v.wait_seconds)}s`])));
}

// ---- what happened: the call's events (GET /api/calls/{id}/events) -------

// A section that fills itself once the call's timeline is in: each event's
// time from the first one, and what it means in words (docs/calls.md
// "Timeline").
function whatHappened(id) {
  const list = el("ol", { id: "what-happened", class: "timeline" }, el("li", { class: "status" }, "Loading…"));
  api(`/api/calls/${encodeURIComponent(id)}/events`).then((t) => {
    const evs = t.events || [];
    if (!evs.length) {
      list.replaceChildren(el("li", { class: "status" }, "No call events were received for this call."));
      return;
    }
    const t0 = Date.parse(evs[0].received_at);
    list.replaceChildren(...evs.map((e) => el("li", { "data-attribute": e.attribute },
      el("time", { dateTime: e.received_at, title: e.received_at },
        "+" + secs(Math.max(0, Math.round((Date.parse(e.received_at) - t0) / 1000)))),
      el("span", { class: "what" }, e.text))));
    if (t.truncated) list.append(el("li", { class: "status" }, "More events than shown."));
  }).catch((e) => list.replaceChildren(el("li", { class: "error" }, "Could not load the events: " + e.message)));
  return el("section", { class: "what-happened" }, el("h4", {}, "What happened"), list);
}

// ---- conversation figures --------------------------------------------------
// Who spoke when (docs/recordings.md "Conversation figures"): the figures and a
// two-lane timeline under the player; a click on the timeline seeks the audio.
// Built with DOM calls only: the CSP refuses inline styles and scripts.

const SVG_NS = "http://www.w3.org/2000/svg";

function svgEl(tag, attrs, ...children) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return e;
}

function conversationView(c) {
  const box = el("div", { id: "conversation" });
  if (c.conversation_error) {
    box.append(el("h4", {}, "Conversation"),
      el("p", { class: "status" }, "No conversation figures: " + c.conversation_error));
    return box;
  }
  const v = c.conversation;
  if (!v) return box;
  const s2 = (x) => (x == null ? "—" : `${x.toFixed(1)} s`);
  const facts = [
    ["Agent talk", s2(v.agent_talk_seconds)], ["Customer talk", s2(v.customer_talk_seconds)],
    ["Talk ratio", v.talk_ratio == null ? "—" : `${Math.round(v.talk_ratio * 100)} % agent`],
    ["Overtalk", s2(v.overtalk_seconds)], ["Silence", `${s2(v.silence_seconds)} (longest ${s2(v.longest_silence_seconds)})`],
    ["Interruptions", String(v.interruptions)], ["Agent's first word", s2(v.agent_first_word_seconds)],
  ];
  box.append(el("h4", {}, "Conversation"), timeline(c, v),
    el("dl", {}, ...facts.flatMap(([k, x]) => [el("dt", {}, k), el("dd", {}, x)])));
  return box;
}

// Lanes of `v.segments` over the recording's length; seconds → x in a 1000-wide box.
function timeline(c, v) {
  const segs = v.segments || [];
  const recorded = Math.max(0, ...(c.recordings || []).map((r) => r.duration_seconds || 0));
  const total = Math.max(recorded, ...segs.map((s) => s.end), 1);
  const W = 1000, LABEL = 90, LANE = 22, GAP = 6;
  const x = (t) => LABEL + (t / total) * (W - LABEL);
  const svg = svgEl("svg", { id: "timeline", viewBox: `0 0 ${W} ${2 * LANE + GAP}`, role: "img",
    "aria-label": "Who spoke when: agent and customer lanes; click to play from there", "data-duration": total });
  ["agent", "customer"].forEach((side, i) => {
    const y = i * (LANE + GAP);
    svg.append(svgEl("text", { x: 0, y: y + LANE - 6, class: "lane-label" }, side),
      svgEl("rect", { x: LABEL, y, width: W - LABEL, height: LANE, class: "lane", "data-lane": side }));
    for (const s of segs.filter((s) => s.side === side)) {
      svg.append(svgEl("rect", { x: x(s.start), y, width: Math.max(1, x(s.end) - x(s.start)), height: LANE,
        class: "seg " + side, "data-side": side, "data-start": s.start },
        svgEl("title", {}, `${side} ${s.start.toFixed(1)}–${s.end.toFixed(1)} s`)));
    }
  });
  svg.addEventListener("click", (ev) => {
    const box = svg.getBoundingClientRect();
    const at = ((ev.clientX - box.left) / box.width) * W;
    const t = Math.max(0, Math.min(total, ((at - LABEL) / (W - LABEL)) * total));
    const player = document.getElementById("player");
    if (player) player.currentTime = t;
  });
  return svg;
}

// ---- daily report --------------------------------------------------------

function loadReport() {
  const day = $("#report-date").value;
  const base = `/reports/daily?date=${day}`;
  $("#report-csv").href = base + "&format=csv";
  $("#report-json").href = base + "&format=json";
  $("#report-html").href = base + "&format=html";
  $("#report-frame").src = base + "&format=html";
}

$("#report-form").addEventListener("submit", (ev) => { ev.preventDefault(); go("#/report?date=" + $("#report-date").value); });

// ---- devices (administrators) --------------------------------------------

async function loadDevices() {
  $("#devices-status").textContent = "Loading…";
  let rows;
  try {
    rows = await api("/api/devices");
  } catch (e) {
    $("#devices-status").textContent = "Could not load the devices: " + e.message;
    return;
  }
  const silent = rows.filter((r) => r.silent).length;
  $("#devices-status").textContent = `${rows.length} devices and senders` + (silent ? `, ${silent} silent` : "");
  const n = (v) => el("td", { class: "n" }, v == null ? "—" : String(v));
  $("#devices-table tbody").replaceChildren(...rows.map((r) => {
    const reasons = Object.entries(r.refusals_today || {}).map(([k, v]) => `${v} × ${k}`).join("\n");
    const state = r.silent
      ? el("span", { class: "tag silent", title: `usually a push every ${secs(r.usual_gap_seconds)}` }, `silent ${secs(r.silent_for_seconds)}`)
      : (r.kind === "unregistered" ? el("span", { class: "tag no" }, "not registered") : el("span", { class: "tag yes" }, "ok"));
    return el("tr", { "data-name": r.name || r.address || "" },
      el("td", {}, r.name || "—"), el("td", {}, r.kind), el("td", {}, r.address || (r.mac || "")),
      n(r.pushes_today), el("td", { class: "n", title: reasons }, String(r.refused_today)),
      n(r.recordings_pending), n(r.recordings_failed), n(r.derive_backlog),
      n(r.clock_skew_seconds == null ? null : `${r.clock_skew_seconds}s`),
      el("td", {}, r.last_push || "—"), el("td", { class: "state" }, state));
  }));
}

// ---- billing -------------------------------------------------------------

function updateBillingLink() {
  const q = new URLSearchParams({ from: $("#bill-from").value, to: $("#bill-to").value });
  if ($("#bill-per-leg").checked) q.set("per_leg", "1");
  $("#billing-xlsx-link").href = "/export/billing.xlsx?" + q.toString();
  if ($("#bill-bom").checked) q.set("bom", "1");
  $("#billing-link").href = "/export/billing.csv?" + q.toString();
}

$("#billing-form").addEventListener("change", updateBillingLink);

// ---- start ---------------------------------------------------------------

$("#from").value = daysAgo(6);
$("#to").value = daysAgo(0);
$("#report-date").value = daysAgo(1);
$("#bill-from").value = daysAgo(30);
$("#bill-to").value = daysAgo(1);
// Signed in already (the session cookie), else by the demo's link or a
// remembered token, else the sign-in form.
(async () => {
  try {
    if (linkToken) { await signedIn(await startSession(linkToken)); return; }
    const r = await fetch("/api/session");
    if (r.ok) { await signedIn(await r.json()); return; }
    const remembered = localStorage.getItem(KEY);
    if (remembered) { await signedIn(await startSession(remembered)); return; }
    signOut("");
  } catch (e) {
    signOut(e.status === 401 ? "Your token is no longer valid. Please sign in again." : "Sign-in failed: " + e.message);
  }
})();
