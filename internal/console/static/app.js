// Postern's web console: one page, no framework, no build step. Every view
// reads the /v1 API that scripts use; the session cookie is HttpOnly, and
// calls that change something carry the session's CSRF token in a header.
"use strict";

const state = { csrf: "", timer: 0, view: 0 };

// h builds an element: h("a", {href: "#/", class: "x", onclick: f}, "text", child).
// Text always goes through text nodes, never markup.
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const kid of kids.flat()) {
    if (kid === undefined || kid === null || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

class APIError extends Error {
  constructor(status, text) { super(text || ("HTTP " + status)); this.status = status; }
}

// api calls the admin API as the logged-in browser.
async function api(path, opts) {
  opts = opts || {};
  const init = { method: opts.method || "GET", headers: {}, credentials: "same-origin", cache: "no-store" };
  if (opts.token) init.headers["Authorization"] = "Bearer " + opts.token;
  if (init.method !== "GET") {
    init.headers["Content-Type"] = "application/json";
    if (state.csrf) init.headers["X-Postern-CSRF"] = state.csrf;
    init.body = JSON.stringify(opts.body || {});
  }
  const r = await fetch(path, init);
  if (r.status === 401 && !opts.token) {
    showLogin("Your session has ended; log in again.");
    throw new APIError(401, "not logged in");
  }
  if (!r.ok) throw new APIError(r.status, (await r.text()).trim());
  if (r.status === 204) return null;
  const ct = r.headers.get("Content-Type") || "";
  return ct.includes("json") ? r.json() : r.text();
}

// ---- formatting

function fmtTime(t) {
  if (!t) return "";
  const d = new Date(t);
  if (isNaN(d) || d.getUTCFullYear() < 1970) return "";
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}
function fmtAge(s) {
  if (!s) return "0 s";
  if (s < 120) return Math.round(s) + " s";
  if (s < 7200) return Math.round(s / 60) + " min";
  if (s < 172800) return Math.round(s / 3600) + " h";
  return Math.round(s / 86400) + " d";
}
function fmtBytes(n) {
  if (n === undefined || n === null) return "";
  if (n < 1024) return n + " B";
  if (n < 1048576) return (n / 1024).toFixed(1) + " KiB";
  return (n / 1048576).toFixed(1) + " MiB";
}
function statusBadge(s) {
  const cls = { delivered: "ok", done: "ok", accepted: "", pending: "warn", retry: "warn", queued: "warn",
    failed: "bad", expired: "bad", "dead-lettered": "bad" }[s] || "";
  return h("span", { class: "badge " + cls, text: s || "unknown" });
}
function kv(pairs) {
  const dl = h("dl", { class: "kv" });
  for (const [k, v] of pairs) {
    if (v === undefined || v === null || v === "") continue;
    dl.append(h("dt", { text: k }), h("dd", {}, v));
  }
  return dl;
}
function card(title, ...body) {
  return h("section", { class: "card" }, title ? h("h2", { text: title }) : null, ...body);
}
function table(headers, rows) {
  return h("table", {},
    h("thead", {}, h("tr", {}, headers.map(c => h("th", { class: c.num ? "num" : "", text: typeof c === "string" ? c : c.label })))),
    h("tbody", {}, rows));
}
function errorBox(e) {
  return h("p", { class: "error", role: "alert", text: e.message || String(e) });
}

// confirmButton asks on the page itself before doing something (no window
// dialogs): the first click shows what will happen, Confirm does it.
function confirmButton(label, question, action, cls) {
  const wrap = h("span", {});
  const btn = h("button", { type: "button", class: cls || "", text: label });
  btn.addEventListener("click", () => {
    const result = h("span", { class: "muted" });
    const box = h("span", { class: "confirm", role: "alertdialog" },
      h("span", { text: question }),
      h("button", { type: "button", class: "danger", text: "Confirm", onclick: async (ev) => {
        ev.target.disabled = true;
        try {
          const msg = await action();
          result.textContent = msg || "done";
          result.className = "muted result";
        } catch (e) {
          result.textContent = e.message;
          result.className = "error result";
        }
        box.replaceWith(btn, result);
      } }),
      h("button", { type: "button", class: "secondary", text: "Cancel", onclick: () => box.replaceWith(btn) }));
    wrap.querySelector(".result")?.remove();
    btn.replaceWith(box);
  });
  wrap.append(btn);
  return wrap;
}

// ---- session

async function login(ev) {
  ev.preventDefault();
  const input = document.getElementById("token");
  const err = document.getElementById("login-error");
  err.textContent = "";
  try {
    const s = await api("/v1/session", { method: "POST", token: input.value.trim() });
    state.csrf = s.csrf;
    input.value = "";
    showApp();
  } catch (e) {
    err.textContent = e.status === 401 ? "That is not the admin token." : e.message;
  }
}

async function logout() {
  try { await api("/v1/session", { method: "DELETE" }); } catch (e) { /* logged out either way */ }
  state.csrf = "";
  showLogin("");
}

function showLogin(msg) {
  clearTimer();
  document.getElementById("nav").hidden = true;
  document.getElementById("view").replaceChildren();
  document.getElementById("login").hidden = false;
  document.getElementById("login-error").textContent = msg || "";
  document.getElementById("token").focus();
}

function showApp() {
  document.getElementById("login").hidden = true;
  document.getElementById("nav").hidden = false;
  route();
}

// ---- router

function clearTimer() {
  if (state.timer) clearInterval(state.timer);
  state.timer = 0;
}

function every(ms, f) {
  clearTimer();
  state.timer = setInterval(f, ms);
}

function route() {
  if (!state.csrf) return;
  clearTimer();
  state.view++;
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query] = hash.split("?");
  const params = new URLSearchParams(query || "");
  const view = document.getElementById("view");
  let page = "overview";
  let render = overviewPage;
  let m;
  if (path === "/messages") { page = "messages"; render = (v, n) => messagesPage(v, n, params); }
  else if ((m = path.match(/^\/messages\/([0-9A-Za-z]+)$/))) { page = "messages"; const id = m[1]; render = (v, n) => messagePage(v, n, id); }
  else if (path === "/devices") { page = "devices"; render = devicesPage; }
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("current", a.dataset.page === page);
  view.replaceChildren(h("p", { class: "muted", text: "Loading…" }));
  render(view, state.view).catch(e => {
    if (e.status !== 401) view.replaceChildren(errorBox(e));
  });
}

// current reports whether the view that started as token n is still shown.
function current(n) { return n === state.view; }

// ---- Overview

async function overviewPage(view, n) {
  const draw = async () => {
    const ov = await api("/v1/overview");
    if (!current(n)) return;
    view.replaceChildren(h("h1", { text: "Overview" }), overviewCards(ov),
      h("p", { class: "muted", text: "Updated " + fmtTime(ov.time) + "; refreshes every 5 seconds." }));
  };
  await draw();
  every(5000, () => draw().catch(() => {}));
}

function overviewCards(ov) {
  const cards = h("div", { class: "cards" });
  cards.append(card("Health",
    h("p", { class: "big" }, ov.ready ? h("span", { class: "badge ok", text: "ready" }) : h("span", { class: "badge bad", text: "not ready" })),
    ov.reason ? h("p", { class: "error", text: ov.reason }) : null,
    kv([["Devices seen", String(ov.devices)]])));
  if (ov.messages) {
    const row = (label, c) => h("tr", {}, h("th", { text: label }),
      ["accepted", "delivered", "failed", "pending"].map(k => h("td", { class: "num", text: String(c[k] || 0) })));
    cards.append(card("Messages",
      table([{ label: "" }, { label: "accepted", num: true }, { label: "delivered", num: true }, { label: "failed", num: true }, { label: "pending", num: true }],
        [row("last hour", ov.messages.hour), row("last day", ov.messages.day)]),
      ov.messages.complete ? null : h("p", { class: "hint", text: "Counts of the newest 5000 messages of the day." })));
  }
  if (ov.spool) {
    cards.append(card("Spool backlog", kv([
      ["Messages", String(ov.spool.messages)], ["Bytes", fmtBytes(ov.spool.bytes)], ["Oldest", fmtAge(ov.spool.oldest_seconds)]])));
  }
  const rows = (ov.queues || []).map(q => h("tr", {},
    h("td", { text: q.name }), h("td", { class: "num", text: String(q.visible) }),
    h("td", { class: "num", text: String(q.in_flight) }), h("td", { class: "num", text: String(q.delayed) }),
    h("td", { class: "num", text: fmtAge(q.oldest_seconds) }),
    h("td", { class: "num" }, q.dead_letters ? h("span", { class: "badge bad", text: String(q.dead_letters) }) : "0"),
    h("td", {}, q.dead_letters ? confirmButton("Redrive", "Move " + q.dead_letters + " dead-lettered " + q.name + " job(s) back to their queue?",
      async () => { const r = await api("/v1/redrive/" + encodeURIComponent(q.name), { method: "POST" }); return "moved " + r.moved; }, "secondary") : null)));
  const queues = card("Queues", rows.length ? table(["queue", { label: "waiting", num: true }, { label: "in flight", num: true },
    { label: "delayed", num: true }, { label: "oldest", num: true }, { label: "dead letters", num: true }, ""], rows)
    : h("p", { class: "muted", text: "No local queues (on AWS, see the SQS metrics in CloudWatch)." }));
  queues.id = "queues";
  const wrap = h("div", {}, cards, queues);
  return wrap;
}

// ---- Messages

// The parameters of GET /v1/messages, with their labels.
const searchFields = [
  ["q", "Id, address, subject or identity"], ["from", "Envelope sender"], ["rcpt", "Recipient"], ["subject", "Subject"],
  ["identity", "Identity"], ["route", "Route"],
];
const statuses = ["", "pending", "delivered", "failed", "expired", "dead-lettered"];

async function messagesPage(view, n, params) {
  const form = h("form", { class: "search card", id: "search" });
  for (const [k, label] of searchFields) {
    form.append(h("div", {}, h("label", { for: "q-" + k, text: label }),
      h("input", { id: "q-" + k, name: k, value: params.get(k) || "", type: "search" })));
  }
  const sel = h("select", { id: "q-status", name: "status" }, statuses.map(s => h("option", { value: s, text: s || "any", selected: params.get("status") === s && s !== "" })));
  form.append(h("div", {}, h("label", { for: "q-status", text: "Status" }), sel));
  for (const [k, label] of [["since", "From"], ["until", "Until"]]) {
    form.append(h("div", {}, h("label", { for: "q-" + k, text: label }),
      h("input", { id: "q-" + k, name: k, type: "datetime-local", value: toLocalInput(params.get(k)) })));
  }
  form.append(h("div", {}, h("button", { type: "submit", text: "Search" })));
  form.addEventListener("submit", ev => {
    ev.preventDefault();
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(form)) {
      if (!v) continue;
      q.set(k, (k === "since" || k === "until") ? new Date(v).toISOString() : v.trim());
    }
    location.hash = "#/messages" + (q.toString() ? "?" + q : "");
  });
  const results = h("div", { class: "card", id: "results" }, h("p", { class: "muted", text: "Loading…" }));
  view.replaceChildren(h("h1", { text: "Messages" }), form, results);

  // A whole message id opens the message.
  const id = (params.get("q") || "").trim();
  if (/^[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$/.test(id)) {
    location.hash = "#/messages/" + id.toUpperCase();
    return;
  }
  const query = new URLSearchParams(params);
  query.set("limit", "50");
  const page = await api("/v1/messages?" + query);
  if (!current(n)) return;
  const items = page.messages || page.items || [];
  const rows = items.map(m => {
    const tr = h("tr", { class: "clickable", "data-id": m.id },
      h("td", { class: "mono", text: fmtTime(m.received_at) }),
      h("td", {}, h("a", { href: "#/messages/" + m.id, class: "mono", text: m.id })),
      h("td", { text: m.sender === "" ? "<>" : (m.sender || "") }),
      h("td", { text: (m.recipients || []).join(", ") }),
      h("td", { text: m.subject || "" }),
      h("td", { text: m.identity || "" }),
      h("td", {}, (m.routes || []).map(r => h("span", { class: "badge", title: r.status, text: r.name }))),
      h("td", { class: "num", text: fmtBytes(m.size) }),
      h("td", { class: "num", text: String(m.attachments ?? 0) }),
      h("td", {}, statusBadge(m.status)));
    tr.addEventListener("click", ev => { if (ev.target.tagName !== "A") location.hash = "#/messages/" + m.id; });
    return tr;
  });
  const pager = h("div", { class: "pager" });
  if (params.get("cursor")) pager.append(h("a", { href: "#/messages", text: "← Newest" }));
  const next = page.next_cursor || page.next;
  if (next) {
    const q = new URLSearchParams(params);
    q.set("cursor", next);
    pager.append(h("a", { href: "#/messages?" + q, text: "Older →" }));
  }
  // The index says when it may be missing messages (updates lost, or
  // mail from before it existed): the list is then not the whole truth.
  const ix = page.index || {};
  const incomplete = ix.complete === false
    ? h("p", { class: "error", role: "status", id: "index-incomplete",
      text: "Messages may be missing from this list. The message index is incomplete: " + (ix.reason || "run gateway reindex with the gateway stopped") })
    : null;
  results.replaceChildren(...[incomplete, items.length
    ? table(["received", "id", "sender", "recipients", "subject", "identity", "route", { label: "size", num: true }, { label: "attachments", num: true }, "status"], rows)
    : h("p", { class: "muted", text: "No message matches." }), pager].filter(Boolean));
}

function toLocalInput(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (isNaN(d)) return "";
  const p = x => String(x).padStart(2, "0");
  return d.getFullYear() + "-" + p(d.getMonth() + 1) + "-" + p(d.getDate()) + "T" + p(d.getHours()) + ":" + p(d.getMinutes());
}

// ---- Message

async function messagePage(view, n, id) {
  // The index's record (envelope, client, status, timeline) when there is
  // an index; the trace and the parsed form otherwise.
  let detail = null;
  try { detail = await api("/v1/messages/" + id); } catch (e) { if (e.status !== 404) throw e; }
  const msg = detail ? Object.assign({}, detail.message, { timeline: detail.timeline || [] }) : null;
  let parsed = null;
  try { parsed = await api("/v1/messages/" + id + "/parsed"); } catch (e) { if (e.status !== 404) throw e; }
  let links = null;
  try { links = await api("/v1/messages/" + id + "/links"); } catch (e) { if (e.status === 401) throw e; }
  if (!current(n)) return;
  if (!detail && !parsed) throw new APIError(404, "No message " + id + " in the store.");
  const env = (detail && detail.envelope) || (parsed && parsed.envelope) || null;
  const timelineBox = h("div", { id: "timeline" });
  const subject = (parsed && parsed.subject) || (msg && msg.subject) || "(no subject)";

  const replay = h("span", {},
    h("label", { for: "replay-route", class: "inline", text: "Replay to " }),
    h("select", { id: "replay-route" }, h("option", { value: "", text: "its routes (parse and route anew)" }),
      routesOf(msg, parsed).map(r => h("option", { value: r, text: "route " + r }))));
  const replayBtn = confirmButton("Replay", "Deliver this message again?", async () => {
    const route = document.getElementById("replay-route").value;
    const r = await api("/v1/replay/" + id, { method: "POST", body: route ? { route } : {} });
    refresh();
    return r.result || "replayed";
  });
  replayBtn.id = "replay";
  const actions = h("div", { class: "actions" }, replay, replayBtn);
  for (const q of deadQueues(msg)) {
    actions.append(confirmButton("Redrive " + q, "Move every dead-lettered " + q + " job (this message's among them) back to its queue?", async () => {
      const r = await api("/v1/redrive/" + encodeURIComponent(q), { method: "POST" });
      refresh();
      return "moved " + r.moved;
    }, "secondary"));
  }

  const status = h("span", { id: "status" }, msg && msg.status ? statusBadge(msg.status) : null);
  const parts = [h("h1", { text: subject }),
    h("p", { class: "muted" }, h("span", { class: "mono", text: id }), " ", status,
      detail && detail.timeline_incomplete ? h("span", { class: "error", text: " timeline incomplete: " + detail.timeline_incomplete }) : null),
    actions];
  const grid = h("div", { class: "cards" });
  if (env) {
    grid.append(card("Envelope", kv([
      ["Sender", env.sender === "" ? "<>" : env.sender],
      ["Recipients", (env.recipients || []).map(r => r.addr || r).join(", ")],
      ["Received", fmtTime(env.received_at)], ["Size", fmtBytes(env.size)], ["SHA-256", h("span", { class: "mono", text: env.sha256 || "" })],
      ["Listener", env.listener], ["Gateway", env.gateway], ["BODY", env.body], ["RET", env.ret], ["ENVID", env.envid],
    ])));
    grid.append(card("Client", kv([
      ["Address", env.client_ip + (env.client_port ? ":" + env.client_port : "")], ["HELO", env.helo],
      ["TLS", env.tls ? env.tls.version : "none (plaintext)"], ["Cipher", env.tls ? env.tls.cipher : ""],
      ["AUTH", env.auth_mech || "none (by network)"], ["AUTH user", env.auth_user], ["Identity", env.identity],
    ])));
  }
  const routesBox = h("div", { id: "routes" }, routesTable(msg));
  if (msg && (msg.routes || []).length) parts.push(card("Routes", routesBox));
  parts.push(card("Timeline", timelineBox), grid);
  if (parsed) {
    parts.push(card("Headers", table(["name", "value"], (parsed.headers || []).map(x => h("tr", {}, h("td", { class: "mono", text: x.name }), h("td", { text: x.value }))))));
    parts.push(card("Text" + (parsed.text_derived ? " (derived from the HTML)" : ""), h("pre", { class: "body", id: "text-body", text: parsed.text || "" })));
    if (parsed.html) {
      parts.push(card("HTML",
        h("p", { class: "hint", text: "Shown sanitised in a sandboxed frame: no script runs and nothing remote (images, fonts, styles) is loaded." }),
        h("iframe", { class: "mail", sandbox: "", referrerpolicy: "no-referrer", title: "HTML body", src: "/v1/messages/" + id + "/html",
          onload: ev => { ev.target.dataset.loaded = "1"; } })));
    }
    parts.push(card("Attachments", attachmentList(parsed, links)));
    parts.push(card("Parsed JSON", h("details", {}, h("summary", { text: "parsed.json" }),
      h("pre", { class: "body", text: shortJSON(parsed) }))));
  } else {
    parts.push(card("Content", h("p", { class: "muted", text: "Not parsed yet: the parse stage has not written this message's parsed form." })));
  }
  parts.push(card("Raw message", rawLink(id, links)));
  view.replaceChildren(...parts);

  async function refresh() {
    let evs;
    try {
      const d = await api("/v1/messages/" + id);
      evs = d.timeline;
      if (current(n) && d.message) {
        if (d.message.status) status.replaceChildren(statusBadge(d.message.status));
        routesBox.replaceChildren(routesTable(d.message));
      }
    } catch (e) { if (e.status === 401) throw e; }
    if (!evs) evs = await api("/v1/trace/" + id);
    if (!current(n)) return;
    timelineBox.replaceChildren(timelineTable(evs || []));
  }
  await refresh();
  every(2000, () => refresh().catch(() => {}));
}

function routesTable(msg) {
  if (!msg || !(msg.routes || []).length) return h("p", { class: "muted", text: "No route yet." });
  return table(["route", "recipients", "status", { label: "attempts", num: true }, { label: "last status", num: true }, "detail"],
    msg.routes.map(r => h("tr", { "data-route": r.name }, h("td", { text: r.name }), h("td", { text: (r.recipients || []).join(", ") }),
      h("td", {}, statusBadge(r.status)), h("td", { class: "num", text: String(r.attempts || 0) }),
      h("td", { class: "num", text: r.code ? String(r.code) : "" }), h("td", { class: "detail", text: r.detail || "" }))));
}

// deadQueues names the queues holding this message's dead-lettered jobs:
// inbound when parsing is, else the stage of each dead-lettered route's
// latest event.
function deadQueues(msg) {
  const qs = new Set();
  if (!msg) return qs;
  if (msg.parse === "dead-lettered") qs.add("inbound");
  for (const r of msg.routes || []) {
    if (r.status !== "dead-lettered") continue;
    const evs = (msg.timeline || []).filter(e => e.route === r.name && (e.stage === "webhook" || e.stage === "relay"));
    qs.add(evs.length ? evs[evs.length - 1].stage : "webhook");
  }
  return qs;
}

function routesOf(msg, parsed) {
  const seen = new Set();
  for (const r of (msg && msg.routes) || []) seen.add(typeof r === "string" ? r : r.name);
  for (const ev of (msg && msg.timeline) || []) if (ev.route) seen.add(ev.route);
  return [...seen].filter(Boolean).sort();
}

function timelineTable(evs) {
  if (!evs.length) return h("p", { class: "muted", text: "No events." });
  return table(["time", "stage", "event", "route", { label: "attempt", num: true }, { label: "status", num: true }, { label: "latency", num: true }, "detail"],
    evs.map(ev => h("tr", { class: "event", "data-stage": ev.stage, "data-event": ev.event },
      h("td", { class: "mono", text: fmtTime(ev.time) }), h("td", { text: ev.stage }), h("td", {}, statusBadge(ev.event)),
      h("td", { text: ev.route || "" }), h("td", { class: "num", text: ev.attempt ? String(ev.attempt) : "" }),
      h("td", { class: "num", text: ev.status ? String(ev.status) : "" }),
      h("td", { class: "num", text: ev.stage === "gateway" && ev.event === "received" ? "" : (ev.latency_ms || 0) + " ms" }),
      h("td", { class: "detail", text: ev.detail || "" }))));
}

// The raw message and stored attachments download through signed,
// expiring links the API makes (GET /v1/messages/{id}/links); attachments
// small enough to sit in parsed.json download from the page itself.
function rawLink(id, links) {
  if (links && links.raw) return h("a", { href: links.raw, download: id + ".eml", id: "raw-link", text: "Download " + id + ".eml" });
  return h("p", { class: "muted", text: "No download link (the admin listener makes none without a bound address); gateway trace " + id + " shows where the message is stored." });
}

function attachmentList(parsed, links) {
  const atts = parsed.attachments || [];
  if (!atts.length) return h("p", { class: "muted", text: "None." });
  const urls = (links && links.attachments) || {};
  return table(["file", "type", { label: "size", num: true }, "sha-256"], atts.map((a, i) => {
    const name = a.filename || ("attachment-" + i);
    let cell = name;
    if (a.content) {
      // Downloaded as bytes, never rendered: application/octet-stream.
      const bin = atob(a.content);
      const bytes = new Uint8Array(bin.length);
      for (let j = 0; j < bin.length; j++) bytes[j] = bin.charCodeAt(j);
      cell = h("a", { href: URL.createObjectURL(new Blob([bytes], { type: "application/octet-stream" })), download: name, text: name });
    } else if (urls[i]) {
      cell = h("a", { href: urls[i], download: name, text: name });
    }
    return h("tr", {}, h("td", {}, cell), h("td", { text: a.content_type }), h("td", { class: "num", text: fmtBytes(a.size) }),
      h("td", { class: "mono", text: (a.sha256 || "").slice(0, 16) }));
  }));
}

// shortJSON shows the parsed form with attachment contents cut short.
function shortJSON(v) {
  return JSON.stringify(v, (k, x) => (k === "content" && typeof x === "string" && x.length > 120) ? x.slice(0, 120) + "… (" + x.length + " base64 characters)" : x, 2);
}

// ---- Devices

async function devicesPage(view, n) {
  const devs = await api("/v1/devices");
  if (!current(n)) return;
  const onlyLegacy = h("input", { type: "checkbox", id: "only-legacy" });
  const box = h("div", { class: "card", id: "devices" });
  const draw = () => {
    const shown = devs.filter(d => !onlyLegacy.checked || (d.legacy || []).length);
    box.replaceChildren(shown.length ? table(["identity", "last seen", "addresses", { label: "messages", num: true },
      { label: "today", num: true }, "last 14 days", { label: "failures", num: true }, "TLS", "AUTH", "legacy allowances used"],
    shown.map(d => h("tr", { class: "device", "data-identity": d.identity },
      h("td", { text: d.identity }), h("td", { class: "mono", text: fmtTime(d.last_seen) }),
      h("td", { class: "mono" }, (d.sources && d.sources.length ? d.sources.map(s => s.addr) : [d.last_client_ip]).join(", ")),
      h("td", { class: "num", text: String(d.messages) }), h("td", { class: "num", text: String(d.messages_today) }),
      h("td", {}, dayBars(d.days || [])),
      h("td", { class: "num", text: String((d.auth_failures || 0) + (d.rate_limited || 0)) }),
      h("td", {}, counts(d.tls_versions, v => v === "TLS 1.0" || v === "TLS 1.1" || v === "none")),
      h("td", {}, counts(d.auth_mechs, m => m === "LOGIN")),
      h("td", {}, (d.legacy || []).map(l => h("span", { class: "badge bad legacy", text: legacyName(l) })))))) :
      h("p", { class: "muted", text: onlyLegacy.checked ? "No device used a legacy allowance." : "No device has sent mail yet." }));
  };
  onlyLegacy.addEventListener("change", draw);
  view.replaceChildren(h("h1", { text: "Devices" }),
    h("p", { class: "hint", text: "Every identity that sent mail, the addresses it sent from, and the legacy allowances its mail actually used: the list to migrate before those allowances are switched off." }),
    h("div", { class: "toolbar" }, h("span", {}, onlyLegacy, " ", h("label", { for: "only-legacy", text: "only devices using legacy allowances" })),
      h("a", { href: "/v1/devices.csv", download: "postern-devices.csv", id: "csv", text: "Export CSV" })),
    box);
  draw();
}

function legacyName(l) {
  return { "tls_below_1.2": "TLS below 1.2", "plaintext": "plaintext", "auth_login": "AUTH LOGIN", "bare_lf": "bare LF" }[l] || l;
}

function counts(m, legacy) {
  return Object.keys(m || {}).sort().map(k => h("span", { class: "badge" + (legacy(k) ? " warn" : ""), text: k + " × " + m[k] }));
}

function dayBars(days) {
  const max = Math.max(1, ...days.map(d => d.messages + d.failures));
  const el = h("span", { class: "days", title: days.map(d => d.day + ": " + d.messages + " messages, " + d.failures + " failures").join("\n") });
  for (const d of days) {
    const bar = h("span", {});
    bar.style.height = Math.max(1, Math.round(24 * d.messages / max)) + "px";
    el.append(bar);
    if (d.failures) {
      const f = h("span", { class: "fail" });
      f.style.height = Math.max(1, Math.round(24 * d.failures / max)) + "px";
      el.append(f);
    }
  }
  return el;
}

// ---- start

async function start() {
  document.getElementById("login-form").addEventListener("submit", login);
  document.getElementById("logout").addEventListener("click", logout);
  window.addEventListener("hashchange", route);
  try {
    const r = await fetch("/v1/session", { credentials: "same-origin", cache: "no-store" });
    const s = r.ok ? await r.json() : {};
    if (s.csrf) {
      state.csrf = s.csrf;
      showApp();
      return;
    }
  } catch (e) { /* not logged in */ }
  showLogin("");
}

document.addEventListener("DOMContentLoaded", start);
