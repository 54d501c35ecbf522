// Pure functions over the API's JobPublic / TrialPublic / pareto shapes (docs/contracts.md).

export const TERMINAL_JOB = new Set(["stopped", "completed", "failed"]);
export const TRIAL_STATES = ["queued", "running", "complete", "pruned", "failed"];

/** Objectives as [{name, direction}], from the pareto response or else the job's spec. */
export function objectivesOf(job, pareto) {
  if (pareto && Array.isArray(pareto.objectives) && pareto.objectives.length) {
    return pareto.objectives;
  }
  const spec = (job && job.spec) || {};
  return (spec.objectives || []).map((o) =>
    typeof o === "string" ? { name: o, direction: "minimize" } : o,
  );
}

/** Constraints as {name: max} from the job spec (`constraints: [{name, max}]`). */
export function constraintsOf(job) {
  const out = {};
  const raw = job && job.spec ? job.spec.constraints : null;
  if (Array.isArray(raw)) {
    for (const c of raw) if (c && typeof c.max === "number") out[c.name] = c.max;
  } else if (raw && typeof raw === "object") {
    for (const [name, value] of Object.entries(raw)) {
      if (typeof value === "number") out[name] = value;
      else if (value && typeof value.max === "number") out[name] = value.max;
    }
  }
  return out;
}

export function strategyOf(job) {
  if (job && typeof job.strategy === "string") return job.strategy;
  const s = job && job.spec ? job.spec.strategy : null;
  return (s && (s.name || s)) || "–";
}

/** The quality objective: the first objective that is not a latency/cost under a constraint. */
export function qualityObjective(objectives, constraints) {
  if (!objectives.length) return null;
  const latencyish = (o) => o.name === "latency_ms" || o.name in constraints;
  return objectives.find((o) => !latencyish(o)) || objectives[0];
}

/** A trial's value for a metric: `values`, else measured latency p50 for `latency_ms`. */
export function metricValue(trial, name) {
  const v = trial.values ? trial.values[name] : undefined;
  if (typeof v === "number") return v;
  if (name === "latency_ms" && trial.latency && typeof trial.latency.p50_ms === "number") {
    return trial.latency.p50_ms;
  }
  return null;
}

/** Numeric metric names present on any trial (for the axis and colour pickers). */
export function metricNames(trials, objectives) {
  const names = new Set(objectives.map((o) => o.name));
  for (const t of trials) {
    for (const [k, v] of Object.entries(t.values || {})) if (typeof v === "number") names.add(k);
    if (t.latency && typeof t.latency.p50_ms === "number") names.add("latency_ms");
  }
  return [...names];
}

/** false when the trial broke a constraint (API flag, else constraint values > 0). */
export function isFeasible(trial) {
  if (trial.feasible === false) return false;
  if (trial.feasible === true) return true;
  const c = trial.constraints || {};
  return Object.values(c).every((v) => typeof v !== "number" || v <= 0);
}

/** `a` dominates `b` (no worse in every objective, better in one). */
export function dominates(a, b, objectives) {
  let better = false;
  for (const { name, direction } of objectives) {
    const sign = direction === "maximize" ? -1 : 1;
    const va = sign * metricValue(a, name);
    const vb = sign * metricValue(b, name);
    if (va > vb) return false;
    if (va < vb) better = true;
  }
  return better;
}

/**
 * Running best of the quality objective among complete, feasible trials, by trial number:
 * [{number, value}]. Feasibility includes every constraint (the latency budget among them).
 */
export function bestUnderBudget(trials, quality) {
  if (!quality) return [];
  const sign = quality.direction === "maximize" ? -1 : 1;
  const sorted = trials
    .filter((t) => t.state === "complete" && isFeasible(t))
    .filter((t) => metricValue(t, quality.name) !== null)
    .sort((a, b) => a.number - b.number);
  const out = [];
  let best = null;
  for (const t of sorted) {
    const v = metricValue(t, quality.name);
    if (best === null || sign * v < sign * best) best = v;
    out.push({ number: t.number, value: best });
  }
  return out;
}

/** Counts of trial states: the job's `counts`, recomputed from trials when they are known. */
export function countStates(trials) {
  const counts = Object.fromEntries(TRIAL_STATES.map((s) => [s, 0]));
  for (const t of trials) if (t.state in counts) counts[t.state] += 1;
  return counts;
}

/** Merge a trial from the event stream into the map unless it would go back in time. */
export function mergeTrial(map, trial) {
  const old = map.get(trial.number);
  const rank = { queued: 0, running: 1, pruned: 2, failed: 2, complete: 2 };
  if (old && (old.attempt ?? 0) === (trial.attempt ?? 0)) {
    if ((rank[old.state] ?? 0) > (rank[trial.state] ?? 0)) return false;
  }
  map.set(trial.number, trial);
  return true;
}
