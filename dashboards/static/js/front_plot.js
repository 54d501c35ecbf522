// The Pareto-front scatter: front points (diamonds, joined by the attainment staircase),
// dominated points (faint circles), infeasible (x) and pruned (triangles); constraint lines;
// colour by a chosen metric; click to select, shift+click to pick a second design to compare.

import { designSummary } from "./design.js";
import { fmtMetric, metricLabel } from "./format.js";
import { isFeasible, metricValue } from "./jobmodel.js";
import { COLORSCALE, PLOT_CONFIG, baseLayout, plotly } from "./plots_common.js";

function hoverText(trial, metrics) {
  const lines = [`<b>trial #${trial.number}</b> · ${trial.state}`];
  const summary = trial.summary || designSummary(trial.design);
  // Plotly hover text is HTML-like; escape the summary so a design name cannot inject markup.
  const safe = String(summary).replace(/[<>&]/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;" })[c]);
  for (const chunk of safe.match(/.{1,70}(,|$)/g) || []) lines.push(chunk.trim());
  for (const name of metrics) {
    const v = metricValue(trial, name);
    if (v !== null) lines.push(`${metricLabel(name)}: ${fmtMetric(name, v)}`);
  }
  if (trial.feasible === false) lines.push("<i>infeasible (breaks a constraint)</i>");
  return lines.join("<br>");
}

/**
 * Draw (or update with Plotly.react) the front in `el`.
 * opts: {trials, frontNumbers:Set, objectives, axes:{x,y,color}, constraints, selected, compare,
 *        metrics, directions}
 */
export function renderFront(el, opts) {
  const { trials, frontNumbers, axes, constraints, metrics } = opts;
  const x = (t) => metricValue(t, axes.x);
  const y = (t) => metricValue(t, axes.y);
  const plotted = trials.filter((t) => x(t) !== null && y(t) !== null);
  const complete = plotted.filter((t) => t.state === "complete");
  const front = complete.filter((t) => frontNumbers.has(t.number));
  const dominated = complete.filter((t) => !frontNumbers.has(t.number) && isFeasible(t));
  const infeasible = complete.filter((t) => !frontNumbers.has(t.number) && !isFeasible(t));
  const pruned = plotted.filter((t) => t.state === "pruned");

  const colorValues = complete
    .map((t) => metricValue(t, axes.color))
    .filter((v) => v !== null);
  const cmin = colorValues.length ? Math.min(...colorValues) : 0;
  const cmax = colorValues.length ? Math.max(...colorValues) : 1;
  const colorOf = (list) => list.map((t) => metricValue(t, axes.color) ?? cmin);

  const scatter = (list, name, marker, extra = {}) => ({
    type: "scatter",
    mode: "markers",
    name,
    x: list.map(x),
    y: list.map(y),
    customdata: list.map((t) => t.number),
    text: list.map((t) => hoverText(t, metrics)),
    hovertemplate: "%{text}<extra></extra>",
    marker,
    ...extra,
  });

  const traces = [];
  // The staircase is the front's attainment boundary; it only means that when both axes are
  // the job's objectives (the API's front is non-dominated in objective space).
  const dir = opts.directions;
  if (front.length > 1 && dir[axes.x] && dir[axes.y]) {
    const sorted = [...front].sort((a, b) => x(a) - x(b));
    traces.push({
      type: "scatter",
      mode: "lines",
      name: "front boundary",
      x: sorted.map(x),
      y: sorted.map(y),
      line: { shape: dir[axes.x] === "maximize" ? "vh" : "hv", color: "#1b1f24", width: 1.5 },
      hoverinfo: "skip",
    });
  }
  traces.push(
    scatter(dominated, `dominated (${dominated.length})`, {
      symbol: "circle",
      size: 8,
      opacity: 0.35,
      color: colorOf(dominated),
      colorscale: COLORSCALE,
      cmin,
      cmax,
      line: { width: 0 },
    }),
    scatter(infeasible, `infeasible (${infeasible.length})`, {
      symbol: "x-thin-open",
      size: 9,
      opacity: 0.55,
      color: "#6b6b6b",
      line: { width: 1.5, color: "#6b6b6b" },
    }),
    scatter(pruned, `pruned (${pruned.length})`, {
      symbol: "triangle-down-open",
      size: 9,
      opacity: 0.6,
      color: "#CC79A7",
    }),
    scatter(front, `Pareto front (${front.length})`, {
      symbol: "diamond",
      size: 13,
      opacity: 1,
      color: colorOf(front),
      colorscale: COLORSCALE,
      cmin,
      cmax,
      line: { width: 1.2, color: "#1b1f24" },
      colorbar: { title: { text: metricLabel(axes.color), side: "right" }, thickness: 12, len: 0.9 },
    }),
  );

  const picks = [
    [opts.selected, "A", "#D55E00"],
    [opts.compare, "B", "#0072B2"],
  ].filter(([n]) => n !== null && n !== undefined);
  for (const [number, label, color] of picks) {
    const t = plotted.find((tr) => tr.number === number);
    if (!t) continue;
    traces.push({
      type: "scatter",
      mode: "markers+text",
      name: `selected ${label} (#${number})`,
      x: [x(t)],
      y: [y(t)],
      text: [label],
      textposition: "top center",
      textfont: { color, size: 13 },
      customdata: [number],
      hoverinfo: "skip",
      marker: { symbol: "circle-open", size: 24, color, line: { width: 2.5, color } },
    });
  }

  const shapes = [];
  const annotations = [];
  for (const [axis, name] of [["x", axes.x], ["y", axes.y]]) {
    const limit = constraints[name];
    if (typeof limit !== "number") continue;
    const vertical = axis === "x";
    shapes.push({
      type: "line",
      xref: vertical ? "x" : "paper",
      yref: vertical ? "paper" : "y",
      x0: vertical ? limit : 0,
      x1: vertical ? limit : 1,
      y0: vertical ? 0 : limit,
      y1: vertical ? 1 : limit,
      line: { color: "#D55E00", width: 2, dash: "dash" },
    });
    annotations.push({
      xref: vertical ? "x" : "paper",
      yref: vertical ? "paper" : "y",
      x: vertical ? limit : 1,
      y: vertical ? 1 : limit,
      xanchor: vertical ? "left" : "right",
      yanchor: "bottom",
      showarrow: false,
      text: `budget ${fmtMetric(name, limit)}`,
      font: { color: "#B34700" },
    });
  }

  const layout = baseLayout({
    xaxis: { title: { text: metricLabel(axes.x) }, zeroline: false, gridcolor: "#e4e7eb" },
    yaxis: { title: { text: metricLabel(axes.y) }, zeroline: false, gridcolor: "#e4e7eb" },
    legend: { orientation: "h", y: -0.24, x: 0 },
    margin: { l: 64, r: 12, t: 24, b: 64 },
    shapes,
    annotations,
    uirevision: `${axes.x}|${axes.y}`,
  });
  const Plotly = plotly();
  Plotly.react(el, traces, layout, PLOT_CONFIG);
  // What is drawn as the front, for tests and for anyone scripting the page.
  el.dataset.frontNumbers = JSON.stringify(front.map((t) => t.number).sort((a, b) => a - b));
  el.dataset.pointCount = String(complete.length + pruned.length);

  el.ffnasOnPick = opts.onPick;
  if (!el.dataset.clickBound) {
    el.dataset.clickBound = "1";
    el.on("plotly_click", (event) => {
      const point = event.points && event.points[0];
      if (!point || point.customdata === undefined) return;
      el.ffnasOnPick(Number(point.customdata), Boolean(event.event && event.event.shiftKey));
    });
  }
}
