// Entry point: token handling and a hash router (#/jobs, #/jobs/<id>), so the service only has
// to serve "/" and the static files.

import { clearToken, getToken, jobs, setToken, takeTokenFromUrl } from "./api.js";
import { h, replace } from "./dom.js";
import { mountJobPage } from "./job_page.js";
import { mountJobsPage } from "./jobs_page.js";

const main = document.getElementById("main");
let unmount = null;

function renderTokenStatus() {
  const box = document.getElementById("token-status");
  if (!getToken()) {
    replace(box);
    return;
  }
  replace(
    box,
    h(
      "button",
      {
        type: "button",
        class: "secondary small",
        id: "sign-out",
        onclick: () => {
          clearToken();
          route();
        },
      },
      "Forget token",
    ),
  );
}

function tokenForm(message) {
  const field = h("input", {
    id: "token-input",
    type: "password",
    autocomplete: "off",
    required: true,
    "aria-describedby": "token-help",
  });
  const error = h("p", { class: "field-error", role: "alert", id: "token-error" }, message || "");
  const form = h(
    "form",
    {
      class: "card token-card",
      id: "token-form",
      onsubmit: async (event) => {
        event.preventDefault();
        setToken(field.value);
        try {
          await jobs.list();
          route();
        } catch (err) {
          clearToken();
          error.textContent = `The server refused this token (${err.message}).`;
          field.focus();
        }
      },
    },
    h("h1", {}, "Sign in"),
    h("label", { for: "token-input" }, "API token"),
    field,
    h(
      "p",
      { class: "muted small", id: "token-help" },
      "Create one with `ffnas token create NAME`; `ffnas up` prints a link that signs in. ",
      "The token is kept in this browser's local storage.",
    ),
    error,
    h("button", { type: "submit", class: "primary" }, "Sign in"),
  );
  replace(main, form);
  field.focus();
}

function route() {
  unmount?.();
  unmount = null;
  renderTokenStatus();
  if (!getToken()) {
    tokenForm();
    return;
  }
  const hash = window.location.hash || "#/jobs";
  const match = hash.match(/^#\/jobs\/([^/?#]+)/);
  if (match) {
    document.title = "ffnas · job";
    unmount = mountJobPage(main, decodeURIComponent(match[1]));
  } else {
    document.title = "ffnas · jobs";
    unmount = mountJobsPage(main);
  }
}

window.addEventListener("ffnas:unauthorized", () => {
  if (document.getElementById("token-form")) return;
  unmount?.();
  unmount = null;
  clearToken();
  renderTokenStatus();
  tokenForm("The server did not accept the stored token; enter another.");
});
window.addEventListener("hashchange", () => {
  route();
  main.focus({ preventScroll: true });
});

takeTokenFromUrl();
route();
