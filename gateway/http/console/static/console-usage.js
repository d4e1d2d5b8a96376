// The Keys page's usage panel: a key's requests, tokens and errors per UTC day (GET /console/api/keys/{id}/usage,
// what GET /admin/keys/{id}/usage answers), as a bar chart drawn in SVG and a table, newest day first.
"use strict";

function drawUsageChart(rows) {
  const svg = document.getElementById("usage-chart");
  const ns = "http://www.w3.org/2000/svg";
  svg.replaceChildren();
  const top = Math.max(1, ...rows.map((r) => r.requests));
  const slot = 600 / rows.length;
  const bar = (i, value, cls, text) => {
    const height = (value / top) * 130;
    const rect = document.createElementNS(ns, "rect");
    rect.setAttribute("x", String(i * slot + slot * 0.15));
    rect.setAttribute("width", String(slot * 0.7));
    rect.setAttribute("y", String(140 - height));
    rect.setAttribute("height", String(height));
    rect.setAttribute("class", cls);
    const title = document.createElementNS(ns, "title");
    title.textContent = text;
    rect.append(title);
    svg.append(rect);
  };
  const label = (x, y, text, anchor) => {
    const node = document.createElementNS(ns, "text");
    node.setAttribute("x", String(x)); node.setAttribute("y", String(y));
    if (anchor) node.setAttribute("text-anchor", anchor);
    node.textContent = text;
    svg.append(node);
  };
  rows.forEach((r, i) => {
    bar(i, r.requests, "usage-bar", `${r.day}: ${r.requests} requests`);
    if (r.errors) bar(i, r.errors, "usage-bar errors", `${r.day}: ${r.errors} errors`);
  });
  label(4, 12, `max ${top} requests/day`);
  label(2, 156, rows[0].day.slice(5));
  label(598, 156, rows[rows.length - 1].day.slice(5), "end");
}

function describeModels(models) {
  return Object.entries(models).sort((a, b) => b[1].requests - a[1].requests)
    .map(([name, m]) => `${name || "(none)"} ${m.requests}`).join(", ") || "–";
}

async function loadUsage() {
  const id = state.usageKey;
  if (!id) return;
  const days = document.getElementById("usage-days").value;
  const data = await api("GET", `/keys/${encodeURIComponent(id)}/usage?days=${days}`);
  if (state.usageKey !== id) return;  // another key was chosen meanwhile
  document.getElementById("usage-id").textContent = id;
  document.getElementById("key-usage").hidden = false;
  drawUsageChart(data.data);
  table("usage-table", ["Day (UTC)", "Requests", "Prompt tokens", "Completion tokens", "Errors", "Models"],
    data.data.slice().reverse().map((r) => [r.day, fmt(r.requests), fmt(r.prompt_tokens), fmt(r.completion_tokens),
      fmt(r.errors), describeModels(r.models)]));
  const total = data.data.reduce((sum, r) => sum + r.requests, 0);
  document.getElementById("usage-total").textContent = `${total} requests over the last ${data.days} days.`;
}

function showUsage(id) {
  state.usageKey = id;
  loadUsage().catch(() => {});
}
