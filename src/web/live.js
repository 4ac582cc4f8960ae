// callvault live wallboard: the floor now from GET /api/live (Server-Sent
// Events, README "Live wallboard"). Each `floor` event is the whole floor;
// the page only draws it, and counts the durations on between events from
// the server's clock (`at`). EventSource reconnects by itself when the
// connection drops; a refused stream (signed out) is retried every 10 s.
"use strict";

const $ = (sel) => document.querySelector(sel);
let floor = null;
// Server clock minus this browser's: durations are counted on the server's.
let offset = 0;
const RETRY_MS = 10000;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k === "class") e.className = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return e;
}

function since(iso) {
  return Math.max(0, Math.floor((Date.now() + offset - Date.parse(iso)) / 1000));
}

function mmss(n) {
  const h = Math.floor(n / 3600), m = Math.floor((n % 3600) / 60), s = n % 60;
  const p = (x) => String(x).padStart(2, "0");
  return h ? `${h}:${p(m)}:${p(s)}` : `${m}:${p(s)}`;
}

function queueName(q) {
  return q.number ? `${q.number} (group ${q.queue})` : `group ${q.queue}`;
}

function render() {
  $("#live-clock").textContent = new Date(Date.now() + offset).toLocaleTimeString();
  if (!floor) return;
  const waiting = floor.queues.reduce((n, q) => n + q.waiting, 0);
  const longest = floor.queues.reduce((n, q) => Math.max(n, since(q.longest_since)), 0);
  $("#live-calls").textContent = String(floor.calls.length);
  $("#live-waiting").textContent = String(waiting);
  $("#live-longest").textContent = waiting ? mmss(longest) : "–";
  $("#live-longest").classList.toggle("warn", waiting > 0 && longest >= 60);
  $("#live-agents").textContent = String(floor.agents.length);
  $("#queues-table tbody").replaceChildren(...floor.queues.map((q) => el("tr", { "data-queue": q.queue, "data-device": q.device },
    el("td", {}, queueName(q)), el("td", { class: "n waiting" }, String(q.waiting)),
    el("td", { class: "n" }, mmss(since(q.longest_since))))));
  $("#agents-table tbody").replaceChildren(...floor.agents.map((a) => el("tr", { "data-extension": a.extension },
    el("td", {}, a.extension), el("td", {}, a.with), el("td", { class: "n" }, mmss(since(a.since))))));
  $("#live-calls-table tbody").replaceChildren(...floor.calls.map((c) => el("tr", { "data-caller": c.caller, "data-device": c.device },
    el("td", {}, c.caller || "?"), el("td", {}, c.callee || ""), el("td", {}, c.extension || ""),
    el("td", { class: c.state }, c.state === "queued" ? `queued (${c.queue})` : c.state),
    el("td", { class: "n" }, mmss(since(c.since))))));
}

function setState(text, cls) {
  const s = $("#live-state");
  s.textContent = text;
  s.className = "state " + (cls || "");
}

function connect() {
  const es = new EventSource("/api/live");
  es.addEventListener("floor", (m) => {
    floor = JSON.parse(m.data);
    offset = Date.parse(floor.at) - Date.now();
    $("#live-signin").hidden = true;
    $("#live-main").hidden = false;
    setState("live", "live");
    render();
  });
  es.onerror = async () => {
    if (es.readyState !== EventSource.CLOSED) { setState("reconnecting…", "down"); return; }
    // Refused (not signed in, token revoked) or the server is away: say
    // which, and try again later.
    setState("disconnected", "down");
    try {
      const r = await fetch("/api/session");
      if (r.status === 401) {
        floor = null;
        $("#live-main").hidden = true;
        $("#live-signin").hidden = false;
      }
    } catch (_) { /* the server is away */ }
    setTimeout(connect, RETRY_MS);
  };
}

setInterval(render, 1000);
connect();
