// The console's workers page: the table (refreshed by console.js), drain, resume, remove, add, Ollama pulls
// with their progress, LoRA adapters. Helpers (el, api, table, show, state) are console.js's.
"use strict";

// ---- workers
async function loadWorkers() {
  const data = await api("GET", "/workers");
  table("workers-table", ["Worker", "Kind", "Healthy", "Ejected (times)", "In flight", "Queue (waiting/running)",
    "KV cache (blocks)", "Models (loaded)", "State", "Action"], data.workers.map((w) => [w.name, w.kind,
    w.healthy ? "yes" : "no", `${w.outlier && w.outlier.ejected ? "yes" : "no"} (${(w.outlier && w.outlier.ejections) || 0})`,
    fmt(w.in_flight), `${fmt(w.load.waiting)} / ${fmt(w.load.running)}`,
    `${w.load.kv_usage == null ? "–" : pct(w.load.kv_usage)}${w.kv_blocks == null ? "" : ` (${w.kv_blocks})`}`,
    w.models.join(", ") + (w.models_loaded ? ` (${w.models_loaded.join(", ") || "none"})` : ""),
    w.drained ? "drained" : "serving",
    el("span", { class: "actions" }, w.drained
      ? el("button", { type: "button", "data-resume": w.name, "aria-label": "Resume " + w.name,
        onclick: () => workerAction(w.name, "resume") }, "Resume")
      : el("button", { type: "button", class: "danger", "data-drain": w.name, "aria-label": "Drain " + w.name,
        onclick: () => workerAction(w.name, "drain") }, "Drain"),
    el("button", { type: "button", class: "danger", "data-remove": w.name, "aria-label": "Remove " + w.name,
      onclick: () => removeWorker(w.name) }, state.removing === w.name ? "Confirm remove" : "Remove"))]));
  for (const select of document.querySelectorAll(".worker-choice")) {
    const chosen = select.value;
    select.replaceChildren(...data.workers.filter((w) => w.kind === select.dataset.kind)
      .map((w) => el("option", { value: w.name }, w.name)));
    if (chosen) select.value = chosen;
  }
}

async function removeWorker(name) {
  if (state.removing !== name) {  // the first click asks, the second removes (kept across refreshes)
    state.removing = name;
    await loadWorkers();
    return;
  }
  state.removing = null;
  await api("DELETE", "/workers/" + encodeURIComponent(name));
  show(`Removed ${name}.`);
  await loadWorkers();
}

async function addWorker(event) {
  event.preventDefault();
  let spec;
  try { spec = JSON.parse(document.getElementById("wa-spec").value); } catch (e) { show("Not JSON: " + e.message, true); return; }
  await api("POST", "/workers", spec);
  show(`Added ${spec.name}.`);
  await loadWorkers();
}

async function pullModel(event) {
  event.preventDefault();
  const worker = document.getElementById("mp-worker").value;
  const model = document.getElementById("mp-model").value.trim();
  const bar = document.getElementById("mp-progress");
  const status = document.getElementById("mp-status");
  const response = await fetch(`/console/api/workers/${encodeURIComponent(worker)}/models/pull`, {
    method: "POST", credentials: "same-origin", body: JSON.stringify({ model }),
    headers: { "content-type": "application/json", "x-csrf-token": state.csrf } });
  if (!response.ok) {
    const data = await response.json().catch(() => ({}));
    show((data.error && data.error.message) || "HTTP " + response.status, true);
    return;
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let pending = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    pending += decoder.decode(value, { stream: true });
    const lines = pending.split("\n");
    pending = lines.pop();
    for (const line of lines.filter(Boolean)) {
      const step = JSON.parse(line);
      if (step.error) { status.textContent = "failed: " + step.error; show(step.error, true); return; }
      if (step.total) { bar.max = step.total; bar.value = step.completed || 0; }
      status.textContent = step.status;
    }
  }
  if (status.textContent === "success") { bar.max = 1; bar.value = 1; }
  show(`Pulled ${model} onto ${worker}: ${status.textContent}.`);
  await loadWorkers();
}

async function adapter(event, load) {
  if (event) event.preventDefault();
  const worker = document.getElementById("ad-worker").value;
  const name = document.getElementById("ad-name").value.trim();
  if (load) {
    await api("POST", `/workers/${encodeURIComponent(worker)}/adapters`,
      { lora_name: name, lora_path: document.getElementById("ad-path").value.trim() });
  } else {
    await api("DELETE", `/workers/${encodeURIComponent(worker)}/adapters/${encodeURIComponent(name)}`);
  }
  show(`${load ? "Loaded" : "Unloaded"} ${name} on ${worker}.`);
  await loadWorkers();
}

async function workerAction(name, action) {
  await api("POST", `/workers/${encodeURIComponent(name)}/${action}`);
  show(`${action === "drain" ? "Drained" : "Resumed"} ${name}.`);
  await loadWorkers();
}
