// The jobs page: every job of this token, stop/resume, and the new-job form.

import { jobs } from "./api.js";
import { h, replace, toast } from "./dom.js";
import { fmtDate, fmtMetric, metricLabel } from "./format.js";
import { renderJobForm } from "./job_form.js";
import { TERMINAL_JOB, strategyOf } from "./jobmodel.js";
import { progressBar } from "./progress.js";

// While a job is queued or running the list refreshes this often (one small GET; the job page
// itself is pushed over the event stream and never polls).
const REFRESH_MS = 5000;

function bestText(job) {
  if (!job.best || typeof job.best !== "object") return "–";
  return Object.entries(job.best)
    .filter(([, v]) => typeof v === "number")
    .map(([k, v]) => `${metricLabel(k)} ${fmtMetric(k, v)}`)
    .join(" · ") || "–";
}

function actionButtons(job, reload) {
  const run = async (verb, call) => {
    try {
      await call(job.id);
      toast(`${verb} requested for ${job.name}`);
    } catch (error) {
      toast(`${verb} failed: ${error.message}`, "error");
    }
    reload();
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

function jobRow(job, reload) {
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
    h("td", { class: "row-actions" }, actionButtons(job, reload)),
  );
}

/** Mount the jobs page into `main`; returns a cleanup function. */
export function mountJobsPage(main) {
  const list = h("div", { id: "job-list", "aria-live": "polite" }, h("p", { class: "muted" }, "Loading jobs…"));
  const formBox = h("section", { class: "card", "aria-labelledby": "new-job-title" });
  let timer = null;
  let stopped = false;
  let controller = null;

  async function load() {
    clearTimeout(timer);
    controller?.abort();
    controller = new AbortController();
    try {
      const page = await jobs.list(controller.signal);
      if (stopped) return;
      const data = (page && page.data) || [];
      replace(
        list,
        data.length
          ? h(
              "div",
              { class: "table-scroll" },
              h(
                "table",
                { class: "jobs", id: "jobs-table" },
                h("caption", { class: "visually-hidden" }, "Jobs"),
                h("thead", {}, h("tr", {}, ["job", "status", "progress", "target", "evaluator / strategy", "best", "started", ""].map((c) => h("th", { scope: "col" }, c)))),
                h("tbody", {}, data.map((job) => jobRow(job, load))),
              ),
            )
          : h("p", { class: "muted" }, "No jobs yet: submit one below, or run `ffnas submit job.yaml`."),
      );
      list.dataset.count = String(data.length);
      if (data.some((j) => !TERMINAL_JOB.has(j.status)) && !document.hidden) {
        timer = setTimeout(load, REFRESH_MS);
      }
    } catch (error) {
      if (error.name === "AbortError" || stopped) return;
      replace(list, h("p", { class: "error-text" }, `Could not load jobs: ${error.message}`));
    }
  }

  const onVisible = () => {
    if (!document.hidden) load();
  };
  document.addEventListener("visibilitychange", onVisible);

  replace(
    main,
    h("div", { class: "page-head" }, h("h1", {}, "Search jobs"), h("button", { type: "button", class: "secondary", onclick: load }, "Refresh")),
    h("section", { class: "card", "aria-label": "Job list" }, list),
    formBox,
  );
  renderJobForm(formBox, {
    onCreated: (job) => {
      toast(`Job ${job.name} submitted`);
      load();
    },
  });
  load();
  return () => {
    stopped = true;
    clearTimeout(timer);
    controller?.abort();
    document.removeEventListener("visibilitychange", onVisible);
  };
}
