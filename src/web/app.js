// callvault web page: sign in with an API token, search calls, open one
// (legs, queue visit, recordings, player), daily report, billing CSV and .xlsx.
// Plain DOM, no framework, no network access beyond this server.
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
  for (const v of ["calls", "report", "billing"]) $(`#${v}-view`).hidden = v !== view;
  for (const b of document.querySelectorAll(".tab")) b.classList.toggle("active", b.dataset.view === view);
  if (view === "report") loadReport();
  if (view === "billing") updateBillingLink();
}

function showWho(who) {
  $("#who").textContent = who && who.name ? `${who.name} (${who.role})` : "";
}

function signedIn(who) {
  showWho(who);
  $("#login-view").hidden = true;
  $("#nav").hidden = false;
  show("calls");
  search();
}

function signOut(message) {
  fetch("/api/session", { method: "DELETE" }).catch(() => {});
  localStorage.removeItem(KEY);
  showWho(null);
  $("#nav").hidden = true;
  for (const v of ["calls", "report", "billing"]) $(`#${v}-view`).hidden = true;
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
  signedIn(who);
});

$("#logout").addEventListener("click", () => signOut(""));
for (const b of document.querySelectorAll(".tab")) b.addEventListener("click", () => show(b.dataset.view));

// ---- calls ---------------------------------------------------------------

function query(cursor) {
  const q = new URLSearchParams({ from: $("#from").value, to: $("#to").value, limit: $("#limit").value });
  for (const k of ["number", "ext", "direction", "answered"]) {
    const v = $("#" + k).value.trim();
    if (v) q.set(k, v);
  }
  if (cursor) q.set("cursor", cursor);
  return "/api/calls?" + q.toString();
}

async function search(newSearch = true) {
  if (newSearch) { cursors = [null]; page = 0; }
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
  $("#calls-status").textContent = calls.length ? `${calls.length} calls on this page` : "No calls match.";
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
      c.settled === false ? el("span", { class: "tag", title: "legs may still arrive" }, "provisional") : ""));
  tr.addEventListener("click", () => {
    for (const r of document.querySelectorAll("#calls-table tr.selected")) r.classList.remove("selected");
    tr.classList.add("selected");
    openCall(c.id);
  });
  return tr;
}

$("#search-form").addEventListener("submit", (ev) => { ev.preventDefault(); search(true); });
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
  const box = $("#detail");
  box.hidden = false;
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
  if (recs.length) {
    parts.push(table(["Leg", "Path", "Codec", "Status", "Attempts", "Last error"],
      recs.map((r) => [String(r.cdr_id ?? r.leg_id ?? ""), r.path, r.codec, el("span", { class: "tag " + r.status }, r.status),
        String(r.attempts ?? ""), r.last_error || ""])));
  }

  parts.push(el("h4", {}, "Legs"));
  parts.push(table(["Cdr id", "Type", "Route", "CPN", "CDPN", "Start", "End", "Duration", "Trunk", "Recording"],
    (c.legs || []).map((l) => [l.cdr_id, l.leg_type, l.route, l.cpn, l.cdpn, localTime(l.start || l.time_start),
      localTime(l.end || l.time_end), secs(l.duration), l.trunk_number, l.recording || ""])));

  parts.push(el("h4", {}, "Queue"));
  const visitsBox = el("div", { id: "queue-visits" }, el("p", { class: "status" }, "Loading…"));
  parts.push(visitsBox);
  box.replaceChildren(...parts);
  const visits = await queueVisits(c);
  if (visits === null) visitsBox.replaceChildren(el("p", { class: "status" }, "Queue visits are not available."));
  else if (!visits.length) visitsBox.replaceChildren(el("p", { class: "status" }, "The call did not wait in a queue."));
  else visitsBox.replaceChildren(table(["Group", "Entered", "Outcome", "Agent", "Wait"],
    visits.map((v) => [v.group_number ? `${v.grp ?? v.group} (${v.group_number})` : String(v.grp ?? v.group ?? ""),
      localTime(v.entered_at || v.entered_local), v.outcome, v.agent || "", v.wait_seconds == null ? "" : `${Math.round(v.wait_seconds)}s`])));
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

$("#report-form").addEventListener("submit", (ev) => { ev.preventDefault(); loadReport(); });

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
    if (linkToken) { signedIn(await startSession(linkToken)); return; }
    const r = await fetch("/api/session");
    if (r.ok) { signedIn(await r.json()); return; }
    const remembered = localStorage.getItem(KEY);
    if (remembered) { signedIn(await startSession(remembered)); return; }
    signOut("");
  } catch (e) {
    signOut(e.status === 401 ? "Your token is no longer valid. Please sign in again." : "Sign-in failed: " + e.message);
  }
})();
