// The new-job form: a few common fields over a JSON spec (JobSpec, service/spec.py). The server
// validates; its 422 messages are shown next to the field they name (`detail[].loc`).

import { ApiError, jobs, targets } from "./api.js";
import { h, replace } from "./dom.js";

const STRATEGIES = ["tpe", "nsga2", "nsga3", "gp", "random", "nni-tpe", "nni-evolution", "nni-anneal", "nni-random", "exact"];
const EVALUATORS = ["analytic", "latency", "proxy", "distill", "library"];

// A small analytic job (6 layers, five FFN kinds, two fusion spans; finishes in seconds):
// the spec the textarea starts with. FLOPs per token stand in for capacity (maximised)
// against parameters (minimised), so the front is a real trade-off.
export const EXAMPLE_SPEC = {
  "space": {
    "name": "tiny",
    "dims": {
      "d_model": 256,
      "n_layers": 6,
      "n_heads": 4,
      "n_kv_heads": 2,
      "vocab": 256,
      "seq_len": 256
    },
    "tie": "per_layer",
    "layer": {
      "kind": {
        "choices": [
          "dense",
          "moe",
          "lowrank",
          "blockdiag",
          "noop"
        ]
      },
      "width": {
        "low": 256,
        "high": 1024,
        "step": 256
      },
      "moe": {
        "experts": [
          4,
          8
        ],
        "top_k": [
          1,
          2
        ],
        "width": [
          128,
          256
        ]
      },
      "lowrank": {
        "rank": [
          32,
          64
        ]
      },
      "blockdiag": {
        "blocks": [
          2,
          4
        ]
      },
      "sparsity": [
        "none",
        "2:4"
      ],
      "norm": [
        "pre",
        "sandwich"
      ]
    },
    "fusion": {
      "spans": [
        [
          1,
          2
        ],
        [
          3,
          4
        ]
      ]
    }
  },
  "workload": {
    "phase": "prefill",
    "batch": 1,
    "seq": 256
  },
  "objectives": [
    {
      "name": "params",
      "direction": "minimize"
    },
    {
      "name": "flops",
      "direction": "maximize"
    }
  ],
  "constraints": [
    {
      "name": "params",
      "max": 2500000
    }
  ]
};

// Fields of the form -> the JobSpec path they set.
const FIELDS = {
  name: (spec, v) => (spec.name = v),
  n_trials: (spec, v) => (spec.n_trials = Number(v)),
  target: (spec, v) => (spec.target = v),
  evaluator: (spec, v) => (spec.evaluator = { ...(spec.evaluator || {}), name: v }),
  strategy: (spec, v) => (spec.strategy = { ...(spec.strategy || {}), name: v }),
  budget: (spec, v) => {
    const rest = (spec.constraints || []).filter((c) => c.name !== "latency_ms");
    spec.constraints = [...rest, { name: "latency_ms", max: Number(v) }];
  },
};

/** The form field a server error location belongs to (`spec` for anything else). */
export function fieldForLoc(loc) {
  const path = (loc || []).filter((p) => p !== "body");
  const head = path[0];
  if (head === "constraints") return "budget";
  if (head in FIELDS) return head;
  return "spec";
}

function input(name, label, attrs, hint) {
  const id = `job-${name}`;
  return h(
    "div",
    { class: "field", dataset: { field: name } },
    h("label", { for: id }, label),
    h("input", { id, name, "aria-describedby": `${id}-error${hint ? ` ${id}-hint` : ""}`, ...attrs }),
    hint ? h("small", { id: `${id}-hint`, class: "muted" }, hint) : null,
    h("p", { id: `${id}-error`, class: "field-error", role: "alert" }),
  );
}

function datalist(id, options) {
  return h("datalist", { id }, options.map((o) => h("option", { value: o })));
}

export function renderJobForm(box, { onCreated }) {
  const specArea = h("textarea", {
    id: "job-spec",
    name: "spec",
    rows: 16,
    spellcheck: false,
    "aria-describedby": "job-spec-error job-spec-hint",
  });
  specArea.value = JSON.stringify(EXAMPLE_SPEC, null, 2);
  const fileInput = h("input", {
    id: "job-file",
    type: "file",
    accept: ".json,application/json",
    onchange: async (e) => {
      const file = e.target.files[0];
      if (file) specArea.value = await file.text();
    },
  });
  const general = h("p", { class: "form-error", role: "alert", id: "job-form-error" });
  const submit = h("button", { type: "submit", class: "primary", id: "job-submit" }, "Submit job");

  const form = h(
    "form",
    { id: "job-form", novalidate: true },
    h(
      "div",
      { class: "form-grid" },
      input("name", "Name", { type: "text", required: true, value: "my search", maxlength: 200 }),
      input("n_trials", "Trials", { type: "number", min: 1, step: 1, value: 40, required: true }),
      input("target", "Target", { type: "text", value: "cpu", list: "target-options" }, "a registered target's name"),
      input("evaluator", "Evaluator", { type: "text", value: "analytic", list: "evaluator-options" }),
      h(
        "div",
        { class: "field", dataset: { field: "strategy" } },
        h("label", { for: "job-strategy" }, "Strategy"),
        h("select", { id: "job-strategy", name: "strategy", "aria-describedby": "job-strategy-error" }, STRATEGIES.map((s) => h("option", { value: s }, s))),
        h("p", { id: "job-strategy-error", class: "field-error", role: "alert" }),
      ),
      input("budget", "Latency budget (ms)", { type: "number", min: 0, step: "any", placeholder: "none" }, "adds constraint latency_ms ≤ budget"),
    ),
    datalist("target-options", ["cpu"]),
    datalist("evaluator-options", EVALUATORS),
    h(
      "div",
      { class: "field", dataset: { field: "spec" } },
      h("label", { for: "job-spec" }, "Job spec (JSON: space, workload, objectives, …)"),
      specArea,
      h("small", { id: "job-spec-hint", class: "muted" }, "The fields above override the same keys of this spec. Load a JSON file: ", fileInput),
      h("p", { id: "job-spec-error", class: "field-error", role: "alert" }),
    ),
    general,
    h("div", { class: "form-actions" }, submit),
  );

  function clearErrors() {
    for (const el of form.querySelectorAll(".field-error")) el.textContent = "";
    for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
    general.textContent = "";
  }

  function showError(field, message) {
    const out = form.querySelector(`#job-${field}-error`);
    const control = form.querySelector(`#job-${field}`);
    if (control) control.setAttribute("aria-invalid", "true");
    if (out) out.textContent = out.textContent ? `${out.textContent}\n${message}` : message;
    else general.textContent = message;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors();
    let spec;
    try {
      spec = specArea.value.trim() ? JSON.parse(specArea.value) : {};
      if (typeof spec !== "object" || Array.isArray(spec) || spec === null) {
        throw new Error("the spec must be a JSON object");
      }
    } catch (error) {
      showError("spec", `The spec is not valid JSON: ${error.message}`);
      specArea.focus();
      return;
    }
    for (const [name, apply] of Object.entries(FIELDS)) {
      const control = form.elements[name];
      if (control && control.value !== "") apply(spec, control.value.trim());
    }
    submit.disabled = true;
    try {
      const job = await jobs.create(spec);
      onCreated(job);
    } catch (error) {
      if (error instanceof ApiError && error.fieldErrors.length) {
        let first = null;
        for (const d of error.fieldErrors) {
          const field = fieldForLoc(d.loc);
          const path = (d.loc || []).filter((p) => p !== "body").join(".");
          showError(field, field === "spec" && path ? `${path}: ${d.msg}` : d.msg);
          first = first || field;
        }
        form.querySelector(`#job-${first}`)?.focus();
      } else {
        general.textContent = error.message;
      }
    } finally {
      submit.disabled = false;
    }
  });

  replace(box, h("h2", { id: "new-job-title" }, "Submit a job"), form);

  targets
    .list()
    .then((page) => {
      const names = ((page && page.data) || page || []).map((t) => t.name).filter(Boolean);
      if (names.length) replace(form.querySelector("#target-options"), names.map((n) => h("option", { value: n })));
    })
    .catch(() => {
      // the datalist keeps "cpu"; the field is free text anyway
    });
}
