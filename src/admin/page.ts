// GET / on the admin endpoint: the status page, for a person at a browser. One document
// with its CSS and JS inline, so it works on a box with no internet and needs no build
// step; the only request it makes is GET status on the same endpoint, every 2 s.
// Everything the page shows comes from /status and goes into the DOM as text
// (textContent), never as markup: listener names, rule entries and reload errors quote
// the config file. The Content-Security-Policy pins the inline style and script by hash
// and allows no other source, so even markup that slipped in could not load or run anything.
import { createHash } from "node:crypto";

const STYLE = `
:root {
  --bg: #f4f5f7; --card: #fff; --fg: #1b1f24; --muted: #5f6b7a; --line: #dde1e6;
  --ok: #1a7f37; --warn: #9a5b00; --bad: #c62828; --track: #e6e9ed; --fill: #2f6fdb;
  font: 15px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", sans-serif;
  color-scheme: light dark;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #111418; --card: #1a1f25; --fg: #e6e9ed; --muted: #9aa5b1; --line: #2e353d;
    --ok: #3fb950; --warn: #d29922; --bad: #f85149; --track: #2e353d; --fill: #5b9bff;
  }
}
* { box-sizing: border-box; }
[hidden] { display: none !important; }
body { margin: 0; background: var(--bg); color: var(--fg); }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .9em; }
.top {
  position: sticky; top: 0; z-index: 2; display: flex; flex-wrap: wrap; align-items: center;
  justify-content: space-between; gap: .4rem 1rem; padding: .6rem 1rem;
  background: var(--card); border-bottom: 1px solid var(--line);
}
h1 { margin: 0; font-size: 1.2rem; }
h1 small { font-weight: normal; color: var(--muted); font-size: .8em; }
h2 { font-size: 1rem; margin: 1.2rem 0 .5rem; }
.conn { display: flex; align-items: center; gap: .4rem; font-size: .9rem; color: var(--muted); }
.conn::before { content: ""; width: .65rem; height: .65rem; border-radius: 50%; background: var(--muted); }
.conn.live::before { background: var(--ok); }
.conn.warn { color: var(--warn); font-weight: 600; }
.conn.warn::before { background: var(--warn); }
.conn.down { color: var(--bad); font-weight: 700; }
.conn.down::before { background: var(--bad); }
.banner {
  margin: 0; padding: .7rem 1rem; background: var(--bad); color: #fff; font-weight: 600;
}
body.stale main { opacity: .5; filter: grayscale(.7); }
main { padding: .5rem 1rem 2rem; max-width: 1700px; margin: 0 auto; }
.facts { display: flex; flex-wrap: wrap; gap: .3rem 1.4rem; margin: .6rem 0 0; }
.facts div { display: flex; gap: .4rem; min-width: 0; }
.facts dt { color: var(--muted); }
.facts dd { margin: 0; overflow-wrap: anywhere; }
.totals { display: grid; grid-template-columns: repeat(auto-fit, minmax(8rem, 1fr)); gap: .6rem; margin: .8rem 0 0; }
.totals div { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: .5rem .7rem; }
.totals dt { color: var(--muted); font-size: .85rem; }
.totals dd { margin: 0; font-size: 1.4rem; font-weight: 600; font-variant-numeric: tabular-nums; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th { text-align: left; font-weight: 600; color: var(--muted); font-size: .8rem; }
th, td { padding: .25rem .5rem .25rem 0; vertical-align: top; border-bottom: 1px solid var(--line); }
td.num, th.num { text-align: right; }
.reloads { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: .4rem .8rem; }
.reloads td { font-size: .9rem; }
.lines div { overflow-wrap: anywhere; white-space: pre-wrap; }
.error { color: var(--bad); }
.muted { color: var(--muted); }
.badge {
  display: inline-block; padding: 0 .45rem; border-radius: 999px; font-size: .78rem; font-weight: 600;
  border: 1px solid currentColor;
}
.ok { color: var(--ok); } .warn { color: var(--warn); } .bad { color: var(--bad); }
.toolbar { display: flex; flex-wrap: wrap; align-items: baseline; gap: .5rem 1rem; }
.toolbar h2 { margin-right: auto; }
#filter {
  font: inherit; padding: .35rem .6rem; border: 1px solid var(--line); border-radius: 6px;
  background: var(--card); color: var(--fg); width: min(100%, 22rem);
}
.grid { display: grid; gap: .8rem; grid-template-columns: repeat(auto-fill, minmax(min(100%, 25rem), 1fr)); }
.card {
  background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: .7rem .8rem;
  min-width: 0; display: flex; flex-direction: column; gap: .55rem;
}
/* Cards out of view skip layout and paint until scrolled to: 200 of them stay cheap. */
.card { content-visibility: auto; contain-intrinsic-size: auto 22rem; }
.card.draining { border-style: dashed; }
.card-head { display: flex; flex-wrap: wrap; align-items: baseline; gap: .2rem .6rem; }
.card-head h3 { margin: 0; font-size: 1.05rem; overflow-wrap: anywhere; }
.card-head code { margin-left: auto; color: var(--muted); }
.bar { height: .55rem; border-radius: 999px; background: var(--track); overflow: hidden; }
.bar.unbounded { background: repeating-linear-gradient(90deg, var(--track) 0 6px, transparent 6px 10px); }
.fill { height: 100%; width: 0; background: var(--fill); }
.fill.warm { background: var(--warn); }
.fill.hot { background: var(--bad); }
.load-text { font-size: .9rem; margin-top: .2rem; }
.load-text .open { font-weight: 700; font-size: 1.05rem; }
.stats { display: grid; grid-template-columns: repeat(4, minmax(0, 1fr)); gap: .3rem; margin: 0; }
.stats dt { color: var(--muted); font-size: .78rem; }
.stats dd { margin: 0; font-weight: 600; font-variant-numeric: tabular-nums; overflow-wrap: anywhere; }
.chips { display: flex; flex-wrap: wrap; gap: .3rem; align-items: baseline; margin: 0; padding: 0; list-style: none; }
.label { color: var(--muted); font-size: .8rem; min-width: 4.2rem; }
.chip {
  display: inline-flex; gap: .35rem; align-items: baseline; padding: .05rem .45rem; border-radius: 6px;
  background: var(--bg); border: 1px solid var(--line); font-size: .85rem; overflow-wrap: anywhere;
}
.chip b { font-variant-numeric: tabular-nums; }
.chip.zero { color: var(--muted); }
.chip.bad { border-color: var(--bad); color: var(--bad); }
.section-title { color: var(--muted); font-size: .8rem; margin-bottom: .15rem; }
.targets td { font-size: .85rem; }
.targets .addr { white-space: nowrap; }
.targets td.err { overflow-wrap: break-word; }
.more { font: inherit; font-size: .85rem; margin: .4rem 0 .2rem; padding: .2rem .6rem; border: 1px solid var(--line);
  border-radius: 6px; background: var(--bg); color: var(--fg); cursor: pointer; }
.dot { display: inline-block; width: .55rem; height: .55rem; border-radius: 50%; margin-right: .3rem; }
.dot.up { background: var(--ok); } .dot.down { background: var(--bad); }
.rules { display: flex; flex-direction: column; gap: .25rem; font-size: .9rem; }
.rules .row { display: flex; gap: .5rem; align-items: baseline; }
.timeouts { font-size: .8rem; }
@media (max-width: 600px) {
  .top, main { padding-left: .6rem; padding-right: .6rem; }
  .stats { grid-template-columns: repeat(2, minmax(0, 1fr)); }
  .totals dd { font-size: 1.15rem; }
  .hide-narrow { display: none; }
}
`;

// Plain ES2020 in a raw string: no backquote and no dollar-brace inside it.
const SCRIPT = String.raw`
"use strict";
(function () {
  var POLL_MS = 2000;
  var TIMEOUT_MS = 3000;
  var SHOWN_TARGETS = 50;
  var SHOWN_RULES = 12;
  var SHOWN_RELOADS = 5;
  var REASONS = ["deny", "allow", "schedule", "limit"];
  var numbers = new Intl.NumberFormat("en-US");
  var cards = new Map();
  var lastAnswerAt = 0;
  var downSince = 0;
  var filter = "";
  var allReloads = false;
  var shownReloads = "";
  // For tests: render() draws a given /status document and returns how long it took;
  // paused stops the page from drawing what it fetches.
  var api = { render: render, lastRenderMs: 0, paused: false };
  window.tcpgate = api;

  function byId(id) { return document.getElementById(id); }
  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function add(parent, tag, className, text) { return parent.appendChild(el(tag, className, text)); }
  function isNumber(n) { return typeof n === "number" && isFinite(n); }
  function count(n) { return !isNumber(n) ? "–" : n < 1000 && n > -1000 ? String(n) : numbers.format(n); }
  function bytes(n) {
    if (!isNumber(n)) return "–";
    if (n < 1024) return n + " B";
    var units = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    var i = -1;
    do { n /= 1024; i++; } while (n >= 1024 && i < units.length - 1);
    return (n < 10 ? n.toFixed(1) : String(Math.round(n))) + " " + units[i];
  }
  function pad(n) { return n < 10 ? "0" + n : String(n); }
  function clock(ms) {
    var d = new Date(ms);
    return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  }
  function day(d) { return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()); }
  /** Local time; with the date when it is not today. */
  function when(iso) {
    var d = new Date(iso);
    if (isNaN(d.getTime())) return String(iso);
    var date = day(d);
    return (date === day(new Date()) ? "" : date + " ") + clock(d.getTime());
  }
  function span(seconds) {
    if (!isNumber(seconds)) return "–";
    var d = Math.floor(seconds / 86400), h = Math.floor(seconds / 3600) % 24;
    var m = Math.floor(seconds / 60) % 60, s = Math.floor(seconds) % 60;
    if (d > 0) return d + "d " + h + "h";
    if (h > 0) return h + "h " + m + "m";
    if (m > 0) return m + "m " + s + "s";
    return s + "s";
  }
  function setText(id, text, title) {
    var node = byId(id);
    node.textContent = text;
    if (title !== undefined) node.title = title;
  }

  // ---- the header: the instance, its totals, the reloads ----
  function renderHeader(s) {
    setText("version", s.version ? "v" + s.version : "");
    setText("pid", count(s.pid));
    setText("uptime", span(s.uptimeSeconds));
    setText("state", s.state || "–");
    var config = s.config || {};
    setText("config", config.path || "quick mode (no file)");
    setText("sha", config.sha256 ? String(config.sha256).slice(0, 12) : "–", config.sha256 || "");
    var proc = s.process || {};
    setText("rss", bytes(proc.rssBytes));
    var totals = s.totals || {};
    var listeners = s.listeners || [];
    setText("t-listeners", count(listeners.length));
    setText("t-open", count(totals.openBridges));
    setText("t-accepted", count(totals.accepted));
    setText("t-refused", count(totals.refused));
    setText("t-closed", count(totals.closed));
  }

  function lines(parent, items, className) {
    var box = add(parent, "div", "lines");
    for (var i = 0; i < items.length; i++) add(box, "div", className, items[i]);
    return box;
  }
  function asLines(value) {
    if (value === undefined || value === null) return [];
    if (Array.isArray(value)) return value.map(String);
    if (typeof value === "object") return [JSON.stringify(value)];
    return [String(value)];
  }

  function renderReloads(s) {
    var list = Array.isArray(s.reloads) ? s.reloads.slice() : s.lastReload ? [s.lastReload] : [];
    var json = JSON.stringify(list);
    if (json === shownReloads) return;
    shownReloads = json;
    list.sort(function (a, b) { return String(b.at).localeCompare(String(a.at)); });
    var body = byId("reloads-body");
    var rows = list.map(function (r) {
      var tr = el("tr");
      tr.dataset.trigger = String(r.trigger);
      tr.dataset.outcome = String(r.outcome);
      var time = add(tr, "td", "", when(r.at));
      time.title = String(r.at);
      add(tr, "td", "", r.trigger);
      var outcome = add(tr, "td");
      var tone = r.outcome === "applied" ? "ok" : r.outcome === "rejected" ? "bad" : "muted";
      add(outcome, "span", "badge " + tone, r.outcome);
      var sha = add(tr, "td", "mono hide-narrow", r.sha256 ? String(r.sha256).slice(0, 12) : "–");
      if (r.sha256) sha.title = String(r.sha256);
      var what = add(tr, "td");
      // The errors, else each change, else the one-line summary.
      var errors = asLines(r.errors);
      var changes = asLines(r.changes);
      if (errors.length > 0) lines(what, errors, "error");
      else if (changes.length > 0) lines(what, changes, "");
      else add(what, "span", "muted", r.summary || (r.outcome === "unchanged" ? "same file as running" : "no change"));
      return tr;
    });
    body.replaceChildren.apply(body, rows);
    byId("reloads-none").hidden = rows.length > 0;
    byId("reloads-table").hidden = rows.length === 0;
    showReloads();
  }

  /** The last few reloads, or all of them once asked for. */
  function showReloads() {
    var rows = byId("reloads-body").rows;
    for (var i = 0; i < rows.length; i++) rows[i].hidden = !allReloads && i >= SHOWN_RELOADS;
    var more = byId("reloads-more");
    more.hidden = rows.length <= SHOWN_RELOADS;
    more.textContent = allReloads ? "Show the last " + SHOWN_RELOADS : "Show all " + rows.length;
  }

  // ---- one card per listener, cloned from the templates in the page ----
  function template(id) { return document.importNode(byId(id).content.firstElementChild, true); }
  var CARD = template("t-card");
  var TARGET = template("t-target");
  var CHIP = template("t-chip");

  // The parts of a card that receive data, by their data-s name: read off the template once,
  // then found in each clone by position.
  var SLOTS = Array.prototype.map.call(CARD.querySelectorAll("[data-s]"), function (n) {
    return n.getAttribute("data-s");
  });
  function slots(node) {
    var found = {};
    var list = node.querySelectorAll("[data-s]");
    for (var i = 0; i < list.length; i++) found[SLOTS[i]] = list[i];
    return found;
  }
  function figure(node, value, text) {
    node.textContent = text;
    if (isNumber(value)) node.setAttribute("data-value", String(value));
  }
  function chip(parent, text, value, className) {
    var node = CHIP.cloneNode(true);
    node.firstElementChild.textContent = text;
    if (className) node.firstElementChild.className = className;
    if (isNumber(value)) figure(node.lastElementChild, value, count(value));
    else node.removeChild(node.lastElementChild);
    return parent.appendChild(node);
  }

  function load(s, l) {
    var limits = l.limits || {};
    var max = limits.maxConnections;
    var open = isNumber(l.openBridges) ? l.openBridges : 0;
    if (isNumber(max) && max > 0) {
      var share = Math.min(1, open / max);
      s.fill.style.width = (share * 100).toFixed(1) + "%";
      if (share >= 0.9) s.fill.classList.add("hot");
      else if (share >= 0.7) s.fill.classList.add("warm");
      s.bar.setAttribute("role", "meter");
      s.bar.setAttribute("aria-label", "open bridges of maxConnections");
      s.bar.setAttribute("aria-valuemin", "0");
      s.bar.setAttribute("aria-valuemax", String(max));
      s.bar.setAttribute("aria-valuenow", String(open));
    } else s.bar.classList.add("unbounded");
    figure(s.open, open, count(open));
    s.of.textContent = isNumber(max) ? " / " + count(max) + " open bridges"
      : (open === 1 ? " open bridge" : " open bridges") + " · no maxConnections";
    if (isNumber(limits.maxConnectionsPerClient)) {
      s.perClient.textContent = " · at most " + count(limits.maxConnectionsPerClient) + " per client";
    }
  }

  // The four reasons of today are in the template; a reason /status adds gets a chip of its own.
  function refused(s, counts) {
    for (var reason in counts) {
      if (REASONS.indexOf(reason) >= 0) continue;
      chip(s.refused, reason, 0).lastElementChild.setAttribute("data-field", "refused-" + reason);
    }
    var figures = s.refused.querySelectorAll("b");
    for (var i = 0; i < figures.length; i++) {
      var n = counts[figures[i].getAttribute("data-field").slice("refused-".length)];
      if (!isNumber(n)) n = 0;
      figure(figures[i], n, count(n));
      figures[i].parentNode.className = "chip " + (n > 0 ? "bad" : "zero");
    }
  }

  function targets(s, l) {
    var list = Array.isArray(l.targets) ? l.targets : [];
    var up = 0;
    for (var i = 0; i < list.length; i++) if (list[i].state === "up") up++;
    s.targetsTitle.textContent = "targets · " + up + " of " + list.length + " up" + (l.balance ? " · " + l.balance : "");
    list.slice(0, SHOWN_TARGETS).forEach(function (t) {
      var row = TARGET.cloneNode(true);
      var isUp = t.state === "up";
      row.setAttribute("data-target", String(t.address));
      row.setAttribute("data-state", String(t.state));
      var name = row.cells[0];
      var address = name.firstElementChild;
      address.firstElementChild.className = "dot " + (isUp ? "up" : "down");
      address.lastElementChild.textContent = t.address;
      if (!isUp) name.lastElementChild.textContent = t.state;
      figure(row.cells[1], t.openBridges, count(t.openBridges));
      figure(row.cells[2], t.connectFailures, count(t.connectFailures));
      row.cells[3].textContent = t.lastError || "–";
      row.cells[3].className = t.lastError ? "err error" : "err muted";
      s.targets.appendChild(row);
    });
    if (list.length > SHOWN_TARGETS) {
      add(add(s.targets, "tr"), "td", "muted", "… and " + (list.length - SHOWN_TARGETS) + " more in /status").colSpan = 4;
    }
  }

  // An entry is "10.0.0.0/8" (rules as written) or {rule, hits, lastHitAt} (with hit counters).
  function entry(e) {
    if (e === null || typeof e !== "object") return { rule: String(e) };
    return { rule: String(e.rule !== undefined ? e.rule : e.entry !== undefined ? e.entry : e.source),
      hits: e.hits, lastHitAt: e.lastHitAt };
  }

  function ruleRow(row, entries, empty) {
    entries = Array.isArray(entries) ? entries.map(entry) : [];
    if (entries.length === 0) add(row, "li", "muted", empty);
    entries.slice(0, SHOWN_RULES).forEach(function (e) {
      var node = chip(row, e.rule, e.hits, "mono");
      node.setAttribute("data-rule", e.rule);
      if (isNumber(e.hits)) {
        node.lastElementChild.setAttribute("data-field", "hits");
        node.title = e.hits + (e.hits === 1 ? " hit" : " hits") + (e.lastHitAt ? ", the last at " + e.lastHitAt : "");
        if (e.hits === 0) node.classList.add("zero");
      }
    });
    if (entries.length > SHOWN_RULES) {
      var rest = entries.slice(SHOWN_RULES);
      var hits = rest.reduce(function (n, e) { return n + (isNumber(e.hits) ? e.hits : 0); }, 0);
      add(row, "li", "muted", "… and " + rest.length + " more" + (hits > 0 ? " (" + count(hits) + " hits)" : ""));
    }
  }

  function rules(s, r) {
    if (!r) {
      s.rules.hidden = true;
      return;
    }
    ruleRow(s.deny, r.deny, "nobody");
    ruleRow(s.allow, r.allow, "everyone not denied");
    var schedule = r.schedule;
    if (!("schedule" in r)) s.scheduleRow.hidden = true;
    else if (!schedule) s.schedule.textContent = "always open";
    else {
      s.schedule.className = "";
      s.schedule.textContent = (schedule.timezone ? schedule.timezone + ": " : "") + asLines(schedule.windows).join(", ");
    }
    var t = r.timeouts;
    if (t) {
      s.timeouts.textContent = "timeouts: connect " + t.connect + " · idle " + t.idle + " · half-close " + t.halfClose +
        " · max duration " + (t.maxDuration || "none");
    }
  }

  // A card is built in two steps. card() makes it with its name, address and state, enough
  // to find it; fill() writes its figures, targets and rules once it is near the screen (at
  // once for those in view), so that 200 listeners cost what the dozen on screen cost.
  var NEAR_PX = 800;
  var nearScreen = new IntersectionObserver(function (entries) {
    entries.forEach(function (entry) { if (entry.isIntersecting) fill(entry.target); });
  }, { rootMargin: NEAR_PX + "px 0px" });

  function card(l) {
    var node = CARD.cloneNode(true);
    var serving = l.state === "serving";
    if (!serving) node.classList.add("draining");
    node.setAttribute("data-listener", String(l.name));
    node.setAttribute("data-state", String(l.state));
    var head = node.firstElementChild;
    head.firstElementChild.textContent = l.name;
    head.children[1].textContent = l.state;
    head.children[1].className = "badge " + (serving ? "ok" : "warn");
    head.lastElementChild.textContent = l.listen;
    node.searchText = (String(l.name) + " " + String(l.listen)).toLowerCase();
    node.unfilled = l;
    nearScreen.observe(node);
    return node;
  }

  function fill(node) {
    var l = node.unfilled;
    if (!l) return;
    node.unfilled = null;
    nearScreen.unobserve(node);
    var s = slots(node);
    load(s, l);
    figure(s.accepted, l.accepted, count(l.accepted));
    figure(s.closed, l.closed, count(l.closed));
    var b = l.bytes || {};
    figure(s.up, b.up, bytes(b.up));
    figure(s.down, b.down, bytes(b.down));
    if (isNumber(b.up)) s.up.title = count(b.up) + " bytes";
    if (isNumber(b.down)) s.down.title = count(b.down) + " bytes";
    refused(s, l.refused || {});
    targets(s, l);
    rules(s, l.rules);
  }

  /** Fills the cards in or near the view now, rather than a frame later: all reads, then all writes. */
  function fillNearScreen() {
    var top = -NEAR_PX, bottom = window.innerHeight + NEAR_PX;
    var near = [];
    cards.forEach(function (c) {
      if (!c.node.unfilled || c.node.hidden) return;
      var box = c.node.getBoundingClientRect();
      if (box.bottom > top && box.top < bottom) near.push(c.node);
    });
    near.forEach(fill);
  }

  // Cards are rebuilt only for listeners whose part of /status changed, and moved only
  // when the order changed: a quiet listener costs one JSON.stringify per refresh.
  function renderListeners(listeners) {
    var container = byId("listeners");
    var next = new Map();
    var nodes = listeners.map(function (l) {
      var key = l.state + "\n" + l.name;
      while (next.has(key)) key += "+";
      var json = JSON.stringify(l);
      var cached = cards.get(key);
      var node = cached && cached.json === json ? cached.node : card(l);
      next.set(key, { json: json, node: node });
      return node;
    });
    cards = next;
    var at = container.firstChild;
    nodes.forEach(function (node) {
      if (node === at) at = at.nextSibling;
      else container.insertBefore(node, at);
    });
    while (at) {
      var stale = at;
      at = at.nextSibling;
      nearScreen.unobserve(stale);
      container.removeChild(stale);
    }
    applyFilter();
    fillNearScreen();
  }

  function applyFilter() {
    var shown = 0, all = 0;
    cards.forEach(function (c) {
      all++;
      c.node.hidden = filter !== "" && c.node.searchText.indexOf(filter) < 0;
      if (!c.node.hidden) shown++;
    });
    setText("shown", filter === "" ? count(all) : count(shown) + " of " + count(all));
  }

  function render(s) {
    var started = performance.now();
    renderHeader(s);
    renderReloads(s);
    renderListeners(Array.isArray(s.listeners) ? s.listeners : []);
    // Style and layout are part of what a person waits for: force them inside the measurement.
    void document.body.offsetHeight;
    api.lastRenderMs = performance.now() - started;
    return api.lastRenderMs;
  }

  // ---- refreshing, and saying so when the instance stops answering ----
  function answered(s) {
    lastAnswerAt = Date.now();
    downSince = 0;
    document.body.classList.remove("stale");
    byId("banner").hidden = true;
    var conn = byId("conn");
    var stopping = s.state === "shutting-down";
    conn.className = stopping ? "conn warn" : "conn live";
    conn.textContent = (stopping ? "shutting down" : "live") + " · updated " + clock(lastAnswerAt);
    document.title = (stopping ? "shutting down · " : "") + "tcpgate" + (s.version ? " " + s.version : "");
  }

  function unreachable(why) {
    if (!downSince) downSince = Date.now();
    document.body.classList.add("stale");
    var conn = byId("conn");
    conn.className = "conn down";
    conn.textContent = "unreachable";
    var banner = byId("banner");
    banner.hidden = false;
    banner.textContent = "tcpgate is unreachable since " + clock(downSince) + " (" + why + "). " +
      (lastAnswerAt ? "The figures below are from " + clock(lastAnswerAt) + ". " : "") + "Retrying every 2 s.";
    document.title = "unreachable · tcpgate";
  }

  function poll() {
    var abort = new AbortController();
    var timer = setTimeout(function () { abort.abort(); }, TIMEOUT_MS);
    fetch("status", { cache: "no-store", signal: abort.signal, headers: { accept: "application/json" } })
      .then(function (res) {
        if (!res.ok) throw new Error("/status answered HTTP " + res.status);
        return res.json();
      })
      .then(function (s) {
        if (api.paused) return;
        answered(s);
        render(s);
      }, function (error) {
        unreachable(error && error.name === "AbortError" ? "no answer within " + TIMEOUT_MS / 1000 + " s"
          : error instanceof TypeError ? "connection failed" : String(error && error.message || error));
      })
      .catch(function (error) {
        unreachable("cannot show this answer: " + String(error && error.message || error));
      })
      .finally(function () {
        clearTimeout(timer);
        setTimeout(poll, POLL_MS);
      });
  }

  byId("reloads-more").addEventListener("click", function () {
    allReloads = !allReloads;
    showReloads();
  });
  byId("filter").addEventListener("input", function (event) {
    filter = String(event.target.value).trim().toLowerCase();
    applyFilter();
    fillNearScreen();
  });
  poll();
})();
`;

const BODY = `
<header class="top">
  <h1>tcpgate <small id="version"></small></h1>
  <div id="conn" class="conn" role="status" aria-live="polite">connecting…</div>
</header>
<p id="banner" class="banner" role="alert" hidden></p>
<main>
  <dl class="facts">
    <div><dt>state</dt><dd id="state">–</dd></div>
    <div><dt>uptime</dt><dd id="uptime">–</dd></div>
    <div><dt>pid</dt><dd id="pid">–</dd></div>
    <div><dt>memory</dt><dd id="rss">–</dd></div>
    <div><dt>config</dt><dd><code id="config">–</code></dd></div>
    <div><dt>sha256</dt><dd><code id="sha">–</code></dd></div>
  </dl>
  <dl class="totals">
    <div><dt>listeners</dt><dd id="t-listeners">–</dd></div>
    <div><dt>open bridges</dt><dd id="t-open">–</dd></div>
    <div><dt>accepted</dt><dd id="t-accepted">–</dd></div>
    <div><dt>refused</dt><dd id="t-refused">–</dd></div>
    <div><dt>closed</dt><dd id="t-closed">–</dd></div>
  </dl>
  <h2>Reloads</h2>
  <div class="reloads">
    <p id="reloads-none" class="muted">No reload since tcpgate started.</p>
    <div class="scroll">
      <table id="reloads-table" hidden>
        <thead><tr><th>time</th><th>trigger</th><th>outcome</th><th class="hide-narrow">sha256</th><th>changes or errors</th></tr></thead>
        <tbody id="reloads-body"></tbody>
      </table>
    </div>
    <button id="reloads-more" class="more" type="button" hidden></button>
  </div>
  <div class="toolbar">
    <h2>Listeners <span id="shown" class="muted"></span></h2>
    <input id="filter" type="search" placeholder="Filter by name or address" aria-label="Filter listeners by name or address">
  </div>
  <div id="listeners" class="grid"></div>
  <template id="t-card"><article class="card"><header class="card-head"><h3 data-s="name"></h3><span data-s="state"></span><code data-s="listen"></code></header><div class="load"><div class="bar" data-s="bar"><div class="fill" data-s="fill"></div></div><div class="load-text"><span class="open" data-s="open" data-field="open"></span><span data-s="of"></span><span class="muted" data-s="perClient"></span></div></div><dl class="stats"><div><dt>accepted</dt><dd data-s="accepted" data-field="accepted"></dd></div><div><dt>closed</dt><dd data-s="closed" data-field="closed"></dd></div><div><dt>bytes up</dt><dd data-s="up" data-field="bytes-up"></dd></div><div><dt>bytes down</dt><dd data-s="down" data-field="bytes-down"></dd></div></dl><ul class="chips refused" data-s="refused"><li class="label">refused</li><li><span>deny</span><b data-field="refused-deny"></b></li><li><span>allow</span><b data-field="refused-allow"></b></li><li><span>schedule</span><b data-field="refused-schedule"></b></li><li><span>limit</span><b data-field="refused-limit"></b></li></ul><div class="targets"><div class="section-title" data-s="targetsTitle"></div><div class="scroll"><table><thead><tr><th>target</th><th class="num">open</th><th class="num" title="failed connection attempts">failed</th><th>last error</th></tr></thead><tbody data-s="targets"></tbody></table></div></div><div class="rules" data-s="rules"><ul class="row chips" data-list="deny" data-s="deny"><li class="label">deny</li></ul><ul class="row chips" data-list="allow" data-s="allow"><li class="label">allow</li></ul><div class="row" data-s="scheduleRow"><span class="label">schedule</span><span class="muted" data-s="schedule"></span></div><div class="timeouts muted" data-s="timeouts"></div></div></article></template>
  <template id="t-target"><tr><td><span class="addr"><span class="dot"></span><code></code></span> <span class="muted"></span></td><td class="num" data-field="target-open"></td><td class="num" data-field="target-failures"></td><td class="err"></td></tr></template>
  <template id="t-chip"><li class="chip"><span></span><b></b></li></template>
  <noscript><p>This page needs JavaScript. The same figures are at <a href="status">/status</a> (JSON) and <a href="metrics">/metrics</a>.</p></noscript>
</main>
`;

const sha256 = (text: string) => `'sha256-${createHash("sha256").update(text).digest("base64")}'`;

export const STATUS_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>tcpgate</title>
<link rel="icon" href="data:,">
<style>${STYLE}</style>
</head>
<body>${BODY}<script>${SCRIPT}</script>
</body>
</html>
`;

/** Nothing but the page's own style and script, and requests back to this endpoint. */
export const STATUS_PAGE_CSP = [
  "default-src 'none'",
  `script-src ${sha256(SCRIPT)}`,
  `style-src ${sha256(STYLE)}`,
  "connect-src 'self'",
  "img-src data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

export const STATUS_PAGE_HEADERS = {
  "content-type": "text/html; charset=utf-8",
  "cache-control": "no-store",
  "content-security-policy": STATUS_PAGE_CSP,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
} as const;
