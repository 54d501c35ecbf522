// The stacked progress bar of a job: complete / pruned / failed / running segments out of n,
// each with its own fill pattern as well as colour, and the numbers spelled out beside it.

import { h } from "./dom.js";

const SEGMENTS = [
  ["complete", "done"],
  ["pruned", "pruned"],
  ["failed", "failed"],
  ["running", "running"],
];

export function progressBar(counts, nTrials) {
  const c = counts || {};
  const n = Math.max(1, nTrials || 0);
  const finished = (c.complete || 0) + (c.pruned || 0) + (c.failed || 0);
  const text = `${c.complete || 0} done · ${c.running || 0} running · ${c.failed || 0} failed · ${c.pruned || 0} pruned of ${nTrials ?? "?"}`;
  return h(
    "div",
    { class: "progress" },
    h(
      "div",
      {
        class: "progress-track",
        role: "progressbar",
        "aria-valuemin": "0",
        "aria-valuemax": String(nTrials ?? 0),
        "aria-valuenow": String(finished),
        "aria-valuetext": text,
      },
      SEGMENTS.map(([key]) =>
        h("span", {
          class: `seg seg-${key}`,
          style: { width: `${(100 * (c[key] || 0)) / n}%` },
        }),
      ),
    ),
    h("span", { class: "progress-text small" }, text),
  );
}
