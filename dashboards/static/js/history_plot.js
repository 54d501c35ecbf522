// Hypervolume (from the API) and the best quality under the budget, over trial number.

import { fmtMetric, metricLabel } from "./format.js";
import { PLOT_CONFIG, baseLayout, plotly } from "./plots_common.js";

/** opts: {hypervolume:[{number,value}], best:[{number,value}], quality:{name}, strategy} */
export function renderHistory(el, opts) {
  const { hypervolume, best, quality, strategy } = opts;
  const traces = [];
  if (hypervolume.length) {
    traces.push({
      type: "scatter",
      mode: "lines+markers",
      name: "hypervolume",
      x: hypervolume.map((p) => p.number),
      y: hypervolume.map((p) => p.value),
      line: { color: "#0072B2", shape: "hv", width: 2 },
      marker: { symbol: "circle", size: 5 },
      hovertemplate: "trial #%{x}<br>hypervolume %{y:.4g}<extra></extra>",
    });
  }
  if (best.length && quality) {
    traces.push({
      type: "scatter",
      mode: "lines+markers",
      name: `best ${metricLabel(quality.name)} under budget`,
      x: best.map((p) => p.number),
      y: best.map((p) => p.value),
      yaxis: "y2",
      line: { color: "#E69F00", shape: "hv", width: 2, dash: "dot" },
      marker: { symbol: "square", size: 5 },
      text: best.map((p) => fmtMetric(quality.name, p.value)),
      hovertemplate: "trial #%{x}<br>best %{text}<extra></extra>",
    });
  }
  const layout = baseLayout({
    title: { text: `strategy: ${strategy}`, font: { size: 12 }, x: 0.01, y: 0.98 },
    xaxis: { title: { text: "trial number" }, gridcolor: "#e4e7eb", rangemode: "tozero" },
    yaxis: { title: { text: "hypervolume", font: { color: "#0072B2" } }, gridcolor: "#e4e7eb" },
    yaxis2: {
      title: { text: quality ? metricLabel(quality.name) : "", font: { color: "#B37A00" } },
      overlaying: "y",
      side: "right",
      showgrid: false,
      tickformat: "~s",
    },
    legend: { orientation: "h", y: -0.42, x: 0 },
    margin: { l: 64, r: 72, t: 30, b: 70 },
  });
  plotly().react(el, traces, layout, PLOT_CONFIG);
  el.dataset.hypervolumePoints = String(hypervolume.length);
}
