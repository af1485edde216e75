// The mesh dashboard: renders what GET /ui/stream sends (see node/src/ui/stream.rs).
// Every piece of data enters the DOM as text (textContent, attribute values): nothing the
// mesh sends is ever parsed as HTML.
"use strict";

const MAX_EVENTS = 200;
const OK_PHASES = new Set(["Running", "Succeeded"]);
const BAD_PHASES = new Set(["Failed", "CrashLoopBackOff", "Unknown"]);

const events = []; // newest first, at most MAX_EVENTS
const seen = new Set(); // "node/seq" of every event shown, so a reconnect shows none twice

// An element with attributes and children; strings become text nodes.
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value !== undefined && value !== null) node.setAttribute(name, String(value));
  }
  for (const child of children) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// As meshctl prints peer ids: the last 12 characters; the whole id in the title.
function shortPeer(id) {
  return id.length > 16 ? "…" + id.slice(-12) : id;
}

function peer(id) {
  return el("span", { class: "id", title: id, "data-peer": id }, shortPeer(id));
}

function phaseClass(phase) {
  if (OK_PHASES.has(phase)) return "ok";
  if (BAD_PHASES.has(phase)) return "bad";
  return "warn";
}

function phase(p) {
  return el("span", { class: phaseClass(p) }, p);
}

function ago(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 120 ? s + " s ago" : Math.round(s / 60) + " min ago";
}

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}

function fill(tableId, rows, emptyText, columns) {
  const body = document.querySelector("#" + tableId + " tbody");
  if (rows.length === 0) {
    rows = [el("tr", { class: "empty" }, el("td", { colspan: columns }, emptyText))];
  }
  body.replaceChildren(...rows);
}

function nodeRow(n) {
  const engines = n.engines.map((e) =>
    el("span", { class: "tag " + (e.healthy ? "ok" : "bad"),
                 title: e.healthy ? "healthy" : "unhealthy" },
       e.name + (e.version ? " " + e.version : "") + (e.healthy ? " ✓" : " ✗")));
  const state = n.cordoned
    ? el("span", { class: "warn" }, "cordoned")
    : el("span", { class: "ok" }, "schedulable");
  return el("tr", { "data-peer": n.peer_id },
    el("td", {}, peer(n.peer_id), n.local ? el("span", { class: "muted" }, " (this node)") : null),
    el("td", {}, ...(engines.length ? engines : ["none"])),
    el("td", {}, state),
    el("td", {}, n.workloads),
    el("td", {}, (n.cpu_free_millis / 1000).toFixed(2) + " / " + (n.cpu_millis / 1000).toFixed(2)),
    el("td", {}, bytes(n.memory_free_bytes) + " / " + bytes(n.memory_bytes)),
    el("td", {}, n.software_version),
    el("td", { title: new Date(n.seen_at).toISOString() }, ago(n.seen_at)));
}

function workloadRow(d) {
  const replicas = [...d.replicas].sort((a, b) => (a.slot ?? 0) - (b.slot ?? 0));
  const running = replicas.filter((r) => OK_PHASES.has(r.phase)).length;
  const slots = replicas.map((r) =>
    el("span", { class: "slot" },
       "slot " + (r.slot ?? "?") + ": ", peer(r.node), " ", phase(r.phase),
       r.error ? el("span", { class: "bad" }, " " + r.error) : null));
  const notes = [...(d.placement || []), ...(d.error ? [d.error] : [])];
  return el("tr", { "data-workload": d.namespace + "/" + d.name },
    el("td", {}, el("span", { class: "id" }, d.namespace + "/" + d.name),
       el("div", { class: "muted" }, d.engine)),
    el("td", {}, d.kind),
    el("td", {}, phase(d.phase)),
    el("td", {}, running + " / " + d.desired_replicas),
    el("td", {}, ...slots, ...notes.map((n) => el("div", { class: "warn" }, n))),
    el("td", {}, d.revision ?? ""));
}

function eventRow(node, e) {
  const when = new Date(e.at);
  return el("tr", {},
    el("td", { title: when.toISOString() }, when.toLocaleTimeString()),
    el("td", {}, peer(node)),
    el("td", {}, e.workload),
    el("td", {}, e.step),
    el("td", { class: e.outcome === "ok" ? "ok" : "bad" }, e.outcome),
    el("td", { class: "message" }, e.message));
}

function onSnapshot(s) {
  document.getElementById("self").replaceChildren("via ", peer(s.node));
  const nodes = [...s.nodes].sort((a, b) => a.peer_id.localeCompare(b.peer_id));
  fill("nodes", nodes.map(nodeRow), "no nodes", 8);
  document.getElementById("node-count").textContent = "(" + nodes.length + ")";
  const deployments = [...s.deployments].sort((a, b) =>
    (a.namespace + "/" + a.name).localeCompare(b.namespace + "/" + b.name));
  fill("workloads", deployments.map(workloadRow), "no workloads", 6);
  document.getElementById("workload-count").textContent = "(" + deployments.length + ")";
}

function onEvents(batch) {
  for (const e of batch.events) {
    const key = batch.node + "/" + e.seq;
    if (seen.has(key)) continue;
    seen.add(key);
    events.push({ node: batch.node, event: e });
  }
  events.sort((a, b) => b.event.at - a.event.at);
  for (const dropped of events.splice(MAX_EVENTS)) {
    seen.delete(dropped.node + "/" + dropped.event.seq);
  }
  fill("events", events.map((x) => eventRow(x.node, x.event)), "no events yet", 6);
}

function setStatus(state, text) {
  const status = document.getElementById("status");
  status.dataset.state = state;
  status.textContent = text;
}

function handler(fn) {
  return (message) => {
    try {
      fn(JSON.parse(message.data));
    } catch (err) {
      setStatus("problem", "bad message: " + err);
    }
  };
}

function connect() {
  // EventSource reconnects by itself after an error; each connection starts with a snapshot.
  const source = new EventSource("ui/stream");
  source.addEventListener("open", () => setStatus("live", "live"));
  source.addEventListener("error", () => setStatus("connecting", "reconnecting…"));
  source.addEventListener("snapshot", handler((s) => {
    onSnapshot(s);
    setStatus("live", "live · " + new Date(s.at).toLocaleTimeString());
  }));
  source.addEventListener("events", handler(onEvents));
  source.addEventListener("problem", handler((p) => setStatus("problem", p.error)));
}

connect();
