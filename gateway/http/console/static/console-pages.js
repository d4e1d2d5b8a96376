// The console's pages (but workers: console-workers.js): each loads its data from /console/api and draws it (console.js holds the helpers
// they use, the page switching and the start). Text is put on the page as text, never as HTML.
"use strict";

// ---- overview
function drawChart(series) {
  const svg = document.getElementById("chart");
  const ns = "http://www.w3.org/2000/svg";
  svg.replaceChildren();
  if (series.length < 2) return;
  const span = Math.max(1, -series[0].t);
  const top = Math.max(1, ...series.map((p) => p.requests_per_s));
  const line = (key, cls) => {
    const path = document.createElementNS(ns, "polyline");
    path.setAttribute("points", series.map((p) => `${600 + (p.t / span) * 600},${155 - (p[key] / top) * 145}`).join(" "));
    path.setAttribute("class", cls);
    svg.append(path);
  };
  line("requests_per_s", "line");
  line("errors_per_s", "line errors");
  const label = document.createElementNS(ns, "text");
  label.setAttribute("x", "4"); label.setAttribute("y", "14");
  label.textContent = `max ${top.toFixed(2)} req/s`;
  svg.append(label);
}

async function loadOverview() {
  const data = await api("GET", "/overview");
  document.getElementById("window").textContent = fmt(data.window_s, 0);
  const t = data.total || {};
  const cards = [["Requests", fmt(t.requests)], ["Requests/s", fmt(t.requests_per_s, 2)], ["Error rate", pct(t.error_rate)],
    ["p50 latency", fmt(t.p50_ms, 1) + " ms"], ["p99 latency", fmt(t.p99_ms, 1) + " ms"],
    ["TTFT p50", fmt(t.ttft_p50_ms, 1) + " ms"], ["Tokens/s", fmt(t.tokens_per_s, 1)], ["Cache hit rate", pct(data.cache_hit_rate)]];
  document.getElementById("cards").replaceChildren(...cards.map(([name, value]) =>
    el("div", { class: "card" }, el("span", { class: "card-name" }, name), el("span", { class: "card-value", "data-card": name }, value))));
  drawChart(data.series);
  table("models-table", ["Model", "Requests", "Req/s", "Error rate", "p50 ms", "p99 ms", "TTFT p50 ms", "Tokens/s"],
    Object.entries(data.models).map(([name, r]) => [name, fmt(r.requests), fmt(r.requests_per_s, 2), pct(r.error_rate),
      fmt(r.p50_ms, 1), fmt(r.p99_ms, 1), fmt(r.ttft_p50_ms, 1), fmt(r.tokens_per_s, 1)]));
  const live = data.live_workers || {};
  const names = [...new Set([...Object.keys(live), ...Object.keys(data.workers)])].sort();
  table("workers-overview-table", ["Worker", "Healthy", "In flight", "Requests", "Req/s", "Error rate"],
    names.map((name) => {
      const r = data.workers[name] || {}; const w = live[name] || {};
      return [name, w.healthy === undefined ? "–" : (w.healthy ? "yes" : "no"), fmt(w.in_flight), fmt(r.requests ?? 0),
        fmt(r.requests_per_s ?? 0, 2), pct(r.error_rate)];
    }));
}

// ---- keys
const numberOrNull = (v) => (v === "" || v === null ? null : Number(v));
function limitsFrom(form) {
  const limits = { budget_period: form.elements.budget_period.value };
  for (const name of ["requests_per_minute", "tokens_per_minute", "max_concurrent", "token_budget"]) {
    const value = numberOrNull(form.elements[name].value);
    if (value !== null) limits[name] = value;
  }
  return limits;
}
const modelsFrom = (text) => text.split(",").map((m) => m.trim()).filter(Boolean);

function describeLimits(l) {
  const parts = [];
  if (l.requests_per_minute != null) parts.push(`${l.requests_per_minute} req/min`);
  if (l.tokens_per_minute != null) parts.push(`${l.tokens_per_minute} tok/min`);
  if (l.max_concurrent != null) parts.push(`${l.max_concurrent} concurrent`);
  if (l.token_budget != null) parts.push(`${l.token_budget} tokens/${l.budget_period}`);
  return parts.join(", ") || "unlimited";
}
function describeRemaining(r) {
  if (!r) return "–";
  const parts = [];
  if (r.requests != null) parts.push(`${r.requests} req`);
  if (r.tokens != null) parts.push(`${r.tokens} tok`);
  if (r.budget != null) parts.push(`${r.budget} budget`);
  return parts.join(", ") || "–";
}

async function loadKeys() {
  const data = await api("GET", "/keys");
  table("keys-table", ["Id", "Prefix", "Scope", "Models", "Team", "Limits", "Left now", "Expires", "Actions"],
    data.data.map((k) => [k.id, k.prefix, k.scope, k.models.join(", "), k.metadata.team || "–", describeLimits(k.limits),
      describeRemaining(k.remaining), k.expires_at ? new Date(k.expires_at * 1000).toISOString().slice(0, 16) : "never",
      el("span", { class: "actions" },
        el("button", { type: "button", class: "secondary", "data-usage": k.id, "aria-label": "Usage of " + k.id,
          onclick: () => showUsage(k.id) }, "Usage"),
        el("button", { type: "button", class: "secondary", "data-edit": k.id, "aria-label": "Edit " + k.id,
          onclick: () => startEdit(k) }, "Edit"),
        el("button", { type: "button", class: "danger", "data-revoke": k.id, "aria-label": "Revoke " + k.id,
          onclick: (e) => revoke(k.id, e.currentTarget) }, "Revoke"))]));
}

function startEdit(key) {
  const form = document.getElementById("key-edit");
  state.editing = key.id;
  document.getElementById("edit-id").textContent = key.id;
  form.elements.models.value = key.models.join(", ");
  for (const name of ["requests_per_minute", "tokens_per_minute", "max_concurrent", "token_budget"]) {
    form.elements[name].value = key.limits[name] ?? "";
  }
  form.elements.budget_period.value = key.limits.budget_period;
  form.hidden = false;
  form.elements.models.focus();
}

async function revoke(id, button) {
  if (button.dataset.confirm !== "yes") {
    button.dataset.confirm = "yes";
    button.textContent = "Confirm revoke";
    return;
  }
  await api("DELETE", "/keys/" + encodeURIComponent(id));
  show(`Revoked ${id}.`);
  await loadKeys();
}

async function createKey(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const metadata = {};
  if (form.elements.team.value.trim()) metadata.team = form.elements.team.value.trim();
  if (form.elements.capture.checked) metadata.capture = "true";
  const body = { scope: form.elements.scope.value, models: modelsFrom(form.elements.models.value),
    limits: limitsFrom(form), metadata };
  const days = numberOrNull(form.elements.expires_in_days.value);
  if (days !== null) body.expires_in_days = days;
  const created = await api("POST", "/keys", body);
  document.getElementById("new-secret-value").textContent = created.secret;
  document.getElementById("new-secret").hidden = false;
  show(`Created ${created.id}. Copy its secret now: it is not shown again.`);
  await loadKeys();
}

async function saveEdit(event) {
  event.preventDefault();
  const form = event.currentTarget;
  await api("PATCH", "/keys/" + encodeURIComponent(state.editing),
    { models: modelsFrom(form.elements.models.value), limits: limitsFrom(form) });
  show(`Saved ${state.editing}.`);
  form.hidden = true;
  await loadKeys();
}

// ---- playground
const SAMPLES = {
  chat: { model: "", messages: [{ role: "user", content: "Give me a quick reminder tip" }] },
  responses: { input: "Give me a quick reminder tip" },
  messages: { max_tokens: 100, messages: [{ role: "user", content: "Give me a quick reminder tip" }] },
};
function fillSample() {
  const surface = document.getElementById("pg-surface").value;
  const sample = { ...SAMPLES[surface] };
  if (surface === "chat") delete sample.model;
  document.getElementById("pg-body").value = JSON.stringify(sample, null, 2);
}

async function explain(event) {
  event.preventDefault();
  let body;
  try { body = JSON.parse(document.getElementById("pg-body").value); } catch (e) { show("The body is not JSON: " + e.message, true); return; }
  const data = await api("POST", "/explain", { surface: document.getElementById("pg-surface").value, body });
  const out = document.getElementById("explain-result");
  out.replaceChildren(
    el("dl", { class: "facts" }, el("dt", {}, "Model"), el("dd", { id: "pg-model" }, data.model),
      el("dt", {}, "Rule fired"), el("dd", { id: "pg-route" }, data.route),
      el("dt", {}, "Fallbacks"), el("dd", {}, data.fallbacks.join(", ") || "none"),
      el("dt", {}, "Matched on"), el("dd", {}, data.match_on)),
    ...data.candidates.map((c) => el("div", { class: "candidate" },
      el("h2", {}, `${c.model}: ${c.chosen ? "chosen " + c.chosen : "no worker"} (${c.policy || "default"} policy)`),
      el("p", {}, c.reason),
      el("div", { class: "scroll" }, el("table", {}, el("thead", {}, el("tr", {}, ["Worker", "Eligible", "In flight", "Waiting",
        "KV", "Score", "Chosen"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, c.workers.map((w) => el("tr", { class: w.chosen ? "chosen" : null }, [w.name, w.eligible ? "yes" : "no",
        fmt(w.in_flight), fmt(w.waiting), w.kv_usage == null ? "–" : pct(w.kv_usage), fmt(w.score, 3),
        w.chosen ? "✔" : ""].map((v) => el("td", {}, v))))))))));
}

async function loadPlayground() {
  const text = document.getElementById("cases-text");
  if (text.value) return;
  const file = await api("GET", "/route-cases");
  if (file.text !== null) {
    text.value = file.text;
    document.getElementById("cases-source").textContent = `From ${file.path}, checked against the catalog in force.`;
  }
}

async function runCases(event) {
  event.preventDefault();
  const result = await api("POST", "/route-cases", { text: document.getElementById("cases-text").value });
  document.getElementById("cases-result").replaceChildren(...result.lines.map((line) =>
    el("li", { class: line.startsWith("PASS") ? "pass" : (line.startsWith("FAIL") ? "fail" : "total") }, line)));
  show(result.ok ? "Every route case passed." : "Some route cases failed.", !result.ok);
}

// ---- captures
async function loadCaptures() {
  const form = document.getElementById("capture-filter");
  const query = new URLSearchParams();
  for (const name of ["model", "key_id", "rating"]) if (form.elements[name].value) query.set(name, form.elements[name].value);
  const data = await api("GET", "/captures?" + query.toString());
  const list = document.getElementById("captures-list");
  if (!data.data.length) { list.replaceChildren(el("p", {}, "Nothing captured matches.")); return; }
  list.replaceChildren(...data.data.map((c) => {
    const rating = el("select", { "aria-label": "Rating for " + c.request_id, "data-rating": c.request_id },
      ["5", "4", "3", "2", "1", "-1"].map((v) => el("option", { value: v }, v)));
    const label = el("input", { "aria-label": "Label for " + c.request_id, placeholder: "label (optional)" });
    return el("article", { class: "capture", "data-request": c.request_id },
      el("header", {}, el("strong", {}, c.model || "?"), ` · ${c.timestamp} · ${c.key_id || "anonymous"} · `,
        el("code", {}, c.request_id), c.rating ? el("span", { class: "rated" }, ` rated ${c.rating.rating}${c.rating.label ? " (" + c.rating.label + ")" : ""}`) : null),
      el("div", { class: "turns" }, c.prompt.map((m) => el("p", {}, el("b", {}, m.role + ": "), m.content)),
        el("p", {}, el("b", {}, "assistant: "), c.error ? "error: " + c.error : c.answer)),
      el("div", { class: "rate" }, rating, label,
        el("button", { type: "button", "data-rate": c.request_id, "aria-label": "Rate " + c.request_id, onclick: async () => {
          await api("POST", `/captures/${encodeURIComponent(c.request_id)}/feedback`,
            { tenant: c.tenant, rating: Number(rating.value), label: label.value.trim() || null });
          show(`Rated ${c.request_id}.`);
          await loadCaptures();
        } }, "Rate")));
  }));
}
