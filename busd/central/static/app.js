// busgw fleet dashboard. Plain JavaScript, no build step, no external files.
//
// Data: the stream ../fleet/stream (server-sent events) sends a `fleet`
// snapshot first ({"health": <the /fleet/health body>}), then `bus` (one bus
// summary), `event` (a stored event) and `seen` ({"buses": {id: age_s}})
// messages. Without a snapshot soon, ../fleet/health is fetched instead.
// Rendering: one table row per bus, keyed by id; messages are merged into a
// pending map and applied once per animation frame, touching only the
// cells that changed, so 1,000 buses and bursts of messages stay cheap.
"use strict";
(function () {
  const STATES = ["online", "stale", "offline", "unknown"];
  const LEVELS = ["ok", "degraded", "critical", "starting", "unknown"];
  const MAX_EVENTS = 100;
  const MAX_ALERTS = 50;
  const CRITICAL_EVENT_S = 15 * 60; // critical events stay alerts this long
  const $ = (id) => document.getElementById(id);
  const base = new URL(".", location.href);
  const url = (path) => new URL(path, base).toString();

  const buses = new Map(); // id -> {s, row, cells, age0, t0, key}
  const pending = new Map(); // id -> summary not yet on screen
  let pendingEvents = [];
  let snapshot = null; // a fleet snapshot not yet on screen
  let scheduled = false;
  let lines = new Set();
  const events = []; // newest first
  const eventIds = new Set(); // bus + "/" + id
  const filter = { state: "", line: "", text: "" };

  // -- formatting ------------------------------------------------------------

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function fmtValue(v) {
    if (v === null || v === undefined) return "–";
    if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toFixed(1);
    if (typeof v === "object") return JSON.stringify(v);
    return String(v);
  }
  function fmtAge(s) {
    if (s === null || s === undefined || !isFinite(s)) return "never";
    if (s < 1) return "just now";
    if (s < 60) return Math.floor(s) + " s ago";
    if (s < 3600) return Math.floor(s / 60) + " min ago";
    if (s < 86400) return Math.floor(s / 3600) + " h ago";
    return Math.floor(s / 86400) + " d ago";
  }
  function fmtTime(iso) {
    const t = Date.parse(iso);
    return isNaN(t) ? "" : new Date(t).toLocaleTimeString();
  }
  function clip(text, n) { return text.length > n ? text.slice(0, n) + "…" : text; }
  function line(s) { return (s.labels && s.labels.line) || ""; }
  function attention(s) {
    return s.state !== "online" || s.level === "critical" || s.level === "degraded";
  }
  function alerting(s) { return s.state === "offline" || s.level === "critical"; }

  // -- rows --------------------------------------------------------------------

  function newRow(id) {
    const row = el("tr");
    row.dataset.busId = id;
    const cells = {};
    for (const name of ["id", "line", "state", "level", "failing", "values", "seen"]) {
      cells[name] = row.appendChild(el("td", name));
    }
    cells.id.textContent = id;
    return { row, cells, s: null, key: {}, age0: null, t0: 0 };
  }

  // Set a cell only when its rendering changed.
  function put(b, name, key, draw) {
    if (b.key[name] === key) return;
    b.key[name] = key;
    const cell = b.cells[name];
    cell.textContent = "";
    draw(cell);
  }

  function pill(cls, text) { return el("span", "pill " + cls, text); }

  function renderRow(b, s) {
    b.s = s;
    b.row.className = "st-" + s.state + " lv-" + s.level;
    b.row.dataset.state = s.state;
    b.row.dataset.level = s.level;
    if (s.age_s !== null && s.age_s !== undefined) {
      b.age0 = s.age_s; b.t0 = performance.now();
    } else if (s.last_seen) {
      b.age0 = Math.max(0, (Date.now() - Date.parse(s.last_seen)) / 1000);
      b.t0 = performance.now();
    } else {
      b.age0 = null;
    }
    put(b, "line", line(s), (c) => { c.textContent = line(s); });
    put(b, "state", s.state, (c) => c.appendChild(pill("st-" + s.state, s.state)));
    put(b, "level", s.level, (c) => c.appendChild(pill("lv-" + s.level, s.level)));
    const failing = s.failing || [];
    put(b, "failing", JSON.stringify([failing, s.last_error || null]), (c) => {
      for (const f of failing) {
        const tag = el("span", "fail " + (f.level || ""), f.name + (f.status ? ": " + f.status : ""));
        if (f.reason) tag.title = f.reason;
        c.appendChild(tag);
      }
      if (s.last_error && s.state !== "online") {
        const err = c.appendChild(el("span", "err", clip(s.last_error, 80)));
        err.title = s.last_error;
      }
    });
    const values = s.values || {};
    put(b, "values", JSON.stringify(values), (c) => {
      for (const k of Object.keys(values)) {
        const kv = el("span", "kv");
        kv.appendChild(el("i", "", k));
        kv.appendChild(document.createTextNode(fmtValue(values[k])));
        c.appendChild(kv);
      }
    });
    drawSeen(b, performance.now());
    if (line(s)) lines.add(line(s));
  }

  function drawSeen(b, now) {
    const age = b.age0 === null ? null : b.age0 + (now - b.t0) / 1000;
    const text = fmtAge(age);
    if (b.key.seen !== text) { b.key.seen = text; b.cells.seen.textContent = text; }
  }

  function matches(s) {
    if (filter.state === "attention" ? !attention(s) : filter.state && s.state !== filter.state) return false;
    if (filter.line && line(s) !== filter.line) return false;
    if (filter.text) {
      const hay = (s.id + " " + Object.values(s.labels || {}).join(" ")).toLowerCase();
      if (!hay.includes(filter.text)) return false;
    }
    return true;
  }

  const collator = new Intl.Collator(undefined, { numeric: true });
  function insertSorted(tbody, b, id) {
    // Rare (a bus added after the snapshot): a linear walk is fine.
    for (const other of tbody.children) {
      if (collator.compare(other.dataset.busId, id) > 0) { tbody.insertBefore(b.row, other); return; }
    }
    tbody.appendChild(b.row);
  }

  // -- applying data -------------------------------------------------------------

  function busesOf(health) {
    // /fleet/health lists the summaries under "summaries" ("buses" is their count).
    const list = health && (health.summaries || health.buses);
    if (Array.isArray(list)) return list;
    if (list && typeof list === "object") return Object.keys(list).map((id) => Object.assign({ id }, list[id]));
    return [];
  }

  function applySnapshot(health, tbody) {
    const list = busesOf(health).slice().sort((a, b) => collator.compare(a.id, b.id));
    const keep = new Set(list.map((s) => s.id));
    for (const [id, b] of buses) if (!keep.has(id)) { b.row.remove(); buses.delete(id); }
    const frag = document.createDocumentFragment();
    for (const s of list) {
      let b = buses.get(s.id);
      if (!b) { b = newRow(s.id); buses.set(s.id, b); }
      renderRow(b, s);
      b.row.hidden = !matches(s);
      frag.appendChild(b.row); // re-appending keeps the order sorted
    }
    tbody.appendChild(frag);
    if (health && health.status) {
      $("overall").textContent = "fleet " + health.status;
      $("overall").className = "overall lv-" + health.status;
    }
  }

  function flush() {
    scheduled = false;
    const tbody = $("buses");
    if (snapshot) { applySnapshot(snapshot, tbody); snapshot = null; }
    for (const [id, s] of pending) {
      let b = buses.get(id);
      if (!b) { b = newRow(id); buses.set(id, b); renderRow(b, s); insertSorted(tbody, b, id); }
      else renderRow(b, s);
      b.row.hidden = !matches(s);
    }
    pending.clear();
    if (pendingEvents.length) { addEvents(pendingEvents); pendingEvents = []; }
    drawSummary();
  }

  function schedule() {
    if (scheduled) return;
    scheduled = true;
    // A hidden tab gets no animation frames: the timer still flushes, and
    // pending stays bounded (one entry per bus).
    let done = false;
    const run = () => { if (!done) { done = true; flush(); } };
    requestAnimationFrame(run);
    setTimeout(run, 250);
  }

  // Events are unique per (bus, id); the feed is kept newest first, each
  // new one inserted at its place (the initial listing may come after
  // live ones).
  const eventKey = (e) => e.bus + "/" + e.id;
  const eventTime = (e) => String(e.received_at || e.occurred_at || "");
  function addEvents(list) {
    const feed = $("events");
    for (const e of list) {
      if (!e || e.id === undefined || eventIds.has(eventKey(e))) continue;
      let at = events.findIndex((o) => eventTime(o) < eventTime(e));
      if (at < 0) at = events.length;
      if (at >= MAX_EVENTS) continue; // older than everything shown
      eventIds.add(eventKey(e));
      events.splice(at, 0, e);
      feed.insertBefore(eventItem(e), feed.children[at] || null);
      while (events.length > MAX_EVENTS) {
        eventIds.delete(eventKey(events.pop()));
        feed.lastChild.remove();
      }
    }
  }

  function eventItem(e) {
    const li = el("li", "sev-" + e.severity);
    li.dataset.eventId = e.id;
    li.appendChild(el("span", "when", fmtTime(e.occurred_at)));
    li.appendChild(el("b", "", e.bus));
    li.appendChild(document.createTextNode(" " + e.kind + " "));
    const cls = { critical: "lv-critical", warning: "lv-degraded" }[e.severity] || "lv-starting";
    li.appendChild(pill(cls, e.severity));
    if (e.data !== undefined && e.data !== null) {
      const text = typeof e.data === "string" ? e.data : JSON.stringify(e.data);
      li.appendChild(el("span", "data", clip(text, 160)));
    }
    return li;
  }

  // -- counts, alerts, filters -------------------------------------------------

  let summaryKey = "";
  function drawSummary() {
    const states = {}, levels = {};
    const alerts = [];
    let shown = 0;
    for (const b of buses.values()) {
      const s = b.s;
      states[s.state] = (states[s.state] || 0) + 1;
      levels[s.level] = (levels[s.level] || 0) + 1;
      if (alerting(s)) alerts.push(s);
      if (!b.row.hidden) shown++;
    }
    const now = Date.now();
    const critical = events.filter((e) => e.severity === "critical" &&
      now - Date.parse(e.received_at || e.occurred_at) < CRITICAL_EVENT_S * 1000).slice(0, 10);
    const key = JSON.stringify([states, levels, alerts.map((s) => [s.id, s.state, s.level]),
      critical.map((e) => e.id), shown, [...lines].sort()]);
    if (key === summaryKey) return;
    summaryKey = key;
    drawChips($("state-counts"), STATES, states, "st-", "state");
    drawChips($("level-counts"), LEVELS, levels, "lv-", null);
    drawAlerts(alerts, critical);
    drawLines();
    $("shown").textContent = shown + " of " + buses.size + " buses shown";
    $("empty").textContent = buses.size ? "" : "No bus in the fleet yet.";
    document.title = (alerts.length ? "(" + alerts.length + ") " : "") + "Fleet · busgw";
  }

  function drawChips(box, names, counts, prefix, filterName) {
    box.textContent = "";
    for (const n of names) {
      const c = counts[n] || 0;
      const chip = el("span", "chip " + prefix + n + (c ? "" : " zero"));
      chip.dataset.count = c;
      chip.dataset.name = n;
      chip.appendChild(el("b", "", String(c)));
      chip.appendChild(document.createTextNode(" " + n));
      if (filterName) chip.addEventListener("click", () => { $("f-state").value = n; onFilter(); });
      box.appendChild(chip);
    }
  }

  function drawAlerts(alerts, critical) {
    const box = $("alerts");
    box.textContent = "";
    alerts.sort((a, b) => collator.compare(a.id, b.id));
    for (const s of alerts.slice(0, MAX_ALERTS)) {
      const why = s.state === "offline" ? "offline" : "critical";
      const li = el("li", why);
      li.dataset.busId = s.id;
      li.appendChild(el("b", "", s.id + " "));
      const failing = (s.failing || []).filter((f) => f.level === "critical").map((f) => f.name);
      li.appendChild(document.createTextNode(why === "offline" ? "offline" + (s.last_error ? ": " + clip(s.last_error, 60) : "")
        : "critical" + (failing.length ? ": " + failing.join(", ") : "")));
      box.appendChild(li);
    }
    if (alerts.length > MAX_ALERTS) box.appendChild(el("li", "more", "and " + (alerts.length - MAX_ALERTS) + " more"));
    for (const e of critical) {
      const li = el("li", "critical");
      li.appendChild(el("b", "", e.bus + " "));
      li.appendChild(document.createTextNode(e.kind + " at " + fmtTime(e.occurred_at)));
      box.appendChild(li);
    }
    const count = alerts.length + critical.length;
    $("alert-count").textContent = String(count);
    $("alert-count").className = "badge" + (count ? "" : " zero");
  }

  function drawLines() {
    const select = $("f-line");
    const have = new Set([...select.options].map((o) => o.value));
    for (const l of [...lines].sort(collator.compare)) {
      if (!have.has(l)) {
        const o = el("option", "", l);
        o.value = l;
        const after = [...select.options].find((x) => x.value && collator.compare(x.value, l) > 0);
        select.insertBefore(o, after || null);
      }
    }
  }

  function onFilter() {
    filter.state = $("f-state").value;
    filter.line = $("f-line").value;
    filter.text = $("f-text").value.trim().toLowerCase();
    for (const b of buses.values()) b.row.hidden = !matches(b.s);
    summaryKey = "";
    drawSummary();
  }

  // -- data sources ---------------------------------------------------------------

  function setConn(cls, text) {
    const c = $("conn");
    c.className = "conn " + cls;
    c.textContent = text;
  }

  let gotSnapshot = false;
  function onSnapshot(health) { gotSnapshot = true; snapshot = health; pending.clear(); schedule(); }

  let source = null, retryMs = 1000;
  function connect() {
    setConn(source ? "reconnecting" : "connecting", source ? "reconnecting" : "connecting");
    source = new EventSource(url("../fleet/stream"), { withCredentials: true });
    source.onopen = () => { retryMs = 1000; setConn("live", "live"); };
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED) {
        // Refused (401, 503...): EventSource gives up; try again later.
        setConn("down", "disconnected, retrying");
        setTimeout(connect, retryMs);
        retryMs = Math.min(retryMs * 2, 30000);
      } else {
        setConn("reconnecting", "reconnecting");
      }
    };
    source.addEventListener("fleet", (m) => onSnapshot(JSON.parse(m.data).health));
    source.addEventListener("bus", (m) => { const s = JSON.parse(m.data); pending.set(s.id, s); schedule(); });
    source.addEventListener("event", (m) => {
      pendingEvents.push(JSON.parse(m.data));
      if (pendingEvents.length > MAX_EVENTS) pendingEvents = pendingEvents.slice(-MAX_EVENTS);
      schedule();
    });
    source.addEventListener("seen", (m) => {
      const ages = JSON.parse(m.data).buses || {};
      const now = performance.now();
      for (const id of Object.keys(ages)) {
        const b = buses.get(id);
        if (b && ages[id] !== null) { b.age0 = ages[id]; b.t0 = now; }
      }
    });
  }

  function getJSON(path) {
    return fetch(url(path), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((r) => (r.ok ? r.json() : null))
      .catch(() => null);
  }

  function start() {
    for (const id of ["f-state", "f-line", "f-text"]) $(id).addEventListener("input", onFilter);
    connect();
    // The stream's snapshot normally comes first; without one (no poller
    // state yet), read the fleet once.
    setTimeout(() => {
      if (!gotSnapshot) getJSON("../fleet/health").then((h) => { if (h && !gotSnapshot) onSnapshot(h); });
    }, 1500);
    getJSON("../fleet/events?limit=50").then((body) => {
      const list = Array.isArray(body) ? body : body && (body.events || body.items);
      if (Array.isArray(list)) { pendingEvents = list.concat(pendingEvents); schedule(); }
    });
    setInterval(() => {
      const now = performance.now();
      for (const b of buses.values()) if (!b.row.hidden) drawSeen(b, now);
      $("clock").textContent = new Date().toLocaleTimeString();
      drawSummary(); // critical events age out of the alerts
    }, 1000);
    drawSummary();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
