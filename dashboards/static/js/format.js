// Number, date and name formatting shared by the pages.

const SI = [
  [1e12, "T"],
  [1e9, "G"],
  [1e6, "M"],
  [1e3, "k"],
];

/** 3 significant digits, with k/M/G/T for big counts (params, FLOPs, bytes). */
export function fmtNum(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  if (typeof value !== "number") return String(value);
  const abs = Math.abs(value);
  for (const [scale, suffix] of SI) {
    if (abs >= scale) return `${(value / scale).toPrecision(3)}${suffix}`;
  }
  if (abs === 0 || Number.isInteger(value)) return String(value);
  if (abs < 1e-3) return value.toExponential(2);
  return String(Number(value.toPrecision(4)));
}

/** A metric with its unit, e.g. `latency_ms` -> "1.23 ms". */
export function fmtMetric(name, value) {
  if (value === null || value === undefined) return "–";
  if (name.endsWith("_ms")) return `${fmtNum(value)} ms`;
  if (name.endsWith("_bytes")) return `${fmtNum(value)}B`;
  return fmtNum(value);
}

/** Human label for a metric name: `latency_ms` -> "latency (ms)". */
export function metricLabel(name) {
  const known = {
    latency_ms: "latency (ms)",
    params: "parameters",
    active_params: "active parameters",
    flops: "FLOPs / token",
    weight_bytes: "weight memory (bytes)",
    bpb: "validation bits/byte",
    kl_div: "KL divergence to parent",
  };
  return known[name] || name.replaceAll("_", " ");
}

export function fmtDate(iso) {
  if (!iso) return "–";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return date.toLocaleString(undefined, {
    year: "numeric",
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit",
  });
}

export function fmtDuration(startIso, endIso) {
  if (!startIso) return "–";
  const end = endIso ? new Date(endIso) : new Date();
  const seconds = Math.max(0, (end - new Date(startIso)) / 1000);
  if (seconds < 90) return `${seconds.toFixed(0)} s`;
  if (seconds < 5400) return `${(seconds / 60).toFixed(1)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}
