// The console's core: helpers, pages by URL hash, the start. Data comes from /console/api (same origin),
// every change is sent with the session's CSRF token; the DOM is built with textContent only, so captured
// text is never HTML. The pages themselves are in console-pages.js.
"use strict";

const state = { csrf: "", timer: null, editing: null, removing: null, usageKey: null };

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (name === "onclick") node.addEventListener("click", value);
    else if (value !== null && value !== undefined && value !== false) node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function show(message, isError) {
  const status = document.getElementById("status");
  status.textContent = message || "";
  status.classList.toggle("error", Boolean(isError));
}

async function api(method, path, body) {
  const headers = { "accept": "application/json" };
  if (method !== "GET") headers["x-csrf-token"] = state.csrf;
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch("/console/api" + path, {
    method, headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) { window.location.assign("/console/signin"); throw new Error("signed out"); }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const message = (data.error && data.error.message) || ("HTTP " + response.status);
    show(message, true);
    throw new Error(message);
  }
  return data;
}

const fmt = (v, digits) => (v === null || v === undefined ? "–" : (typeof v === "number" ? v.toFixed(digits ?? 0) : String(v)));
const pct = (v) => (v === null || v === undefined ? "–" : (v * 100).toFixed(1) + " %");

function table(id, headers, rows) {
  const node = document.getElementById(id);
  node.replaceChildren(el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rows.map((cells) => el("tr", {}, cells.map((c) => el("td", {}, c))))));
}

// ---- pages
// A function, not a table: the loaders are defined by console-pages.js, which runs after this script.
const pages = () => ({ overview: loadOverview, keys: loadKeys, workers: loadWorkers, playground: loadPlayground,
  captures: loadCaptures });

function route() {
  const PAGES = pages();
  const name = (location.hash || "#overview").slice(1);
  const page = PAGES[name] ? name : "overview";
  for (const section of document.querySelectorAll(".page")) section.hidden = section.id !== "page-" + page;
  for (const link of document.querySelectorAll("nav a")) {
    if (link.getAttribute("href") === "#" + page) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  clearInterval(state.timer);
  show("");
  document.getElementById("new-secret").hidden = true;  // a secret is shown once: gone when the page changes
  document.getElementById("new-secret-value").textContent = "";
  PAGES[page]().catch(() => {});
  if (page === "overview" || page === "workers") {
    // Refreshed every 2 s, unless the keyboard is in the page (a refresh would take the focus away).
    const section = document.getElementById("page-" + page);
    state.timer = setInterval(() => {
      if (!section.contains(document.activeElement)) PAGES[page]().catch(() => {});
    }, 2000);
  }
}

async function start() {
  const session = await api("GET", "/session");
  state.csrf = session.csrf;
  document.getElementById("signout-csrf").value = session.csrf;
  document.getElementById("who").textContent = "Signed in as " + session.key_id;
  document.getElementById("key-create").addEventListener("submit", (e) => createKey(e).catch(() => {}));
  document.getElementById("key-edit").addEventListener("submit", (e) => saveEdit(e).catch(() => {}));
  document.getElementById("edit-cancel").addEventListener("click", () => { document.getElementById("key-edit").hidden = true; });
  document.getElementById("usage-days").addEventListener("change", () => loadUsage().catch(() => {}));
  document.getElementById("usage-refresh").addEventListener("click", () => loadUsage().catch(() => {}));
  document.getElementById("worker-add").addEventListener("submit", (e) => addWorker(e).catch(() => {}));
  document.getElementById("model-pull").addEventListener("submit", (e) => pullModel(e).catch(() => {}));
  document.getElementById("adapter-form").addEventListener("submit", (e) => adapter(e, true).catch(() => {}));
  document.getElementById("ad-unload").addEventListener("click", () => adapter(null, false).catch(() => {}));
  document.getElementById("wa-spec").value = JSON.stringify({ name: "new-worker", kind: "vllm",
    base_url: "http://127.0.0.1:8000/v1", models: [{ name: "chat", upstream_id: "my-model" }] }, null, 2);
  document.getElementById("cases-form").addEventListener("submit", (e) => runCases(e).catch(() => {}));
  document.getElementById("explain-form").addEventListener("submit", (e) => explain(e).catch(() => {}));
  document.getElementById("pg-surface").addEventListener("change", fillSample);
  document.getElementById("reload-catalog").addEventListener("click", () => api("POST", "/reload")
    .then((r) => show(`Reloaded ${r.source}: ${r.models.length} models, ${r.workers.length} workers.`)).catch(() => {}));
  document.getElementById("capture-filter").addEventListener("submit", (e) => { e.preventDefault(); loadCaptures().catch(() => {}); });
  fillSample();
  window.addEventListener("hashchange", route);
  route();
  document.body.dataset.ready = "yes";
}

document.addEventListener("DOMContentLoaded", () => { start().catch(() => {}); });
