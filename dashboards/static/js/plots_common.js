// Plotly settings shared by every chart: one font, no Plotly logo, no requests for map tiles or
// fonts (everything it needs comes from /static/vendor/plotly.min.js).

export const PLOT_CONFIG = {
  displaylogo: false,
  responsive: true,
  modeBarButtonsToRemove: ["lasso2d", "select2d", "toggleSpikelines"],
  toImageButtonOptions: { format: "png", scale: 2 },
};

export function baseLayout(extra = {}) {
  return {
    font: { family: "system-ui, sans-serif", size: 12, color: "#1b1f24" },
    paper_bgcolor: "rgba(0,0,0,0)",
    plot_bgcolor: "#ffffff",
    margin: { l: 64, r: 24, t: 28, b: 52 },
    hoverlabel: { align: "left", bgcolor: "#ffffff", bordercolor: "#444", font: { size: 12 } },
    ...extra,
  };
}

/** Plotly is a classic script with `defer`; modules run after it, but wait defensively. */
export function plotly() {
  if (!window.Plotly) throw new Error("plotly.min.js did not load from /static/vendor/");
  return window.Plotly;
}

// Colour scale for "colour by a cost": viridis is ordered in lightness and readable with the
// common colour-vision deficiencies.
export const COLORSCALE = "Viridis";

// Okabe–Ito colours for trial states; the front plot also changes the marker shape per state.
export const STATE_COLORS = {
  queued: "#999999",
  running: "#E69F00",
  complete: "#0072B2",
  pruned: "#CC79A7",
  failed: "#D55E00",
};
