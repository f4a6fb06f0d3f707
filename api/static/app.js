// The planner page: plain JavaScript against the /v1 API (no build step, no framework).
"use strict";

const KEY_STORAGE = "territory.apiKey";
const POLL_MS = 700;
const MOVES_SHOWN = 200;
const RUNS_SHOWN = 20;
const ENDED = ["succeeded", "failed", "cancelled"];
const PLAN_KINDS = ["align", "design"];  // what the page draws; capacity and quota are API-only
// Distinct, colour-blind-friendly-ish colours (Tableau 10 + 2); cycled past 12 territories.
const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948",
                 "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac", "#1f77b4", "#8c564b"];

const state = {
  datasetId: null,
  datasetUnits: 0,  // unit polygons in the dataset in use
  jobId: null,
  runsOffset: 0,  // the runs list's page: how many newer runs it skips
  pollTimer: null,
  map: null,
  layer: null,
  finished: [],  // the last two finished jobs: {job, summary}, oldest first
};

const $ = (id) => document.getElementById(id);

// ---------- small helpers ----------

function apiKey() { return localStorage.getItem(KEY_STORAGE) || ""; }

class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

// fetch with the Bearer key; problem+json answers become ApiError (issues kept).
async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  headers.set("Authorization", `Bearer ${apiKey()}`);
  const response = await fetch(path, { ...options, headers });
  if (!response.ok) {
    let problem = { title: `HTTP ${response.status}` };
    try { problem = await response.json(); } catch (_) { /* not JSON: keep the status */ }
    throw new ApiError(response.status, problem);
  }
  return response;
}

async function apiJson(path, options) { return (await api(path, options)).json(); }

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function fmt(value, digits = 2) {
  if (value === null || value === undefined || Number.isNaN(value)) return "—";
  return Number(value).toLocaleString("en-US", { maximumFractionDigits: digits,
                                                 minimumFractionDigits: digits });
}
const pct = (v) => (v === null || v === undefined ? "—" : `${fmt(v * 100, 1)} %`);
const get = (obj, path) => path.split(".").reduce((o, k) => (o == null ? o : o[k]), obj);

// ---------- messages ----------

function clearMessage() { $("message").hidden = true; $("message").replaceChildren(); }

function showMessage(kind, title, ...body) {
  const box = $("message");
  const close = el("button", { type: "button", class: "secondary close",
                               "aria-label": "Dismiss message" }, "×");
  close.addEventListener("click", clearMessage);
  box.className = `message ${kind}`;
  box.replaceChildren(close, el("h2", {}, title), ...body);
  box.hidden = false;
}

// The problem+json answer, with its field-level issues as a table (source, row, field, message).
function showProblem(error, what) {
  if (!(error instanceof ApiError)) {
    showMessage("error", `${what} failed`, el("p", {}, String(error.message || error)));
    return;
  }
  const p = error.problem;
  const body = [el("p", {}, p.detail || p.title)];
  if (error.status === 401) body.push(el("p", {}, "Check the API key at the top of the page."));
  if (Array.isArray(p.issues) && p.issues.length) body.push(issuesTable(p.issues));
  showMessage("error", `${what}: ${p.title || "error"}`, ...body);
}

function issuesTable(issues) {
  const rows = issues.map((i) => el("tr", {},
    el("td", {}, i.source ?? ""),
    el("td", { class: "num" }, i.row ?? ""),
    el("td", {}, i.field ?? ""),
    el("td", {}, i.message ?? "")));
  return el("table", { class: "data issues" },
    el("thead", {}, el("tr", {}, el("th", {}, "Source"), el("th", { class: "num" }, "Row"),
                       el("th", {}, "Field"), el("th", {}, "Problem"))),
    el("tbody", {}, ...rows));
}

// ---------- key ----------

async function saveKey(event) {
  event.preventDefault();
  const key = $("api-key").value.trim();
  if (!key) return;
  localStorage.setItem(KEY_STORAGE, key);
  await connect();
}

function forgetKey() {
  localStorage.removeItem(KEY_STORAGE);
  $("api-key").value = "";
  $("key-status").textContent = "Key forgotten.";
  $("runs-count").textContent = "";
  $("runs").replaceChildren(el("p", { class: "muted" }, "Save a key to see your runs."));
  setConnected(false);
}

function setConnected(on) {
  for (const id of ["bundled-select", "import-bundled", "existing-select", "use-existing",
                    "delete-dataset", "refresh-runs"]) {
    $(id).disabled = !on;
  }
  $("run").disabled = !(on && state.datasetId);
}

// Check the key with a cheap authenticated call, then fill the data set lists.
async function connect() {
  if (!apiKey()) { setConnected(false); return; }
  $("key-status").textContent = "Checking…";
  try {
    const bundled = await apiJson("/v1/bundled");
    const select = $("bundled-select");
    select.replaceChildren(...bundled.data.filter((d) => d.importable).map((d) =>
      el("option", { value: d.name, title: d.description }, `${d.name} — ${d.description}`)));
    if ([...select.options].some((o) => o.value === "us-regional")) select.value = "us-regional";
    await refreshDatasets();
    $("key-status").textContent = "Key saved ✓";
    setConnected(true);
    clearMessage();
    state.runsOffset = 0;  // another key, another tenant's runs
    await refreshRunsOrSay();
  } catch (error) {
    $("key-status").textContent = "Key not accepted";
    setConnected(false);
    showProblem(error, "Connecting");
  }
}

// ---------- data ----------

async function refreshDatasets() {
  const list = await apiJson("/v1/datasets?limit=50");
  const select = $("existing-select");
  const options = list.data.map((d) => el("option", { value: d.id },
    `${d.name || "unnamed"} · ${d.accounts} accounts · ${d.created_at.slice(0, 16)}`));
  select.replaceChildren(el("option", { value: "" }, list.count ? "— choose —" : "none yet"),
                         ...options);
  state.datasets = Object.fromEntries(list.data.map((d) => [d.id, d]));
}

// How a dataset's distances are measured, when not from latitude and longitude.
const METRIC_NOTE = { euclidean: "planar x, y", matrix: "distances from the file only" };

// What a dataset holds, for the planner: ["372 accounts", "6 reps", "159 unit polygons"].
function datasetContents(dataset) {
  return [`${dataset.accounts} accounts`, `${dataset.reps} reps`,
          dataset.units ? `${dataset.units} unit polygons` : null,
          dataset.distances ? `${dataset.distances} distances` : null].filter(Boolean);
}

function useDataset(dataset) {
  state.datasetId = dataset.id;
  const note = METRIC_NOTE[dataset.metric];
  $("dataset-info").textContent = `${dataset.name || "unnamed"} ` +
    `(${datasetContents(dataset).join(", ")}${note ? `; ${note}` : ""})`;
  $("dataset-info").dataset.id = dataset.id;
  // Without reps (a design-only set) there is nothing to realign.
  $("mode-align").disabled = dataset.reps === 0;
  if (dataset.reps === 0 && $("mode").value === "align") {
    $("mode").value = "design";
    $("mode").dispatchEvent(new Event("change"));
  }
  // Contiguity is only possible with unit polygons (the API refuses it otherwise).
  const contiguity = $("contiguity");
  contiguity.disabled = !dataset.units;
  if (contiguity.disabled) contiguity.checked = false;
  $("contiguity-note").textContent = dataset.units ?
    "(each territory one piece of the unit map)" : "(needs a dataset with unit polygons)";
  state.datasetUnits = dataset.units || 0;
  // Runs measure distance as the dataset was validated for, unless the planner changes it.
  $("metric").value = dataset.metric || "haversine";
  syncCentres();
  syncMetric();
  $("run").disabled = false;
}

// Centres are a design's choice; units as centres need the dataset's unit polygons, and
// listed centres a list of account or unit ids.
function syncCentres() {
  const centres = $("centres");
  const design = $("mode").value === "design";
  centres.disabled = !design;
  centres.querySelector("option[value='units']").disabled = !state.datasetUnits;
  if (!state.datasetUnits && centres.value === "units") centres.value = "accounts";
  $("centre-ids").disabled = !design || centres.value !== "listed";
  $("centres-note").textContent = state.datasetUnits ?
    "(units: territory centres at unit polygons)" : "(units need a dataset with unit polygons)";
}

// The bands' rows under "More settings": name, min, max, hard, weight if soft, per metric.
function addBandRows() {
  const note = $("bands-note");
  for (const metric of METRICS) {
    const name = BAND_NAME[metric];
    const number = (id, label, attrs) => el("input", { id, type: "number", min: "0",
                                                       "aria-label": label, ...attrs });
    const step = metric === "accounts" ? "1" : "any";
    const hard = el("input", { id: `${metric}-hard`, type: "checkbox",
                               "aria-label": `${name} band is hard` });
    hard.checked = true;
    hard.addEventListener("change", syncBands);
    note.before(el("span", { class: "metric" }, name),
                number(`${metric}-min`, `${name} minimum per territory`, { step }),
                number(`${metric}-max`, `${name} maximum per territory`, { step }),
                hard,
                number(`${metric}-weight`, `${name} band weight if soft`,
                       { step: "0.1", value: "1" }));
  }
  syncBands();
}

// Designs take hard bands only; a soft band's weight is asked for when it is soft. Eligibility
// maps segments to the reps' roles, which a design has none of.
function syncBands() {
  const design = $("mode").value === "design";
  for (const metric of METRICS) {
    $(`${metric}-hard`).disabled = design;
    $(`${metric}-weight`).disabled = design || $(`${metric}-hard`).checked;
  }
  $("eligibility").disabled = design;
}

// Circuity scales great-circle distances only.
function syncMetric() {
  $("circuity").disabled = $("metric").value !== "haversine";
}

async function importBundled(event) {
  event.preventDefault();
  const name = $("bundled-select").value;
  if (!name) return;
  $("import-bundled").disabled = true;
  try {
    const dataset = await apiJson(`/v1/bundled/${encodeURIComponent(name)}`, { method: "POST" });
    useDataset(dataset);
    await refreshDatasets();
    clearMessage();
  } catch (error) {
    showProblem(error, `Importing ${name}`);
  } finally {
    $("import-bundled").disabled = false;
  }
}

function useExisting(event) {
  event.preventDefault();
  const dataset = (state.datasets || {})[$("existing-select").value];
  if (dataset) { useDataset(dataset); clearMessage(); }
}

// Deleting a dataset removes its tables; the runs that read it keep their results. The
// service refuses (409) while a queued or running job reads it.
async function deleteDataset() {
  const dataset = (state.datasets || {})[$("existing-select").value];
  if (!dataset) {
    showMessage("info", "No dataset chosen",
                el("p", {}, "Choose one of your datasets in the list, then Delete."));
    return;
  }
  const name = dataset.name || "unnamed";
  if (!window.confirm(`Delete the dataset "${name}" (${dataset.accounts} accounts)? ` +
                      "Runs that used it keep their results.")) return;
  try {
    await api(`/v1/datasets/${dataset.id}`, { method: "DELETE" });
    if (state.datasetId === dataset.id) {
      state.datasetId = null;
      $("dataset-info").textContent = "none";
      delete $("dataset-info").dataset.id;
      $("run").disabled = true;
    }
    await refreshDatasets();
    showMessage("info", "Dataset deleted",
                el("p", {}, `${name} is deleted; the runs that used it keep their results.`));
  } catch (error) {
    showProblem(error, `Deleting ${name}`);
  }
}

async function uploadDataset(event) {
  event.preventDefault();
  const form = new FormData($("upload-form"));
  if (!form.get("name")) form.delete("name");
  for (const optional of ["distances", "units"]) {
    const file = form.get(optional);
    if (!file || !file.size) form.delete(optional);  // an empty file part is not "none"
  }
  $("upload-dataset").disabled = true;
  try {
    const dataset = await apiJson("/v1/datasets", { method: "POST", body: form });
    useDataset(dataset);
    await refreshDatasets();
    const contents = datasetContents(dataset);
    showMessage("info", "Dataset uploaded", el("p", {},
      `${contents.slice(0, -1).join(", ")} and ${contents.at(-1)} are valid.`));
  } catch (error) {
    showProblem(error, "Upload rejected");
  } finally {
    $("upload-dataset").disabled = false;
  }
}

// ---------- scenario and job ----------

function numberOf(id) {
  const raw = $(id).value.trim();
  return raw === "" ? null : Number(raw);
}

// A planner's mistake in a field the service cannot name (it sees only the parsed scenario).
class FormError extends Error {}

const METRICS = ["workload", "potential", "accounts"];
const BAND_NAME = { workload: "Workload, h", potential: "Potential", accounts: "Accounts" };
const TOLERANCE_FIELD = { workload: "tolerance", potential: "potential-tolerance",
                          accounts: "accounts-tolerance" };

// One metric's band: tolerance (a percentage in the form), absolute min/max, hard or soft
// with a weight. Null when the form leaves the metric unbalanced; workload, balanced by
// default, then says so explicitly.
function bandFromForm(metric, design) {
  const tolerance = numberOf(TOLERANCE_FIELD[metric]);
  const band = tolerance === null ? {} : { tolerance: tolerance / 100 };
  for (const bound of ["min", "max"]) {
    const value = numberOf(`${metric}-${bound}`);
    if (value !== null) band[bound] = value;
  }
  if (!Object.keys(band).length) return metric === "workload" ? { tolerance: null } : null;
  if (metric === "workload" && tolerance === null) band.tolerance = null;
  // A band as written is hard unless it says otherwise; potential, unbalanced by default,
  // says so either way, so that the scenario reads the same as the form.
  const hard = design || $(`${metric}-hard`).checked;
  if (!hard || metric === "potential") band.hard = hard;
  if (!hard) band.weight = numberOf(`${metric}-weight`) ?? 1;
  return band;
}

// "segment: role, role" a line -> {segment: [role, ...]}.
function eligibilityFromForm() {
  const rules = {};
  $("eligibility").value.split("\n").forEach((line, i) => {
    if (!line.trim()) return;
    const colon = line.indexOf(":");
    const segment = colon < 0 ? "" : line.slice(0, colon).trim();
    const roles = colon < 0 ? [] :
      line.slice(colon + 1).split(/[,;]/).map((r) => r.trim()).filter((r) => r !== "");
    if (!segment || !roles.length) {
      throw new FormError(`Eligibility, line ${i + 1}: write "segment: role, role" ` +
                          `(got "${line.trim()}")`);
    }
    if (segment in rules) {
      throw new FormError(`Eligibility, line ${i + 1}: segment "${segment}" is listed twice`);
    }
    rules[segment] = roles;
  });
  return rules;
}

function scenarioFromForm() {
  const mode = $("mode").value;
  const design = mode === "design";
  const metric = $("metric").value;
  const scenario = {
    mode,
    metric,
    objective: { travel: numberOf("w-travel") ?? 1, balance: numberOf("w-balance") ?? 0,
                 disruption: numberOf("w-disruption") ?? 0 },
    balance: {},
    solver: { time_limit: numberOf("time-limit") ?? 30,
              mip_gap: (numberOf("mip-gap") ?? 0.5) / 100 },
  };
  for (const name of METRICS) {
    const band = bandFromForm(name, design);
    if (band) scenario.balance[name] = band;
  }
  const threads = numberOf("threads");
  if (threads !== null) scenario.solver.threads = threads;
  // Great-circle km × 1.2 ≈ road km by default, as the bundled scenario files use.
  if (metric === "haversine") scenario.circuity = numberOf("circuity") ?? 1.2;
  if (design) scenario.territories = numberOf("territories") ?? 6;
  if (design && $("centres").value === "units") scenario.centres = "units";
  if (design && $("centres").value === "listed") {
    scenario.centres = $("centre-ids").value.split(/[\s,;]+/).filter((id) => id !== "");
  }
  if ($("contiguity").checked && !$("contiguity").disabled) scenario.contiguity = true;
  if (!$("keep-hierarchies").checked) scenario.keep_hierarchies = false;
  // Eligibility maps segments to rep roles: a design has no reps.
  const eligibility = design ? {} : eligibilityFromForm();
  if (Object.keys(eligibility).length) scenario.eligibility = eligibility;
  const maxShare = numberOf("max-share");
  // Disruption (its limit, and its weight in the objective) only means something when there
  // is a current alignment to move away from.
  if (!design) {
    scenario.disruption = { measure: $("disruption-measure").value };
    if (maxShare !== null) scenario.disruption.max_share = maxShare / 100;
  }
  return scenario;
}

async function runScenario(event) {
  event.preventDefault();
  if (!state.datasetId) return;
  clearMessage();
  const mode = $("mode").value;
  let scenario;
  try {
    scenario = scenarioFromForm();
  } catch (error) {
    if (!(error instanceof FormError)) throw error;
    showMessage("error", "Scenario not sent", el("p", {}, error.message));
    return;
  }
  const body = { kind: mode, dataset_id: state.datasetId, scenario };
  const label = $("label").value.trim();
  if (label) body.label = label;
  $("run").disabled = true;
  try {
    const job = await apiJson("/v1/jobs", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body) });
    state.jobId = job.id;
    $("cancel").disabled = false;
    showProgress(job);
    schedulePoll();
  } catch (error) {
    $("run").disabled = false;
    showProblem(error, "Scenario rejected");
    return;
  }
  state.runsOffset = 0;  // the new run heads the first page
  await refreshRunsOrSay();
}

function schedulePoll() {
  clearTimeout(state.pollTimer);
  state.pollTimer = setTimeout(poll, POLL_MS);
}

async function poll() {
  const jobId = state.jobId;
  try {
    const job = await apiJson(`/v1/jobs/${jobId}`);
    if (jobId !== state.jobId) return;  // a newer run took over
    showProgress(job);
    if (ENDED.includes(job.state)) {
      await finished(job);
      await refreshRunsOrSay();
    } else {
      schedulePoll();
    }
  } catch (error) {
    showProblem(error, "Following the job");
    $("run").disabled = false;
  }
}

function showProgress(job) {
  const p = job.progress || {};
  const stateCell = $("p-state");
  stateCell.textContent = job.state + (job.result_status ? ` (${job.result_status})` : "");
  stateCell.className = `state-${job.state}`;
  $("p-phase").textContent = p.phase || "—";
  $("p-incumbent").textContent = fmt(p.incumbent, 4);
  $("p-bound").textContent = fmt(p.bound, 4);
  $("p-gap").textContent = p.gap === null || p.gap === undefined ? "—" : pct(p.gap);
  $("p-elapsed").textContent = p.elapsed === undefined ? "—" : `${fmt(p.elapsed, 1)} s`;
}

async function cancelJob() {
  if (!state.jobId) return;
  try {
    await api(`/v1/jobs/${state.jobId}/cancel`, { method: "POST" });
  } catch (error) {
    showProblem(error, "Cancel");
  }
}

// A finished run's map, figures and comparison; `notes` (from opening it) are shown with the
// run's own warnings.
async function finished(job, notes = []) {
  $("run").disabled = !state.datasetId;
  $("cancel").disabled = true;
  if (job.state === "failed" || !job.result_available) {
    showFailure(job, notes);
    return;
  }
  const result = await apiJson(`/v1/jobs/${job.id}/result`);
  let geojson = null;
  try {
    geojson = await apiJson(`/v1/jobs/${job.id}/result.geojson`);
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 404)) throw error;
  }
  $("result-label").textContent = `— ${jobTitle(job)}`;
  drawMap(geojson, result.territories);
  $("kpis").replaceChildren(kpiTable(result.summary));
  showMoves(result.assignments);
  for (const button of document.querySelectorAll("button.download")) {
    button.disabled = button.dataset.format === "geojson" && geojson === null;
  }
  // A run opened again moves to the right rather than being compared with itself.
  state.finished = [...state.finished.filter((f) => f.job.id !== job.id),
                    { job, summary: result.summary }].slice(-2);
  showCompare();
  const warnings = result.summary.warnings || [];
  if (job.state === "cancelled") {
    showNotes("Cancelled", ["Showing the best plan found before the stop.", ...notes],
              warnings);
  } else if (notes.length) {
    showNotes("Scenario loaded with differences", notes, warnings);
  } else if (warnings.length) {
    showNotes("Finished with warnings", [], warnings);
  }
}

// Notes from the page as paragraphs, then what the run itself warned of.
function showNotes(title, notes, warnings) {
  const body = notes.map((note) => el("p", {}, note));
  if (warnings.length) {
    body.push(el("p", {}, "The run warns:"),
              el("ul", { class: "warnings" }, ...warnings.map((w) => el("li", {}, w))));
  }
  showMessage("info", title, ...body);
}

function showFailure(job, notes = []) {
  const error = job.error || { type: "unknown", message: `job ${job.state}`, reasons: [] };
  const after = notes.map((note) => el("p", {}, note));  // from opening the run
  if (error.type === "infeasible") {
    const reasons = error.reasons.length ? error.reasons : [error.message];
    showMessage("error", "This scenario is infeasible",
      el("p", {}, "No plan meets every rule. Why:"),
      el("ul", { class: "reasons" }, ...reasons.map((r) => el("li", {}, r))),
      el("p", {}, "Try a wider workload tolerance, a looser disruption limit or more " +
                  "territories."), ...after);
  } else {
    const body = [el("p", {}, error.message)];
    if (error.issues && error.issues.length) body.push(issuesTable(error.issues));
    showMessage("error", `Job ${job.state}: ${error.type}`, ...body, ...after);
  }
}

function jobTitle(job) {
  return job.label || `${job.kind} ${job.id.slice(0, 8)}`;
}

// ---------- result: map ----------

function colourOf(index) { return PALETTE[index % PALETTE.length]; }

function drawMap(geojson, territories) {
  $("map-hint").hidden = true;
  $("map").hidden = false;
  if (!state.map) {
    // No tile layer on purpose: the page must work offline, so only our polygons are drawn.
    state.map = L.map("map", { zoomSnap: 0.25, attributionControl: true });
    state.map.attributionControl.setPrefix("Leaflet");
  }
  if (state.layer) state.map.removeLayer(state.layer);
  const legend = $("legend");
  legend.replaceChildren();
  if (!geojson || !geojson.features.length) {
    // Polygons need lat/lon or unit polygons: planar x, y and matrix-only data have neither.
    legend.append(el("li", { class: "muted" }, "No map for this run: its accounts have no " +
                     "latitude and longitude and its dataset no unit polygons."));
    state.map.setView([0, 0], 1);
    return;
  }
  const ids = territories.map((t) => t.territory_id);
  const colour = (id) => colourOf(Math.max(0, ids.indexOf(id)));
  state.layer = L.geoJSON(geojson, {
    style: (feature) => ({ color: "#333", weight: 1, fillOpacity: 0.55,
                           fillColor: colour(feature.properties.territory_id) }),
    onEachFeature: (feature, layer) => layer.bindPopup(popupOf(feature.properties)),
  }).addTo(state.map);
  state.map.fitBounds(state.layer.getBounds(), { padding: [12, 12] });
  for (const t of territories) {
    legend.append(el("li", {}, el("span", { class: "swatch",
                                            style: `background:${colour(t.territory_id)}` }),
                     `${t.territory_id}${t.rep_id && t.rep_id !== t.territory_id ?
                       ` (${t.rep_id})` : ""} · ${fmt(t.workload, 0)} h`));
  }
}

function popupOf(p) {
  const rows = [["Rep", p.rep_id ?? "—"], ["Accounts", fmt(p.accounts, 0)],
                ["Workload, h", fmt(p.workload, 0)], ["Capacity, h", fmt(p.capacity, 0)],
                ["Utilisation", pct(p.utilisation)], ["Potential", fmt(p.potential, 0)],
                ["Travel, km", fmt(p.travel, 0)], ["Compactness", fmt(p.compactness, 2)]];
  const table = el("table", {}, ...rows.map(([k, v]) => el("tr", {}, el("td", {}, k),
                                                            el("td", {}, v))));
  return el("div", {}, el("strong", {}, `Territory ${p.territory_id}`), table);
}

// ---------- result: KPIs, moves, compare ----------

// [label, path in kpis.before/after, formatter, direction: -1 lower is better, +1 higher,
//  optional: shown only when the summary has it]
const KPIS = [
  ["Workload max / fair share", "balance.workload.max_over_fair", (v) => fmt(v, 2), -1],
  ["Workload min / fair share", "balance.workload.min_over_fair", (v) => fmt(v, 2), 1],
  ["Workload CV", "balance.workload.cv", (v) => fmt(v, 3), -1],
  ["Reps within tolerance", "balance.workload.share_within_tolerance", pct, 1],
  ["Travel (visits × km)", "travel.total", (v) => fmt(v, 0), -1],
  ["Accounts moved", "disruption.accounts_moved_share", pct, -1],
  ["Reps over capacity", "utilisation.over_capacity_reps", (v) => fmt(v, 0), -1],
  // Plans drawn from unit polygons: extra pieces of territories (0 = all contiguous).
  ["Disconnected parts", "geography.disconnected_parts", (v) => fmt(v, 0), -1, true],
];

function kpiTable(summary) {
  const kpis = summary.kpis || {};
  const before = kpis.before;
  const after = kpis.after || {};
  const head = el("tr", {}, el("th", { scope: "col" }, "Figure"),
                  before ? el("th", { scope: "col", class: "num" }, "Before") : null,
                  el("th", { scope: "col", class: "num" }, "After"));
  const shown = KPIS.filter(([, path, , , optional]) => !optional ||
    get(after, path) != null || (before && get(before, path) != null));
  const rows = shown.map(([label, path, format, direction]) => {
    const a = get(after, path);
    const b = before ? get(before, path) : undefined;
    let cls = "num";
    if (before && a != null && b != null && a !== b) {
      cls += (a - b) * direction > 0 ? " better" : " worse";
    }
    return el("tr", {}, el("th", { scope: "row" }, label),
              before ? el("td", { class: "num" }, format(b)) : null,
              el("td", { class: cls, "data-kpi": path }, format(a)));
  });
  const caption = el("caption", { class: "muted" },
    `${summary.status || ""} · objective ${fmt(summary.objective, 4)} · gap ${pct(summary.gap)}`);
  return el("table", { class: "data kpi" }, caption, el("thead", {}, head),
            el("tbody", {}, ...rows));
}

function showMoves(assignments) {
  const moved = assignments.filter((a) => a.moved === true || a.moved === "True");
  $("moves-count").textContent = moved.length > MOVES_SHOWN ?
    `(${moved.length}, first ${MOVES_SHOWN} shown)` : `(${moved.length})`;
  if (!moved.length) {
    $("moves").replaceChildren(el("p", { class: "muted" }, "No account changes rep."));
    return;
  }
  const rows = moved.slice(0, MOVES_SHOWN).map((a) => el("tr", {},
    el("td", {}, a.account_id), el("td", {}, a.name ?? ""), el("td", {}, a.segment ?? ""),
    el("td", {}, a.previous_rep ?? "—"), el("td", {}, a.rep_id ?? a.territory_id ?? "—")));
  $("moves").replaceChildren(el("table", { class: "data moves" },
    el("thead", {}, el("tr", {}, el("th", {}, "Account"), el("th", {}, "Name"),
                       el("th", {}, "Segment"), el("th", {}, "From"), el("th", {}, "To"))),
    el("tbody", {}, ...rows)));
}

function showCompare() {
  if (!state.finished.length) {
    $("compare").replaceChildren(el("p", { class: "muted" }, "No finished scenario shown."));
    return;
  }
  const cards = state.finished.map(({ job, summary }, i) => el("div", { class: "compare-item" },
    el("h3", {}, `${i === state.finished.length - 1 ? "Latest" : "Previous"}: ${jobTitle(job)}`),
    kpiTable(summary)));
  $("compare").replaceChildren(...cards);
}

// ---------- runs: the tenant's jobs, newest first; reopen, follow or delete one ----------

function actionButton(label, onClick, attrs = {}) {
  const button = el("button", { type: "button", class: "secondary small", ...attrs }, label);
  button.addEventListener("click", onClick);
  return button;
}

async function refreshRuns() {
  let list = await apiJson(`/v1/jobs?limit=${RUNS_SHOWN}&offset=${state.runsOffset}`);
  if (!list.data.length && state.runsOffset > 0) {
    // Deletions emptied this page: show the last one that still has runs.
    state.runsOffset = Math.max(0, Math.ceil(list.count / RUNS_SHOWN) - 1) * RUNS_SHOWN;
    list = await apiJson(`/v1/jobs?limit=${RUNS_SHOWN}&offset=${state.runsOffset}`);
  }
  const first = state.runsOffset + 1;
  const last = state.runsOffset + list.data.length;
  $("runs-count").textContent = list.count > list.data.length ?
    `(${first}–${last} of ${list.count}, newest first)` : `(${list.count})`;
  if (!list.data.length) {
    $("runs").replaceChildren(el("p", { class: "muted" }, "No runs yet."));
    return;
  }
  const rows = list.data.map((job) => {
    const ended = ENDED.includes(job.state);
    const open = PLAN_KINDS.includes(job.kind) ?
      actionButton(ended ? "Open" : "Follow", () => openRun(job.id),
                   { "data-action": "open",
                     "aria-label": `${ended ? "Open" : "Follow"} ${jobTitle(job)}` }) :
      el("span", { class: "muted", title: "Fetch this result from the API" }, "API only");
    const remove = actionButton("Delete", () => deleteRun(job), { "data-action": "delete",
      class: "secondary small danger", "aria-label": `Delete ${jobTitle(job)}` });
    if (!ended) {
      remove.disabled = true;
      remove.title = "Queued or running: cancel it first";
    }
    return el("tr", { "data-job": job.id },
      el("td", {}, jobTitle(job)), el("td", {}, job.kind),
      el("td", { class: `state-${job.state}` },
         job.state + (job.result_status ? ` (${job.result_status})` : "")),
      el("td", {}, job.created_at.slice(0, 16).replace("T", " ")),
      el("td", { class: "buttons" }, open, remove));
  });
  $("runs").replaceChildren(el("table", { class: "data runs" },
    el("thead", {}, el("tr", {}, el("th", {}, "Run"), el("th", {}, "Kind"),
                       el("th", {}, "State"), el("th", {}, "Created (UTC)"),
                       el("th", { "aria-label": "Actions" }, ""))),
    el("tbody", {}, ...rows)), runsPager(list.count));
}

// Newer and Older page through the tenant's runs, RUNS_SHOWN at a time.
function runsPager(count) {
  const page = (offset) => () => { state.runsOffset = offset; refreshRunsOrSay(); };
  const newer = actionButton("Newer", page(Math.max(0, state.runsOffset - RUNS_SHOWN)),
                             { id: "runs-newer" });
  const older = actionButton("Older", page(state.runsOffset + RUNS_SHOWN), { id: "runs-older" });
  newer.disabled = state.runsOffset === 0;
  older.disabled = state.runsOffset + RUNS_SHOWN >= count;
  return el("nav", { class: "pager", "aria-label": "Pages of runs" }, newer, older);
}

// Show an ended run as if it had just finished (map, figures, comparison), or follow one that
// is still going: after a reload nothing is lost.
async function openRun(jobId) {
  clearMessage();
  clearTimeout(state.pollTimer);
  try {
    const job = await apiJson(`/v1/jobs/${jobId}`);
    state.jobId = job.id;
    showProgress(job);
    const notes = await loadScenario(job);
    if (ENDED.includes(job.state)) {
      await finished(job, notes);
    } else {
      if (notes.length) showNotes("Scenario loaded with differences", notes, []);
      $("run").disabled = true;
      $("cancel").disabled = false;
      schedulePoll();
    }
  } catch (error) {
    showProblem(error, "Opening the run");
  }
}

// The scenario keys the form has a field for; any other key of an opened run's scenario is
// named to the planner, since a run from the form leaves it out.
const FORM_KEYS = ["mode", "territories", "centres", "metric", "circuity", "objective.travel",
  "objective.balance", "objective.disruption",
  ...METRICS.flatMap((m) => ["tolerance", "min", "max", "hard", "weight"]
    .map((k) => `balance.${m}.${k}`)),
  "disruption.measure", "disruption.max_share", "keep_hierarchies", "contiguity",
  "solver.time_limit", "solver.mip_gap", "solver.threads"];
const hasField = (key) => FORM_KEYS.includes(key) || key.startsWith("eligibility.");

// The dotted keys of a scenario's settings ("balance.workload.max", ...).
function flatKeys(value, prefix = "") {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return [prefix];
  return Object.entries(value).flatMap(([k, v]) => flatKeys(v, prefix ? `${prefix}.${k}` : k));
}

function percentOf(share) {
  return share === null || share === undefined ? "" : String(Math.round(share * 1e5) / 1e3);
}

// An opened run's scenario fills the form, and its dataset (while it exists) becomes the
// current one: change a setting and run again. Returns notes on what the form cannot repeat.
async function loadScenario(job) {
  const asked = await apiJson(`/v1/jobs/${job.id}/scenario`);
  const s = asked.scenario;
  const notes = [];
  let dataset = (state.datasets || {})[asked.dataset_id];
  if (!dataset && asked.dataset_id) {
    // Beyond the 50 the list holds, or deleted (404).
    try {
      dataset = await apiJson(`/v1/datasets/${asked.dataset_id}`);
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 404)) throw error;
    }
  }
  if (dataset) useDataset(dataset);
  else notes.push(`${asked.dataset_id ? "Its dataset is deleted" : "Its data were sent " +
    "inline"}, so a run from the form uses the current dataset.`);
  $("label").value = asked.label || "";
  $("mode").value = s.mode || asked.kind;
  $("mode").dispatchEvent(new Event("change"));
  if (s.territories) $("territories").value = s.territories;
  const centres = s.centres ?? "accounts";
  $("centres").value = Array.isArray(centres) ? "listed" : centres;
  $("centre-ids").value = Array.isArray(centres) ? centres.join(", ") : "";
  $("metric").value = s.metric || "haversine";
  $("circuity").value = s.circuity ?? 1;
  const balance = s.balance || {};
  let more = false;  // a setting under "More settings" differs from the form's default
  for (const metric of METRICS) {
    const band = balance[metric] || {};
    // Workload left out is balanced within ±10 %; a band written without a tolerance has none.
    const tolerance = metric === "workload" && !balance.workload ? 0.1 : band.tolerance;
    $(TOLERANCE_FIELD[metric]).value = percentOf(tolerance);
    $(`${metric}-min`).value = band.min ?? "";
    $(`${metric}-max`).value = band.max ?? "";
    // An unbalanced metric keeps the form's default: a band typed in later is hard.
    const active = [tolerance, band.min, band.max].some((v) => v !== null && v !== undefined);
    $(`${metric}-hard`).checked = !active || (band.hard ?? true);
    $(`${metric}-weight`).value = band.weight ?? 1;
    more ||= band.min != null || band.max != null || !$(`${metric}-hard`).checked;
  }
  $("keep-hierarchies").checked = s.keep_hierarchies ?? true;
  $("eligibility").value = Object.entries(s.eligibility || {})
    .map(([segment, roles]) => `${segment}: ${roles.join(", ")}`).join("\n");
  $("threads").value = (s.solver || {}).threads ?? "";
  more ||= s.keep_hierarchies === false || Boolean($("eligibility").value) ||
    Boolean($("threads").value);
  if (more) $("more-settings").open = true;
  $("max-share").value = percentOf((s.disruption || {}).max_share);
  $("disruption-measure").value = (s.disruption || {}).measure ?? "accounts";
  const weights = s.objective || {};
  $("w-travel").value = weights.travel ?? 1;
  $("w-balance").value = weights.balance ?? 0;
  $("w-disruption").value = weights.disruption ?? 0;
  $("time-limit").value = (s.solver || {}).time_limit ?? 60;
  $("mip-gap").value = percentOf((s.solver || {}).mip_gap ?? 0.005);
  $("contiguity").checked = Boolean(s.contiguity) && !$("contiguity").disabled;
  syncCentres();
  syncMetric();
  syncBands();
  const unshown = flatKeys(s).filter((key) => !hasField(key));
  if (s.contiguity && !$("contiguity").checked) {
    notes.push("Contiguity needs unit polygons, which the current dataset lacks: a run from " +
               "the form leaves it out.");
  }
  if (unshown.length) {
    notes.push(`The form has no field for ${unshown.join(", ")}: a run from the form ` +
               `leaves ${unshown.length > 1 ? "them" : "it"} out.`);
  }
  return notes;
}

async function deleteRun(job) {
  if (!window.confirm(`Delete the run "${jobTitle(job)}"? Its result goes with it.`)) return;
  try {
    await api(`/v1/jobs/${job.id}`, { method: "DELETE" });
  } catch (error) {
    showProblem(error, `Deleting ${jobTitle(job)}`);
    return;
  }
  const latest = state.finished.at(-1);
  state.finished = state.finished.filter((f) => f.job.id !== job.id);
  showCompare();
  if (latest && latest.job.id === job.id) {
    // The downloads fetch the latest result, which is gone.
    for (const button of document.querySelectorAll("button.download")) button.disabled = true;
    $("result-label").textContent = `— ${jobTitle(job)} (deleted)`;
  }
  await refreshRunsOrSay();
}

async function refreshRunsOrSay() {
  try { await refreshRuns(); } catch (error) { showProblem(error, "Listing the runs"); }
}

// ---------- downloads (the Bearer header rules out plain links: fetch, then a Blob URL) ----------

async function download(event) {
  const format = event.currentTarget.dataset.format;
  const jobId = state.finished.length ? state.finished[state.finished.length - 1].job.id : null;
  if (!jobId) return;
  const status = $("download-status");
  status.textContent = `Downloading ${format}…`;
  try {
    const response = await api(`/v1/jobs/${jobId}/result.${format}`);
    const blob = await response.blob();
    const disposition = response.headers.get("Content-Disposition") || "";
    const match = /filename="([^"]+)"/.exec(disposition);
    const name = match ? match[1] : `${jobId}-result.${format}`;
    const url = URL.createObjectURL(blob);
    const link = el("a", { href: url, download: name });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    status.textContent = `Downloaded ${name} (${blob.size.toLocaleString("en-US")} bytes)`;
    status.dataset.bytes = String(blob.size);
    status.dataset.name = name;
  } catch (error) {
    status.textContent = "";
    showProblem(error, `Download of ${format}`);
  }
}

// ---------- wiring ----------

function init() {
  $("key-form").addEventListener("submit", saveKey);
  $("forget-key").addEventListener("click", forgetKey);
  $("bundled-form").addEventListener("submit", importBundled);
  $("existing-form").addEventListener("submit", useExisting);
  $("delete-dataset").addEventListener("click", deleteDataset);
  $("refresh-runs").addEventListener("click", refreshRunsOrSay);
  $("upload-form").addEventListener("submit", uploadDataset);
  $("scenario-form").addEventListener("submit", runScenario);
  $("cancel").addEventListener("click", cancelJob);
  $("mode").addEventListener("change", () => {
    const design = $("mode").value === "design";
    $("territories").disabled = !design;
    // No current alignment to measure moves from.
    $("max-share").disabled = design;
    $("disruption-measure").disabled = design;
    syncCentres();
    syncBands();
  });
  addBandRows();
  $("centres").addEventListener("change", syncCentres);
  $("metric").addEventListener("change", syncMetric);
  for (const button of document.querySelectorAll("button.download")) {
    button.addEventListener("click", download);
  }
  if (apiKey()) {
    $("api-key").value = apiKey();
    connect();
  }
}

document.addEventListener("DOMContentLoaded", init);
