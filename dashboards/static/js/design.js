// Reading FFNDesign JSON (search_space/design.py): defaults, labels, per-layer differences and
// the derived knobs the parallel-coordinates plot shows.

export const KINDS = ["dense", "moe", "lowrank", "blockdiag", "linear", "noop"];

// Okabe–Ito colours (distinguishable with the common colour-vision deficiencies); every use
// also prints the kind's name, so colour is never the only cue.
export const KIND_COLORS = {
  dense: "#0072B2",
  moe: "#E69F00",
  lowrank: "#009E73",
  blockdiag: "#CC79A7",
  linear: "#56B4E9",
  noop: "#999999",
};

/** A layer with the defaults that `model_dump(exclude_none=True)` may have left out. */
export function normLayer(layer) {
  const kind = layer.kind || "dense";
  let sparsity = layer.sparsity ?? { pattern: "none" };
  if (typeof sparsity === "string") sparsity = { pattern: sparsity };
  return {
    kind,
    width: layer.width ?? null,
    activation: layer.activation || "swiglu",
    experts: layer.experts ?? null,
    top_k: layer.top_k ?? null,
    shared_experts: layer.shared_experts ?? 0,
    rank: layer.rank ?? null,
    blocks: layer.blocks ?? null,
    sparsity: {
      pattern: sparsity.pattern || "none",
      block_size: sparsity.block_size ?? null,
      density: sparsity.density ?? null,
    },
    fusion_group: layer.fusion_group ?? null,
    parallel_attn: Boolean(layer.parallel_attn),
    norm: layer.norm || (kind === "noop" ? "none" : "pre"),
    norm_type: layer.norm_type || "rmsnorm",
  };
}

export function layersOf(design) {
  return ((design && design.layers) || []).map(normLayer);
}

export function sparsityLabel(sparsity) {
  if (sparsity.pattern === "block") return `block ${sparsity.block_size} @ ${sparsity.density}`;
  return sparsity.pattern === "none" ? "–" : sparsity.pattern;
}

/** Same words as `LayerFFN.summary()`: "dense 14336 swiglu", "moe 8x1792 top2". */
export function layerSummary(layer) {
  const l = normLayer(layer);
  let text;
  if (l.kind === "dense") {
    text = `dense ${l.width}`;
    if (l.sparsity.pattern === "2:4") text += " 2:4";
    else if (l.sparsity.pattern === "block") {
      text += ` block${l.sparsity.block_size}@${l.sparsity.density}`;
    }
  } else if (l.kind === "moe") {
    text = `moe ${l.experts}x${l.width} top${l.top_k}`;
    if (l.shared_experts) text += `+${l.shared_experts}s`;
  } else if (l.kind === "lowrank") text = `lowrank ${l.width} r${l.rank}`;
  else if (l.kind === "blockdiag") text = `blockdiag ${l.width} b${l.blocks}`;
  else return l.kind;
  return `${text} ${l.activation}`;
}

/** A one-line design summary: runs of equal layers collapsed ("4× dense 1024 swiglu"). */
export function designSummary(design) {
  const parts = [];
  let previous = null;
  let count = 0;
  for (const layer of layersOf(design)) {
    const label = layerSummary(layer);
    if (label === previous) count += 1;
    else {
      if (previous !== null) parts.push(count > 1 ? `${count}× ${previous}` : previous);
      previous = label;
      count = 1;
    }
  }
  if (previous !== null) parts.push(count > 1 ? `${count}× ${previous}` : previous);
  return parts.join(", ");
}

// Knobs compared layer by layer; the order is the order differences are listed in.
const KNOBS = [
  ["kind", (l) => l.kind],
  ["width", (l) => l.width],
  ["activation", (l) => l.activation],
  ["experts", (l) => l.experts],
  ["top_k", (l) => l.top_k],
  ["shared_experts", (l) => l.shared_experts],
  ["rank", (l) => l.rank],
  ["blocks", (l) => l.blocks],
  ["sparsity", (l) => sparsityLabel(l.sparsity)],
  ["fusion_group", (l) => l.fusion_group],
  ["parallel_attn", (l) => l.parallel_attn],
  ["norm", (l) => l.norm],
  ["norm_type", (l) => l.norm_type],
];

/** Names of the knobs whose values differ between two layers (either may be missing). */
export function layerDiff(a, b) {
  if (!a || !b) return ["layer"];
  const la = normLayer(a);
  const lb = normLayer(b);
  return KNOBS.filter(([, get]) => get(la) !== get(lb)).map(([name]) => name);
}

/** Fusion-group membership per layer: {group, position: "start"|"mid"|"end"} or null. */
export function fusionRuns(layers) {
  return layers.map((layer, i) => {
    const group = layer.fusion_group;
    if (group === null || group === undefined) return null;
    const first = i === 0 || layers[i - 1].fusion_group !== group;
    const last = i === layers.length - 1 || layers[i + 1].fusion_group !== group;
    const position = first && last ? "single" : first ? "start" : last ? "end" : "mid";
    return { group, position };
  });
}

/**
 * Per-layer latency in ms from `layer_latency_ms`, which may be a list (one per layer), an
 * object keyed by layer index, or absent. Returns an array of numbers/nulls, or null.
 */
export function layerLatencies(trial, nLayers) {
  const raw = trial && trial.layer_latency_ms;
  if (!raw) return null;
  const out = new Array(nLayers).fill(null);
  if (Array.isArray(raw)) {
    raw.slice(0, nLayers).forEach((v, i) => {
      out[i] = typeof v === "number" ? v : v && typeof v.p50_ms === "number" ? v.p50_ms : null;
    });
  } else if (typeof raw === "object") {
    for (const [key, v] of Object.entries(raw)) {
      const i = Number(key);
      if (Number.isInteger(i) && i >= 0 && i < nLayers) {
        out[i] = typeof v === "number" ? v : v && typeof v.p50_ms === "number" ? v.p50_ms : null;
      }
    }
  }
  return out.some((v) => v !== null) ? out : null;
}

/** Knobs derived from a design for the parallel-coordinates plot (numbers only). */
export function derivedKnobs(design) {
  const layers = layersOf(design);
  const counts = Object.fromEntries(KINDS.map((k) => [k, 0]));
  let widthSum = 0;
  let widthLayers = 0;
  let sparse = 0;
  let fused = 0;
  let nonPre = 0;
  for (const l of layers) {
    counts[l.kind] += 1;
    if (l.width !== null) {
      // an MoE layer's capacity per token is (top_k + shared) experts of `width`
      const effective = l.kind === "moe" ? l.width * (l.top_k + l.shared_experts) : l.width;
      widthSum += effective;
      widthLayers += 1;
    }
    if (l.sparsity.pattern !== "none") sparse += 1;
    if (l.fusion_group !== null) fused += 1;
    if (l.kind !== "noop" && l.norm !== "pre") nonPre += 1;
  }
  const knobs = {
    "mean active width": widthLayers ? widthSum / widthLayers : 0,
    "dense layers": counts.dense,
    "moe layers": counts.moe,
    "lowrank layers": counts.lowrank,
    "blockdiag layers": counts.blockdiag,
    "linear layers": counts.linear,
    "noop layers": counts.noop,
    "sparse layers": sparse,
    "fused layers": fused,
    "non-pre norms": nonPre,
  };
  // Per-layer axes only while they stay readable next to the aggregate ones.
  if (layers.length <= 4) {
    layers.forEach((l, i) => {
      knobs[`L${i} width`] = l.width ?? 0;
    });
  }
  return knobs;
}
