// The trial table: sortable columns, a state filter, keyboard-selectable rows, a compare
// checkbox per row, error texts for failed trials, and a CSV of what is shown.

import { designSummary } from "./design.js";
import { h, replace } from "./dom.js";
import { fmtMetric, metricLabel } from "./format.js";
import { TRIAL_STATES, metricValue } from "./jobmodel.js";

function columns(metrics) {
  return [
    { key: "number", label: "#", value: (t) => t.number },
    { key: "state", label: "state", value: (t) => t.state },
    {
      key: "feasible",
      label: "feasible",
      value: (t) => (t.feasible === null || t.feasible === undefined ? "" : t.feasible ? "yes" : "no"),
    },
    ...metrics.map((name) => ({
      key: `m:${name}`,
      label: metricLabel(name),
      value: (t) => metricValue(t, name),
      format: (v) => fmtMetric(name, v),
      numeric: true,
    })),
    { key: "summary", label: "design", value: (t) => t.summary || designSummary(t.design) },
    {
      key: "error",
      label: "error",
      value: (t) => [t.reason, t.error].filter(Boolean).join(": "),
    },
  ];
}

function compareValues(a, b) {
  if (a === b) return 0;
  // missing values sort last in either direction
  if (a === null || a === undefined || a === "") return 1;
  if (b === null || b === undefined || b === "") return -1;
  return typeof a === "number" && typeof b === "number" ? a - b : String(a).localeCompare(String(b));
}

/** The rows as CSV text (RFC 4180 quoting). */
export function trialsCsv(trials, metrics) {
  const cols = columns(metrics);
  const extra = [
    ["latency_p20_ms", (t) => t.latency?.p20_ms],
    ["latency_p50_ms", (t) => t.latency?.p50_ms],
    ["latency_p80_ms", (t) => t.latency?.p80_ms],
    ["attempt", (t) => t.attempt],
    ["created_at", (t) => t.created_at],
    ["finished_at", (t) => t.finished_at],
  ];
  const quote = (v) => {
    if (v === null || v === undefined) return "";
    const s = String(v);
    return /[",\n\r]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
  };
  const header = [
    ...cols.map((c) => (c.key.startsWith("m:") ? c.key.slice(2) : c.key)),
    ...extra.map(([n]) => n),
  ];
  const lines = [header.map(quote).join(",")];
  for (const t of trials) {
    lines.push([...cols.map((c) => c.value(t)), ...extra.map(([, f]) => f(t))].map(quote).join(","));
  }
  return `${lines.join("\r\n")}\r\n`;
}

/**
 * A stateful table. `render(trials, {metrics, selected, compare})` redraws the body keeping
 * sort and filter. Callbacks: onSelect(number), onToggleCompare(number, checked), onCsv(rows).
 */
export class TrialTable {
  constructor(el, { onSelect, onToggleCompare, onCsv }) {
    this.el = el;
    this.onSelect = onSelect;
    this.onToggleCompare = onToggleCompare;
    this.onCsv = onCsv;
    this.sortKey = "number";
    this.sortAsc = true;
    this.filter = "all";
    this.trials = [];
    this.opts = { metrics: [] };
  }

  visible() {
    const cols = columns(this.opts.metrics);
    const col = cols.find((c) => c.key === this.sortKey) || cols[0];
    const rows = this.trials.filter((t) => this.filter === "all" || t.state === this.filter);
    const missing = (v) => v === null || v === undefined || v === "";
    rows.sort((a, b) => {
      const va = col.value(a);
      const vb = col.value(b);
      const c = compareValues(va, vb);
      // missing values stay at the bottom whichever way the column is sorted
      return missing(va) || missing(vb) || this.sortAsc ? c : -c;
    });
    return rows;
  }

  render(trials, opts) {
    this.trials = trials;
    this.opts = opts;
    const cols = columns(opts.metrics);
    const rows = this.visible();
    const counts = Object.fromEntries(TRIAL_STATES.map((s) => [s, 0]));
    for (const t of trials) if (t.state in counts) counts[t.state] += 1;

    const filter = h(
      "select",
      {
        id: "trial-filter",
        onchange: (e) => {
          this.filter = e.target.value;
          this.render(this.trials, this.opts);
          document.getElementById("trial-filter")?.focus();
        },
      },
      h("option", { value: "all", selected: this.filter === "all" }, `all (${trials.length})`),
      TRIAL_STATES.map((s) =>
        h("option", { value: s, selected: this.filter === s }, `${s} (${counts[s]})`),
      ),
    );

    const headCells = cols.map((c) => {
      const sorted = c.key === this.sortKey;
      return h(
        "th",
        {
          scope: "col",
          "aria-sort": sorted ? (this.sortAsc ? "ascending" : "descending") : "none",
        },
        h(
          "button",
          {
            type: "button",
            class: "sort",
            dataset: { key: c.key },
            onclick: () => {
              this.sortAsc = c.key === this.sortKey ? !this.sortAsc : true;
              this.sortKey = c.key;
              this.render(this.trials, this.opts);
              this.el.querySelector(`button.sort[data-key="${CSS.escape(c.key)}"]`)?.focus();
            },
          },
          c.label,
          h("span", { class: "sort-mark", "aria-hidden": "true" }, sorted ? (this.sortAsc ? " ▲" : " ▼") : ""),
        ),
      );
    });

    const body = rows.map((t) => {
      const isSel = t.number === opts.selected;
      const isCmp = t.number === opts.compare;
      const select = () => this.onSelect(t.number);
      return h(
        "tr",
        {
          tabindex: 0,
          class: ["trial-row", `state-${t.state}`, isSel ? "selected" : "", isCmp ? "compared" : ""].join(" "),
          "aria-selected": isSel ? "true" : "false",
          dataset: { number: String(t.number), state: t.state },
          onclick: (e) => {
            if (e.target.closest("input,button,a")) return;
            select();
          },
          onkeydown: (e) => {
            if (e.target !== e.currentTarget) return;
            if (e.key === "Enter" || e.key === " ") {
              e.preventDefault();
              select();
            } else if (e.key === "ArrowDown" || e.key === "ArrowUp") {
              e.preventDefault();
              const next = e.key === "ArrowDown" ? e.currentTarget.nextElementSibling : e.currentTarget.previousElementSibling;
              next?.focus();
            }
          },
        },
        h(
          "td",
          { class: "pick" },
          h("input", {
            type: "checkbox",
            checked: isSel || isCmp,
            "aria-label": `compare trial ${t.number}`,
            onchange: (e) => this.onToggleCompare(t.number, e.target.checked),
          }),
        ),
        cols.map((c) => {
          const v = c.value(t);
          const text = c.format ? c.format(v) : v === null || v === undefined ? "–" : String(v);
          if (c.key === "state") return h("td", {}, h("span", { class: `state-badge state-${t.state}` }, text));
          if (c.key === "error") return h("td", { class: "error-text", title: text }, text);
          if (c.key === "summary") return h("td", { class: "summary", title: text }, text);
          return h("td", { class: c.numeric ? "num" : "" }, text);
        }),
      );
    });

    replace(
      this.el,
      h(
        "div",
        { class: "table-tools" },
        h("label", { for: "trial-filter" }, "State "),
        filter,
        h(
          "button",
          { type: "button", class: "secondary", onclick: () => this.onCsv(this.visible()) },
          "Download CSV",
        ),
        h("span", { class: "muted small" }, "Enter selects a row; tick two rows to compare."),
      ),
      h(
        "div",
        { class: "table-scroll" },
        h(
          "table",
          { class: "trials", id: "trial-table" },
          h("caption", { class: "visually-hidden" }, "Trials of this job"),
          h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "pick"), headCells)),
          h("tbody", {}, body),
        ),
      ),
    );
  }
}
