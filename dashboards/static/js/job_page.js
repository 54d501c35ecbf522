// The job page: header, live Pareto front, hypervolume history, layer view / comparison,
// parallel coordinates and the trial table, all fed by one event stream (no polling).

import { jobs } from "./api.js";
import { downloadText, h, replace, toast } from "./dom.js";
import { FORMATS, openExport } from "./export_dialog.js";
import { fmtDate, metricLabel } from "./format.js";
import { renderFront } from "./front_plot.js";
import { renderHistory } from "./history_plot.js";
import {
  TERMINAL_JOB,
  bestUnderBudget,
  constraintsOf,
  countStates,
  mergeTrial,
  metricNames,
  objectivesOf,
  qualityObjective,
  strategyOf,
} from "./jobmodel.js";
import { renderCompare, renderLayerView } from "./layer_view.js";
import { renderParcoords } from "./parcoords_plot.js";
import { progressBar } from "./progress.js";
import { subscribe } from "./sse.js";
import { TrialTable, trialsCsv } from "./trial_table.js";

// After a burst of finished trials, fetch the front once (the API computes it) rather than
// once per event.
const PARETO_DEBOUNCE_MS = 300;
const RENDER_DEBOUNCE_MS = 60;

function select(id, label, options, value, onChange) {
  return h(
    "span",
    { class: "control" },
    h("label", { for: id }, label),
    h(
      "select",
      { id, onchange: (e) => onChange(e.target.value) },
      options.map((o) => h("option", { value: o, selected: o === value }, metricLabel(o))),
    ),
  );
}

export function mountJobPage(main, jobId) {
  const state = {
    job: null,
    trials: new Map(),
    pareto: null,
    axes: null,
    axesChosen: false,
    selected: null,
    compare: null,
    live: "connecting",
  };
  let stream = null;
  let closed = false;
  let renderTimer = null;
  let paretoTimer = null;

  const el = {
    head: h("div", { class: "job-head" }),
    controls: h("div", { class: "plot-controls" }),
    front: h("div", { id: "front-plot", class: "plot plot-front", role: "img", "aria-label": "Pareto front scatter plot; the trial table below has the same data" }),
    failed: h("div", { id: "failed-list", class: "failed-list" }),
    layer: h("div", { id: "layer-view", class: "layer-view", "aria-live": "polite" }),
    compare: h("div", { id: "compare-view", class: "compare-view", hidden: true }),
    history: h("div", { id: "history-plot", class: "plot plot-history", role: "img", "aria-label": "Hypervolume over trials" }),
    parcoords: h("div", { id: "parcoords-plot", class: "plot plot-parcoords", role: "img", "aria-label": "Parallel coordinates of design knobs and objectives" }),
    table: h("div", { id: "trial-table-box" }),
  };

  const table = new TrialTable(el.table, {
    onSelect: (n) => pick(n, false),
    onToggleCompare: (n, checked) => toggleCompare(n, checked),
    onCsv: (rows) => downloadText(trialsCsv(rows, metrics()), `ffnas-${jobId}-trials.csv`, "text/csv"),
  });

  replace(
    main,
    h("p", { class: "crumbs" }, h("a", { href: "#/jobs" }, "← all jobs")),
    el.head,
    h(
      "div",
      { class: "job-grid" },
      h("section", { class: "card area-front", "aria-labelledby": "front-title" }, h("div", { class: "panel-head" }, h("h2", { id: "front-title" }, "Pareto front"), el.controls), el.front, h("p", { class: "muted small" }, "◆ front · ● dominated (faint) · ✕ infeasible · ▽ pruned. Click a point to see its layers; shift+click picks a second design to compare."), el.failed),
      h("section", { class: "card area-layers", "aria-label": "Selected design" }, el.layer, el.compare),
      h("section", { class: "card area-history", "aria-labelledby": "history-title" }, h("h2", { id: "history-title" }, "Hypervolume and best under budget"), el.history),
      h("section", { class: "card area-parcoords", "aria-labelledby": "parcoords-title" }, h("h2", { id: "parcoords-title" }, "Knobs vs objectives"), h("div", { class: "parcoords-scroll" }, el.parcoords)),
      h("section", { class: "card area-table", "aria-labelledby": "table-title" }, h("h2", { id: "table-title" }, "Trials"), el.table),
    ),
  );
  replace(el.layer, h("p", { class: "muted" }, "Select a design: click a point on the front, or a row of the trial table."));

  const trialList = () => [...state.trials.values()].sort((a, b) => a.number - b.number);
  const objectives = () => objectivesOf(state.job, state.pareto);
  const constraints = () => constraintsOf(state.job);
  function metrics() {
    const names = metricNames(trialList(), objectives());
    for (const c of Object.keys(constraints())) if (!names.includes(c)) names.push(c);
    return names;
  }

  function defaultAxes() {
    const objs = objectives();
    const names = metricNames(trialList(), objs);
    const quality = qualityObjective(objs, constraints());
    const x = names.includes("latency_ms") ? "latency_ms" : (objs.find((o) => o.name !== quality?.name) || objs[0] || { name: names[0] }).name;
    const y = quality && quality.name !== x ? quality.name : names.find((n) => n !== x) || x;
    // Colour by parameter count unless it is already an axis; then by the next free metric.
    const free = ["params", "active_params", ...names].filter((n) => names.includes(n) && n !== x && n !== y);
    const color = free[0] || y;
    return { x, y, color };
  }

  function pick(number, asCompare) {
    if (asCompare && state.selected !== null && state.selected !== number) state.compare = number;
    else {
      state.selected = number;
      if (state.compare === number) state.compare = null;
    }
    renderNow();
    if (!asCompare) el.layer.querySelector("h3")?.focus?.();
  }

  function toggleCompare(number, checked) {
    if (checked) {
      if (state.selected === null) state.selected = number;
      else if (state.selected !== number) state.compare = number;
    } else if (state.selected === number) {
      state.selected = state.compare;
      state.compare = null;
    } else if (state.compare === number) state.compare = null;
    renderNow();
  }

  function renderHead() {
    const job = state.job;
    if (!job) return;
    const counts = state.trials.size ? countStates(trialList()) : job.counts;
    const buttons = [];
    const act = async (verb, call) => {
      try {
        await call(jobId);
        toast(`${verb} requested`);
        await refreshJob();
        if (verb === "Resume") openStream();
      } catch (error) {
        toast(`${verb} failed: ${error.message}`, "error");
      }
    };
    if (!TERMINAL_JOB.has(job.status) && job.status !== "stopping") {
      buttons.push(h("button", { type: "button", class: "secondary", id: "job-stop", onclick: () => act("Stop", jobs.stop) }, "Stop"));
    }
    if (job.status === "stopped" || job.status === "failed") {
      buttons.push(h("button", { type: "button", class: "secondary", id: "job-resume", onclick: () => act("Resume", jobs.resume) }, "Resume"));
    }
    replace(
      el.head,
      h(
        "div",
        { class: "page-head" },
        h("h1", {}, job.name, " ", h("span", { class: `status-badge status-${job.status}`, id: "job-status" }, job.status)),
        h("div", { class: "actions" }, buttons),
      ),
      progressBar(counts, job.n_trials),
      h(
        "p",
        { class: "muted small job-meta" },
        `target ${job.target ?? job.spec?.target ?? "?"} · evaluator ${job.evaluator ?? job.spec?.evaluator?.name ?? "?"} · strategy ${strategyOf(job)} · created ${fmtDate(job.created_at)}`,
        job.finished_at ? ` · finished ${fmtDate(job.finished_at)}` : "",
        " · ",
        h("span", { class: `live live-${state.live.split(" ")[0]}`, id: "live-status" }, state.live === "live" ? "● live" : state.live),
      ),
      job.error ? h("p", { class: "error-text" }, job.error) : null,
    );
  }

  function renderControls() {
    const names = metrics();
    // Redraw the pickers only when the choices change, so an open <select> keeps its focus.
    const key = JSON.stringify([names, state.axes]);
    if (el.controls.dataset.key === key) return;
    el.controls.dataset.key = key;
    const set = (key) => (value) => {
      state.axes = { ...state.axes, [key]: value };
      state.axesChosen = true;
      renderNow();
    };
    replace(
      el.controls,
      select("axis-x", "x", names, state.axes.x, set("x")),
      select("axis-y", "y", names, state.axes.y, set("y")),
      select("axis-color", "colour", names, state.axes.color, set("color")),
    );
  }

  function renderFailed(trials) {
    const failed = trials.filter((t) => t.state === "failed");
    if (!failed.length) {
      replace(el.failed);
      return;
    }
    replace(
      el.failed,
      h("h3", {}, `Failed trials (${failed.length})`),
      h(
        "ul",
        {},
        failed.map((t) =>
          h("li", {}, h("button", { type: "button", class: "link", onclick: () => pick(t.number, false) }, `#${t.number}`), ` ${t.reason || "error"}: `, h("span", { class: "error-text" }, t.error || "(no message)")),
        ),
      ),
    );
  }

  // With nothing picked yet, show the front's best design by the quality objective, so the
  // layer panel is never empty once the front has a point.
  function preselect() {
    if (state.selected !== null || !state.pareto || !state.pareto.points?.length) return;
    const quality = qualityObjective(objectives(), constraints());
    const sign = quality && quality.direction === "maximize" ? -1 : 1;
    const value = (t) => (quality ? sign * (t.values?.[quality.name] ?? Infinity) : t.number);
    const best = [...state.pareto.points].sort((p, q) => value(p) - value(q))[0];
    state.selected = best.number;
  }

  function renderSelection() {
    preselect();
    const a = state.selected !== null ? state.trials.get(state.selected) : null;
    const b = state.compare !== null ? state.trials.get(state.compare) : null;
    if (a && a.design) {
      const exportButtons = FORMATS.map(([fmt, label]) =>
        h("button", { type: "button", class: "secondary", dataset: { export: fmt }, disabled: a.state !== "complete" && a.state !== "pruned", onclick: () => openExport(jobId, a.number, fmt) }, `Export ${label}`),
      );
      renderLayerView(el.layer, a, { actions: exportButtons, metrics: metrics() });
      el.layer.dataset.trial = String(a.number);
    }
    if (a && b && a.design && b.design) {
      el.compare.hidden = false;
      const differing = renderCompare(el.compare, a, b, {
        onClose: () => {
          state.compare = null;
          renderNow();
        },
      });
      el.compare.dataset.differing = JSON.stringify(differing);
    } else {
      el.compare.hidden = true;
      replace(el.compare);
    }
  }

  function renderNow() {
    clearTimeout(renderTimer);
    renderTimer = null;
    if (closed || !state.job) return;
    // Until the user picks axes, follow the defaults (they depend on which metrics arrived).
    if (!state.axesChosen) state.axes = defaultAxes();
    const trials = trialList();
    const objs = objectives();
    const directions = Object.fromEntries(objs.map((o) => [o.name, o.direction]));
    const frontNumbers = new Set(((state.pareto && state.pareto.points) || []).map((p) => p.number));
    renderHead();
    renderControls();
    try {
      renderFront(el.front, {
        trials,
        frontNumbers,
        axes: state.axes,
        constraints: constraints(),
        directions,
        metrics: metrics(),
        selected: state.selected,
        compare: state.compare,
        onPick: pick,
      });
      const quality = qualityObjective(objs, constraints());
      renderHistory(el.history, {
        hypervolume: (state.pareto && state.pareto.hypervolume) || [],
        best: bestUnderBudget(trials, quality),
        quality,
        strategy: strategyOf(state.job),
      });
      renderParcoords(el.parcoords, { trials, objectives: objs, colorBy: state.axes.color });
    } catch (error) {
      replace(el.front, h("p", { class: "error-text" }, `Could not draw the plots: ${error.message}`));
    }
    renderFailed(trials);
    renderSelection();
    // Keep keyboard focus on the same row (or control) across a live redraw of the table.
    const active = document.activeElement;
    const focusedRow = active && el.table.contains(active) ? active.closest("tr")?.dataset.number : null;
    const focusedSort = active && active.matches?.("button.sort") ? active.dataset.key : null;
    table.render(trials, { metrics: metrics(), selected: state.selected, compare: state.compare });
    if (focusedRow !== null && focusedRow !== undefined) {
      el.table.querySelector(`tr[data-number="${focusedRow}"]`)?.focus();
    } else if (focusedSort) {
      el.table.querySelector(`button.sort[data-key="${CSS.escape(focusedSort)}"]`)?.focus();
    }
    main.dataset.trialCount = String(trials.length);
  }

  function scheduleRender() {
    if (renderTimer === null) renderTimer = setTimeout(renderNow, RENDER_DEBOUNCE_MS);
  }

  async function refreshPareto() {
    paretoTimer = null;
    try {
      state.pareto = await jobs.pareto(jobId);
      for (const p of state.pareto.points || []) mergeTrial(state.trials, p);
      scheduleRender();
    } catch (error) {
      state.live = `front unavailable: ${error.message}`;
    }
  }

  function schedulePareto() {
    clearTimeout(paretoTimer);
    paretoTimer = setTimeout(refreshPareto, PARETO_DEBOUNCE_MS);
  }

  async function refreshJob() {
    state.job = await jobs.get(jobId);
    scheduleRender();
  }

  async function loadSnapshot() {
    const [trials, pareto] = await Promise.all([jobs.trials(jobId), jobs.pareto(jobId)]);
    for (const t of (trials && trials.data) || []) mergeTrial(state.trials, t);
    state.pareto = pareto;
    for (const p of pareto.points || []) mergeTrial(state.trials, p);
    scheduleRender();
  }

  function openStream() {
    stream?.close();
    stream = subscribe(jobs.eventsUrl(jobId), {
      onOpen: () => loadSnapshot().catch((e) => toast(`Reload failed: ${e.message}`, "error")),
      onStatus: (text) => {
        state.live = text;
        const badge = document.getElementById("live-status");
        if (badge) badge.textContent = text === "live" ? "● live" : text;
      },
      shouldReconnect: () => !closed && state.job && !TERMINAL_JOB.has(state.job.status),
      onEvent: (type, data) => {
        if (type === "trial" && data && typeof data.number === "number") {
          if (mergeTrial(state.trials, data)) {
            if (["complete", "pruned", "failed"].includes(data.state)) schedulePareto();
            scheduleRender();
          }
        } else if (type === "job" && data && data.id) {
          if (JSON.stringify(data) === JSON.stringify(state.job)) return;
          state.job = data;
          schedulePareto();
          scheduleRender();
        }
      },
    });
  }

  (async () => {
    try {
      state.job = await jobs.get(jobId);
    } catch (error) {
      replace(main, h("p", { class: "crumbs" }, h("a", { href: "#/jobs" }, "← all jobs")), h("p", { class: "error-text" }, `Could not load job ${jobId}: ${error.message}`));
      return;
    }
    renderNow();
    await loadSnapshot().catch((e) => toast(`Could not load trials: ${e.message}`, "error"));
    if (!closed) openStream();
  })();

  return () => {
    closed = true;
    stream?.close();
    clearTimeout(renderTimer);
    clearTimeout(paretoTimer);
  };
}
