// Export a trial's design: ask the API, show what the format cannot express (the lossy-mapping
// report) and a preview, then save the file from a Blob on the user's say-so.

import { jobs } from "./api.js";
import { downloadText, h, replace, toast } from "./dom.js";

export const FORMATS = [
  ["native", "native JSON"],
  ["decilm", "DeciLM config"],
  ["puzzletron", "Puzzletron"],
];

function dialogEl() {
  let dialog = document.getElementById("export-dialog");
  if (!dialog) {
    dialog = h("dialog", { id: "export-dialog", class: "export-dialog", "aria-labelledby": "export-title" });
    document.body.append(dialog);
  }
  return dialog;
}

function lossyTable(items) {
  if (!items.length) {
    return h("p", { class: "lossless" }, "✓ Lossless: every knob of this design maps to the format.");
  }
  return h(
    "div",
    {},
    h("p", { class: "lossy-warning" }, `⚠ ${items.length} knob(s) cannot be expressed in this format:`),
    h(
      "div",
      { class: "table-scroll lossy-scroll" },
      h(
        "table",
        { class: "lossy" },
        h("thead", {}, h("tr", {}, ["layer", "knob", "value", "what happens"].map((c) => h("th", { scope: "col" }, c)))),
        h(
          "tbody",
          {},
          items.map((item) =>
            h(
              "tr",
              {},
              h("td", {}, item.layer === null || item.layer === undefined ? "all" : String(item.layer)),
              h("td", {}, String(item.knob ?? "")),
              h("td", {}, typeof item.value === "object" ? JSON.stringify(item.value) : String(item.value ?? "")),
              h("td", {}, String(item.reason ?? "")),
            ),
          ),
        ),
      ),
    ),
  );
}

/** Fetch the export of trial `number` in `format` and open the report dialog. */
export async function openExport(jobId, number, format) {
  const dialog = dialogEl();
  let result;
  try {
    result = await jobs.exportTrial(jobId, number, format);
  } catch (error) {
    toast(`Export failed: ${error.message}`, "error");
    return;
  }
  const lossy = Array.isArray(result.lossy) ? result.lossy : [];
  const preview = String(result.content).split("\n").slice(0, 40).join("\n");
  const close = () => dialog.close();
  const download = h(
    "button",
    {
      type: "button",
      class: "primary",
      id: "export-download",
      onclick: () => {
        const type = result.filename.endsWith(".json") ? "application/json" : "text/plain";
        downloadText(result.content, result.filename, type);
        close();
      },
    },
    `Download ${result.filename}`,
  );
  replace(
    dialog,
    h("h2", { id: "export-title" }, `Export trial #${number} as ${format}`),
    lossyTable(lossy),
    h("details", {}, h("summary", {}, "Preview"), h("pre", { class: "preview" }, preview)),
    h(
      "div",
      { class: "dialog-actions" },
      download,
      h("button", { type: "button", class: "secondary", onclick: close }, "Cancel"),
    ),
  );
  dialog.dataset.format = format;
  dialog.dataset.lossy = String(lossy.length);
  dialog.showModal();
  download.focus();
}
