// Parallel coordinates of knobs derived from each design against the objectives, for seeing
// which choices the good designs share. Only knobs that vary across trials get an axis.

import { derivedKnobs } from "./design.js";
import { metricLabel } from "./format.js";
import { metricValue } from "./jobmodel.js";
import { COLORSCALE, PLOT_CONFIG, baseLayout, plotly } from "./plots_common.js";

/** opts: {trials (complete ones), objectives:[{name}], colorBy} */
export function renderParcoords(el, opts) {
  const trials = opts.trials.filter((t) => t.design && t.state === "complete");
  if (trials.length < 2) {
    plotly().purge(el);
    el.textContent = "Parallel coordinates appear once two trials have finished.";
    el.dataset.dimensions = "0";
    return;
  }
  if (!el.classList.contains("js-plotly-plot")) el.textContent = "";
  const knobs = trials.map((t) => derivedKnobs(t.design));
  const dimensions = [];
  for (const name of Object.keys(knobs[0])) {
    const values = knobs.map((k) => k[name] ?? 0);
    if (new Set(values).size > 1) dimensions.push({ label: name, values });
  }
  for (const { name } of opts.objectives) {
    const values = trials.map((t) => metricValue(t, name));
    if (values.every((v) => v !== null)) dimensions.push({ label: metricLabel(name), values });
  }
  const colorName = opts.colorBy;
  const color = trials.map((t) => metricValue(t, colorName) ?? 0);
  const trace = {
    type: "parcoords",
    line: {
      color,
      colorscale: COLORSCALE,
      showscale: true,
      colorbar: { title: { text: metricLabel(colorName) }, thickness: 12 },
    },
    dimensions,
    labelangle: -20,
    labelfont: { size: 11 },
    tickfont: { size: 10 },
  };
  plotly().react(el, [trace], baseLayout({ margin: { l: 70, r: 70, t: 70, b: 24 } }), PLOT_CONFIG);
  el.dataset.dimensions = String(dimensions.length);
}
