// "Where did the budget go": one row per layer of a design, and a layer-by-layer comparison
// of two designs with the differing layers marked (by text and a symbol, not colour alone).

import { h, replace } from "./dom.js";
import {
  KIND_COLORS,
  fusionRuns,
  layerDiff,
  layerLatencies,
  layerSummary,
  layersOf,
  sparsityLabel,
} from "./design.js";
import { fmtMetric, fmtNum, metricLabel } from "./format.js";

function bar(fraction, label, color, title) {
  const pct = Math.max(0, Math.min(1, fraction)) * 100;
  return h(
    "div",
    { class: "bar", title },
    h("div", { class: "bar-fill", style: { width: `${pct.toFixed(1)}%`, background: color } }),
    h("span", { class: "bar-label" }, label),
  );
}

function kindPill(kind) {
  return h("span", { class: `kind-pill kind-${kind}`, style: { borderColor: KIND_COLORS[kind] } }, [
    h("span", { class: "kind-swatch", style: { background: KIND_COLORS[kind] } }),
    kind,
  ]);
}

function widthLabel(l) {
  if (l.width === null) return "–";
  // exact widths: 1024 and 1000 are different GEMM shapes
  return l.kind === "moe" ? `${l.experts}×${l.width}` : String(l.width);
}

// Experts/top-k, rank and blocks belong to different kinds, so they share one column.
function structureLabel(l) {
  if (l.kind === "moe") {
    const shared = l.shared_experts ? ` +${l.shared_experts}s` : "";
    return `${l.experts} exp, top-${l.top_k}${shared}`;
  }
  if (l.kind === "lowrank") return `rank ${l.rank}`;
  if (l.kind === "blockdiag") return `${l.blocks} blocks`;
  return "–";
}

function normLabel(l) {
  if (l.norm === "none") return "none";
  const parallel = l.parallel_attn ? " ∥attn" : "";
  return `${l.norm} ${l.norm_type === "layernorm" ? "LN" : "RMS"}${parallel}`;
}

function fusionCell(run) {
  if (!run) return h("td", { class: "fusion" });
  return h(
    "td",
    { class: `fusion fusion-${run.position}`, title: `fusion group ${run.group}` },
    run.position === "start" || run.position === "single" ? `g${run.group}` : "",
  );
}

/** Render the layer table of `trial` into `el`; `actions` are extra nodes for the header. */
export function renderLayerView(el, trial, { actions = [], metrics = [] } = {}) {
  const layers = layersOf(trial.design);
  const widest = Math.max(1, ...layers.map((l) => l.width ?? 0));
  const latencies = layerLatencies(trial, layers.length);
  const totalLatency = latencies ? latencies.reduce((s, v) => s + (v ?? 0), 0) : 0;
  const runs = fusionRuns(layers);

  const rows = layers.map((l, i) => {
    const share = latencies && totalLatency > 0 ? (latencies[i] ?? 0) / totalLatency : null;
    return h(
      "tr",
      { dataset: { layer: String(i), kind: l.kind } },
      h("th", { scope: "row" }, String(i)),
      fusionCell(runs[i]),
      h("td", {}, kindPill(l.kind)),
      h(
        "td",
        { class: "width-cell" },
        bar((l.width ?? 0) / widest, widthLabel(l), KIND_COLORS[l.kind], layerSummary(l)),
      ),
      h("td", {}, structureLabel(l)),
      h("td", {}, sparsityLabel(l.sparsity)),
      h("td", {}, normLabel(l)),
      h(
        "td",
        { class: "latency-cell" },
        share === null
          ? "–"
          : bar(
              share,
              `${(share * 100).toFixed(1)}%`,
              "#E69F00",
              `layer ${i}: ${fmtNum(latencies[i])} ms of ${fmtNum(totalLatency)} ms`,
            ),
      ),
    );
  });

  const dims = trial.design && trial.design.dims ? trial.design.dims : {};
  const facts = metrics
    .map((name) => [name, trial.values ? trial.values[name] : undefined])
    .filter(([, v]) => typeof v === "number")
    .map(([name, v]) => h("li", {}, h("span", { class: "fact-name" }, metricLabel(name)), fmtMetric(name, v)));

  replace(
    el,
    h(
      "div",
      { class: "panel-head" },
      h("h3", { id: "layer-view-title" }, `Trial #${trial.number} — ${layers.length} layers`),
      h("div", { class: "actions" }, actions),
    ),
    h(
      "p",
      { class: "muted" },
      `d_model ${dims.d_model ?? "?"}, ${dims.n_heads ?? "?"} heads (${dims.n_kv_heads ?? "?"} KV), `,
      `${dims.dtype ?? ""}; state ${trial.state}${trial.feasible === false ? ", infeasible" : ""}`,
    ),
    facts.length ? h("ul", { class: "facts" }, facts) : null,
    h(
      "div",
      { class: "table-scroll" },
      h(
        "table",
        { class: "layers", "aria-labelledby": "layer-view-title" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ["layer", "fusion", "FFN kind", "width (bar: vs widest)", "experts / rank / blocks", "sparsity", "norm", latencies ? `latency share of ${fmtNum(totalLatency)} ms` : "latency share"].map(
              (c) => h("th", { scope: "col" }, c),
            ),
          ),
        ),
        h("tbody", {}, rows),
      ),
    ),
    latencies ? null : h("p", { class: "muted small" }, "No per-layer latency recorded for this trial."),
  );
}

/** Render A-vs-B into `el`; returns the indices of layers that differ. */
export function renderCompare(el, a, b, { onClose } = {}) {
  const la = layersOf(a.design);
  const lb = layersOf(b.design);
  const n = Math.max(la.length, lb.length);
  const differing = [];
  const rows = [];
  for (let i = 0; i < n; i++) {
    const diff = layerDiff(la[i], lb[i]);
    if (diff.length) differing.push(i);
    const cell = (layer) =>
      layer
        ? h("td", {}, kindPill(layer.kind), " ", layerSummary(layer).replace(/^\S+\s?/, ""), h("span", { class: "muted" }, ` · ${normLabel(layer)}`), layer.fusion_group !== null ? h("span", { class: "muted" }, ` · g${layer.fusion_group}`) : null)
        : h("td", { class: "muted" }, "(no layer)");
    rows.push(
      h(
        "tr",
        { class: diff.length ? "differs" : "same", dataset: { layer: String(i), differs: diff.length ? "1" : "0" } },
        h("th", { scope: "row" }, String(i)),
        cell(la[i]),
        cell(lb[i]),
        h("td", { class: "diff-cell" }, diff.length ? [h("span", { class: "diff-mark", "aria-hidden": "true" }, "≠ "), diff.join(", ")] : h("span", { class: "muted" }, "same")),
      ),
    );
  }
  replace(
    el,
    h(
      "div",
      { class: "panel-head" },
      h("h3", { id: "compare-title" }, `Compare #${a.number} (A) with #${b.number} (B)`),
      h("div", { class: "actions" }, onClose ? h("button", { type: "button", class: "secondary", onclick: onClose }, "Close comparison") : null),
    ),
    h("p", { class: "muted", "aria-live": "polite" }, `${differing.length} of ${n} layers differ.`),
    h(
      "div",
      { class: "table-scroll" },
      h(
        "table",
        { class: "compare", "aria-labelledby": "compare-title" },
        h("thead", {}, h("tr", {}, ["layer", `A: #${a.number}`, `B: #${b.number}`, "differences"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, rows),
      ),
    ),
  );
  return differing;
}
