// The console's shell: routes (the part of the address after `#`), the
// API key dialog, confirmations, notices and errors.

import { ApiError, key } from "./api.js";
import { fill, h } from "./dom.js";
import * as views from "./views.js";

const main = document.getElementById("main");
const notice = document.getElementById("notice");
const keyDialog = document.getElementById("key-dialog");
const keyForm = document.getElementById("key-form");
const keyButton = document.getElementById("key-button");
const askDialog = document.getElementById("ask-dialog");

/** What the pages use of the shell. */
const ui = {
  main,
  go: (route) => {
    location.hash = route;
  },
  // A notice outlives the one page change that usually follows it.
  notify: (text) => {
    notice.className = "";
    notice.setAttribute("role", "status");
    notice.textContent = text;
    notice.hidden = false;
    notice.dataset.fresh = "yes";
  },
  fail: (error) => showError(error),
  // A failed action: said above the page, which stays as it was.
  problem: (error) => {
    if (error instanceof ApiError && error.status === 401) {
      showError(error);
      return;
    }
    notice.textContent = `${describe(error)}${error.requestId ? ` (request id ${error.requestId})` : ""}`;
    notice.className = "bad";
    notice.setAttribute("role", "alert");
    notice.hidden = false;
  },
  confirm: ({ title, text, action }) => ask({ title, text, action }),
  prompt: ({ title, label, value, action }) => ask({ title, label, value, action }),
};

/** A modal question; resolves to `true`/the entered text, or `null`. */
function ask({ title, text, label, value, action }) {
  const input = label ? h("input", { name: "value", required: true, value: value ?? "", autocomplete: "off" }) : null;
  const form = h("form", { method: "dialog" },
    h("h2", { id: "ask-title" }, title),
    text ? h("p", {}, text) : null,
    input ? h("label", {}, h("span", {}, label), input) : null,
    h("div", { class: "actions" },
      h("button", { value: "cancel", type: "button", class: "quiet", onclick: () => askDialog.close("cancel") }, "Cancel"),
      h("button", { value: "ok", class: action === "Delete" ? "danger" : "" }, action)));
  fill(askDialog, form);
  askDialog.setAttribute("aria-labelledby", "ask-title");
  askDialog.returnValue = "";
  askDialog.showModal();
  (input ?? form.querySelector("button.quiet")).focus();
  return new Promise((resolve) => {
    askDialog.addEventListener("close", () => {
      if (askDialog.returnValue !== "ok") resolve(null);
      else resolve(input ? input.value.trim() || null : true);
    }, { once: true });
  });
}

/** Shows a failure where the page would be; 401 asks for a key. */
function showError(error) {
  if (error instanceof ApiError && error.status === 401) {
    askForKey(key.get() ? "That API key was refused (401). Check it and try again." : null);
    return;
  }
  const status = error.status ? `${error.status} ${error.kind ?? ""}`.trim() : "Error";
  fill(main, h("div", { class: "failure", role: "alert" },
    h("h1", { tabindex: -1 }, status),
    h("p", {}, error.message),
    error.requestId ? h("p", { class: "hint" }, `Request id ${error.requestId}`) : null,
    h("p", {}, h("a", { href: "#/sessions" }, "Back to the sessions"))));
  main.querySelector("h1").focus();
}

/** An error in one line: `409 ConflictError: …`. */
function describe(error) {
  const status = error.status ? `${error.status} ${error.kind ?? ""}`.trim() : "Error";
  return `${status}: ${error.message}`;
}

function askForKey(problem) {
  const message = document.getElementById("key-problem");
  message.textContent = problem ?? "";
  message.hidden = !problem;
  keyForm.reset();
  if (!keyDialog.open) keyDialog.showModal();
}

keyForm.addEventListener("submit", (event) => {
  const value = new FormData(keyForm).get("key");
  if (event.submitter?.value === "cancel") return;
  if (typeof value === "string" && value.trim()) key.set(value.trim());
  updateKeyButton();
  route();
});

keyButton.addEventListener("click", () => {
  if (key.get()) {
    key.forget();
    updateKeyButton();
    ui.notify("The API key is forgotten for this tab.");
    route();
  } else {
    askForKey(null);
  }
});

function updateKeyButton() {
  keyButton.textContent = key.get() ? "Forget API key" : "Enter API key";
}

/** Which page change is the latest: a slow page must not replace a newer one. */
let generation = 0;

/** Renders the page the address names. */
async function route() {
  generation += 1;
  const mine = generation;
  const started = performance.now();
  const hash = location.hash.startsWith("#/") ? location.hash : "#/sessions";
  const [path, query] = hash.slice(1).split("?");
  const params = new URLSearchParams(query ?? "");
  main.setAttribute("aria-busy", "true");
  const page = document.createElement("div");
  const view = { ...ui, main: page };
  try {
    const parts = path.split("/").slice(1).map(decodeURIComponent);
    if (parts.slice(1).some((part) => part === "")) throw Object.assign(new Error("That address names no page."), { status: 404 });
    if (parts[0] === "session" && parts.length === 2) await views.session(view, parts[1]);
    else if (parts[0] === "session" && parts[2] === "agent" && parts.length === 4) await views.agent(view, parts[1], parts[3], params);
    else if (parts[0] === "snapshot" && parts.length === 2) await views.snapshot(view, parts[1]);
    else if (parts[0] === "search") await views.search(view, params);
    else await views.sessions(view, params);
    if (mine !== generation) return;
    main.replaceChildren(...page.childNodes);
    performance.measure("page-rendered", { start: started });
    document.title = `${main.querySelector("h1")?.textContent ?? "Console"} · Session Backend`;
    main.querySelector("h1")?.focus({ preventScroll: true });
  } catch (error) {
    if (mine === generation) showError(error);
  } finally {
    if (mine === generation) main.setAttribute("aria-busy", "false");
  }
}

window.addEventListener("hashchange", () => {
  // `#main` (the skip link) and the like are places on the page, not pages.
  if (location.hash && !location.hash.startsWith("#/")) return;
  if (notice.dataset.fresh) delete notice.dataset.fresh;
  else notice.hidden = true;
  route();
});
notice.addEventListener("click", () => {
  notice.hidden = true;
});
// The skip link moves focus; it does not change the page.
document.querySelector(".skip").addEventListener("click", (event) => {
  event.preventDefault();
  main.focus();
});
updateKeyButton();
route();
