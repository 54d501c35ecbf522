// The jobs page: every job of this token, stop/resume, and the new-job form.
//
// One GET /jobs fills the table; after that rows change only through the event stream
// (GET /events: a `job` event per change of a job or its trials' states, `job-deleted` when
// one is gone), so the page never polls. The list is read again only on Refresh and after the
// stream reconnects (a deletion during the gap would otherwise stay on screen).

import { jobs } from "./api.js";
import { h, replace, toast } from "./dom.js";
import { fmtDate, fmtMetric, metricLabel } from "./format.js";
import { renderJobForm } from "./job_form.js";
import { strategyOf } from "./jobmodel.js";
import { progressBar } from "./progress.js";
import { subscribe } from "./sse.js";

function bestText(job) {
  if (!job.best || typeof job.best !== "object") return "–";
  return Object.entries(job.best)
    .filter(([, v]) => typeof v === "number")
    .map(([k, v]) => `${metricLabel(k)} ${fmtMetric(k, v)}`)
    .join(" · ") || "–";
}

function actionButtons(job, show) {
  const run = async (verb, call) => {
    try {
      const mark = show.mark();
      // The reply is the job's new state, unless the stream already brought a newer one.
      show(await call(job.id), mark);
      toast(`${verb} requested for ${job.name}`);
    } catch (error) {
      toast(`${verb} failed: ${error.message}`, "error");
    }
  };
  const out = [];
  if (job.status === "queued" || job.status === "running") {
    out.push(h("button", { type: "button", class: "secondary", dataset: { action: "stop" }, onclick: () => run("Stop", jobs.stop) }, "Stop"));
  }
  if (job.status === "stopped" || job.status === "failed") {
    out.push(h("button", { type: "button", class: "secondary", dataset: { action: "resume" }, onclick: () => run("Resume", jobs.resume) }, "Resume"));
  }
  return out;
}

function jobRow(job, show) {
  return h(
    "tr",
    { dataset: { jobId: job.id, status: job.status } },
    h("th", { scope: "row" }, h("a", { href: `#/jobs/${encodeURIComponent(job.id)}` }, job.name)),
    h("td", {}, h("span", { class: `status-badge status-${job.status}` }, job.status), job.error ? h("div", { class: "error-text small", title: job.error }, job.error) : null),
    h("td", { class: "progress-cell" }, progressBar(job.counts, job.n_trials)),
    h("td", {}, job.target ?? job.spec?.target ?? "–"),
    h("td", {}, `${job.evaluator ?? job.spec?.evaluator?.name ?? "–"} / ${strategyOf(job)}`),
    h("td", { class: "best" }, bestText(job)),
    h("td", {}, fmtDate(job.started_at || job.created_at)),
    h("td", { class: "row-actions" }, actionButtons(job, show)),
  );
}

// Newest first, as GET /jobs orders them.
function newestFirst(a, b) {
  if (a.created_at !== b.created_at) return a.created_at < b.created_at ? 1 : -1;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** Mount the jobs page into `main`; returns a cleanup function. */
export function mountJobsPage(main) {
  const list = h("div", { id: "job-list", "aria-live": "polite" }, h("p", { class: "muted" }, "Loading jobs…"));
  const formBox = h("section", { class: "card", "aria-labelledby": "new-job-title" });
  const live = h("span", { class: "live", id: "jobs-live-status" }, "connecting");
  let rows = new Map(); // job id -> JobPublic
  let loaded = false;
  let stopped = false;
  let controller = null;
  let opened = 0;
  // Each change (stream event or action reply) gets a sequence number, so a GET /jobs that
  // was sent before it cannot put back an older state or a deleted job.
  let seq = 0;
  const touched = new Map(); // job id -> seq of its latest change

  function render() {
    if (stopped) return;
    const data = [...rows.values()].sort(newestFirst);
    list.dataset.count = String(data.length);
    if (!data.length) {
      if (loaded) replace(list, h("p", { class: "muted" }, "No jobs yet: submit one below, or run `ffnas submit job.yaml`."));
      return;
    }
    replace(
      list,
      h(
        "div",
        { class: "table-scroll" },
        h(
          "table",
          { class: "jobs", id: "jobs-table" },
          h("caption", { class: "visually-hidden" }, "Jobs"),
          h("thead", {}, h("tr", {}, ["job", "status", "progress", "target", "evaluator / strategy", "best", "started", ""].map((c) => h("th", { scope: "col" }, c)))),
          h("tbody", {}, data.map((job) => jobRow(job, show))),
        ),
      ),
    );
  }

  /**
   * Put one job's new state on screen: its row is replaced in place, a new job re-sorts.
   * With `mark`, a state read before then is dropped if the job changed since.
   */
  function show(job, mark = Infinity) {
    if (!job || !job.id || (touched.get(job.id) ?? -1) > mark) return;
    touched.set(job.id, ++seq);
    const known = rows.has(job.id);
    rows.set(job.id, job);
    const old = known ? list.querySelector(`tr[data-job-id="${CSS.escape(job.id)}"]`) : null;
    if (old) old.replaceWith(jobRow(job, show));
    else render();
  }

  show.mark = () => seq;

  function drop(id) {
    touched.set(id, ++seq);
    if (rows.delete(id)) render();
  }

  async function load() {
    controller?.abort();
    controller = new AbortController();
    const start = seq;
    try {
      const page = await jobs.list(controller.signal);
      if (stopped) return;
      const next = new Map();
      for (const job of (page && page.data) || []) {
        if ((touched.get(job.id) ?? -1) <= start) next.set(job.id, job);
        else if (rows.has(job.id)) next.set(job.id, rows.get(job.id));
      }
      // Jobs the stream brought since the request was sent stay (created after it).
      for (const [id, job] of rows) if (!next.has(id) && (touched.get(id) ?? -1) > start) next.set(id, job);
      rows = next;
      loaded = true;
      render();
    } catch (error) {
      if (error.name === "AbortError" || stopped) return;
      replace(list, h("p", { class: "error-text" }, `Could not load jobs: ${error.message}`));
    }
  }

  const stream = subscribe(jobs.allEventsUrl(), {
    onOpen: () => {
      if (opened++ > 0) load();
    },
    onStatus: (text) => {
      live.textContent = text === "live" ? "● live" : text;
      live.className = `live live-${text.split(" ")[0]}`;
    },
    onEvent: (type, data) => {
      if (stopped || !data || typeof data !== "object") return;
      if (type === "job") show(data);
      else if (type === "job-deleted" && data.id) drop(data.id);
    },
  });

  replace(
    main,
    h("div", { class: "page-head" }, h("h1", {}, "Search jobs"), live, h("button", { type: "button", class: "secondary", onclick: load }, "Refresh")),
    h("section", { class: "card", "aria-label": "Job list" }, list),
    formBox,
  );
  renderJobForm(formBox, {
    onCreated: (job) => {
      toast(`Job ${job.name} submitted`);
      show(job);
    },
  });
  load();
  return () => {
    stopped = true;
    stream.close();
    controller?.abort();
  };
}
