// The console's pages: the session list, a session, an agent's
// conversation, a snapshot session and the snapshot search.

import { api, download } from "./api.js";
import { Conversation } from "./chat.js";
import { bytes, fill, h, json, link, seg, time } from "./dom.js";

const PAGE_SIZES = [20, 50, 100];
const MESSAGE_PAGE = 100;
const FILTERS = [
  ["id_prefix", "Id starts with", "text"],
  ["session_type", "Type", "text"],
  ["created_after", "Created after", "datetime-local"],
  ["created_before", "Created before", "datetime-local"],
  ["updated_after", "Updated after", "datetime-local"],
  ["updated_before", "Updated before", "datetime-local"],
];

/** `2026-12-05T10:00` (a datetime-local value, the reader's zone) as RFC 3339. */
function rfc3339(local) {
  const date = new Date(local);
  return Number.isNaN(date.getTime()) ? local : date.toISOString();
}

/** An RFC 3339 time as a datetime-local value. */
function localValue(text) {
  const date = new Date(text);
  if (Number.isNaN(date.getTime())) return "";
  const shifted = new Date(date.getTime() - date.getTimezoneOffset() * 60000);
  return shifted.toISOString().slice(0, 16);
}

/** Whether `id` is a valid session id (the API's rules). */
function validId(id) {
  const length = new TextEncoder().encode(id).length;
  return length >= 1 && length <= 255 && id !== "." && id !== ".." && !/[/\\\u0000-\u001f\u007f]/.test(id);
}

function heading(title, ...extra) {
  return h("div", { class: "heading" }, h("h1", { tabindex: -1 }, title), ...extra);
}

function crumbs(...parts) {
  return h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("ol", {}, parts.map((p) => h("li", {}, p))));
}

/** The session list: filters, pages, counts; then the snapshot sessions. */
export async function sessions(ui, params) {
  const query = { page: Number(params.get("page") ?? 1) || 1, page_size: Number(params.get("page_size") ?? 20) || 20 };
  for (const [name] of FILTERS) if (params.get(name)) query[name] = params.get(name);
  const list = await api.sessions(query);
  const pages = Math.max(1, Math.ceil(list.total / list.page_size));
  const go = (changes) => {
    const next = new URLSearchParams(params);
    for (const [name, value] of Object.entries(changes)) {
      if (value === "" || value === null) next.delete(name);
      else next.set(name, value);
    }
    ui.go(`/sessions?${next}`);
  };
  const form = h("form", { class: "filters", role: "search", "aria-label": "Filter sessions", onsubmit: (event) => {
    event.preventDefault();
    const data = new FormData(event.target);
    const changes = { page: "" };
    for (const [name, , type] of FILTERS) {
      const value = String(data.get(name) ?? "").trim();
      changes[name] = value && type === "datetime-local" ? rfc3339(value) : value;
    }
    changes.page_size = String(data.get("page_size"));
    go(changes);
  } },
  FILTERS.map(([name, label, type]) => h("label", {}, h("span", {}, label),
    h("input", { name, type, value: type === "datetime-local" ? localValue(params.get(name) ?? "") : params.get(name) ?? "" }))),
  h("label", {}, h("span", {}, "Per page"), h("select", { name: "page_size" },
    PAGE_SIZES.map((n) => h("option", { value: n, selected: n === list.page_size }, n)))),
  h("div", { class: "actions" }, h("button", { type: "submit" }, "Apply"),
    h("button", { type: "button", class: "quiet", onclick: () => ui.go("/sessions") }, "Clear")));

  const rows = list.sessions.map((s) => h("tr", {},
    h("th", { scope: "row" }, link(`/session/${seg(s.session_id)}`, s.session_id)),
    h("td", {}, s.session_type), h("td", {}, time(s.created_at)), h("td", {}, time(s.updated_at)),
    h("td", { class: "mono" }, summary(s.metadata))));
  const table = list.sessions.length
    ? h("table", { class: "list" }, h("caption", { class: "sr-only" }, "Sessions, newest first"),
        h("thead", {}, h("tr", {}, ["Session", "Type", "Created", "Updated", "Metadata"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, rows))
    : h("p", { class: "empty" }, "No session matches.");
  const pager = h("nav", { class: "pager", "aria-label": "Pages" },
    h("button", { type: "button", disabled: list.page <= 1, onclick: () => go({ page: list.page - 1 }) }, "← Newer"),
    h("span", {}, `Page ${list.page} of ${pages}`),
    h("button", { type: "button", disabled: list.page >= pages, onclick: () => go({ page: list.page + 1 }) }, "Older →"));
  const snapshots = h("section", { class: "snapshots", "aria-labelledby": "snapshot-title" },
    h("h2", { id: "snapshot-title" }, "Snapshot sessions"),
    h("p", { class: "hint" }, "Sessions kept by the SDK's SnapshotSessionManager as snapshots under session/<id>/."));
  fill(ui.main, heading("Sessions", h("span", { class: "count" }, `${list.total} session${list.total === 1 ? "" : "s"}`)),
    form, table, pager, snapshots);
  // The snapshot sessions take a call each: they fill in after the page shows.
  snapshotList(ui, snapshots).catch(ui.problem);
}

/** A short one-line view of an object. */
function summary(value) {
  const text = JSON.stringify(value ?? {});
  return text.length > 80 ? `${text.slice(0, 79)}…` : text;
}

/** The ids under `prefix` one name deep (`session/<id>/…` → `<id>`),
 * `count` at most after `after`: one key per id, skipping the rest. */
async function distinct(prefix, after, count) {
  const found = [];
  let cursor = after;
  while (found.length < count) {
    const { keys } = await api.keys(prefix, cursor, 1);
    if (!keys.length) return { found, more: false };
    const name = keys[0].slice(prefix.length).split("/")[0];
    found.push({ name, key: keys[0] });
    // "0" follows "/": the next key past every key under `prefix + name/`.
    cursor = `${prefix}${name}0`;
  }
  const { keys } = await api.keys(prefix, cursor, 1);
  return { found, more: keys.length > 0, cursor };
}

async function snapshotList(ui, section, after = null) {
  const { found, more, cursor } = await distinct("session/", after, 20);
  if (!found.length && after === null) {
    section.append(h("p", { class: "empty" }, "None."));
    return;
  }
  const list = h("ul", { class: "names" }, found.filter(({ name }) => validId(name))
    .map(({ name }) => h("li", {}, link(`/snapshot/${seg(name)}`, name))));
  section.append(list);
  if (more) {
    const button = h("button", { type: "button", onclick: async () => {
      button.disabled = true;
      try {
        await snapshotList(ui, section, cursor);
        button.remove();
      } catch (error) {
        button.disabled = false;
        ui.problem(error);
      }
    } }, "More snapshot sessions");
    section.append(button);
  }
}

/** Actions on a session: export, fork, delete. */
function actions(ui, id, { snapshot = false } = {}) {
  const exportButton = h("button", { type: "button", onclick: async () => {
    exportButton.disabled = true;
    try {
      const blob = await download(api.exportPath(id));
      const a = h("a", { href: URL.createObjectURL(blob), download: `${id}.session.json` });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 60000);
      ui.notify(`Exported ${id} (${bytes(blob.size)}).`);
    } catch (error) {
      ui.problem(error);
    } finally {
      exportButton.disabled = false;
    }
  } }, "Export");
  const forkButton = h("button", { type: "button", onclick: () => fork(ui, id, {}) }, "Fork");
  const deleteButton = h("button", { type: "button", class: "danger", onclick: async () => {
    const sure = await ui.confirm({
      title: `Delete ${id}?`,
      text: snapshot
        ? "Its snapshots go with it, and a session of this id with agents and messages too. This cannot be undone."
        : "Its agents, messages, multi-agent states and snapshots go with it. This cannot be undone.",
      action: "Delete",
    });
    if (!sure) return;
    try {
      await api.deleteSession(id);
    } catch (error) {
      ui.problem(error);
      return;
    }
    ui.notify(`Deleted ${id}.`);
    ui.go("/sessions");
  } }, "Delete");
  return h("div", { class: "toolbar", role: "group", "aria-label": "Session actions" },
    exportButton, forkButton, deleteButton);
}

/** A fresh id for a fork of `id` that stays within the 255-byte limit. */
function suggestion(id) {
  const suffix = `-fork-${Date.now().toString(36)}`;
  let base = id;
  while (new TextEncoder().encode(base + suffix).length > 255) base = base.slice(0, -1);
  return base + suffix;
}

/** Asks for the new id and forks, whole or cut after a message. */
async function fork(ui, id, cut) {
  const where = cut.agent_id === undefined ? "" : ` keeping ${cut.agent_id}'s messages up to #${cut.up_to_message_id}`;
  const newId = await ui.prompt({
    title: `Fork ${id}${where}`,
    label: "New session id",
    value: suggestion(id),
    action: "Fork",
  });
  if (!newId) return;
  let created;
  try {
    created = await api.fork(id, { session_id: newId, ...cut });
  } catch (error) {
    ui.problem(error);
    return;
  }
  ui.notify(`Forked into ${created.session_id}.`);
  // A session kept only as snapshots forks into one: no row, a blob count.
  const page = created.session_type === undefined ? "snapshot" : "session";
  ui.go(`/${page}/${seg(created.session_id)}`);
}

/** All pages of a paged list (`field` of each answer). */
async function all(fetchPage, field) {
  const items = [];
  for (let page = 1; ; page += 1) {
    const answer = await fetchPage(page);
    items.push(...answer[field]);
    if (items.length >= answer.total || !answer[field].length) return items;
  }
}

/** A session: what it is, its agents and multi-agent states. */
export async function session(ui, id) {
  const [s, agents, multi] = await Promise.all([
    api.session(id),
    all((page) => api.agents(id, page), "agents"),
    all((page) => api.multiAgents(id, page), "multi_agents"),
  ]);
  const facts = h("dl", { class: "facts" },
    h("dt", {}, "Type"), h("dd", {}, s.session_type),
    h("dt", {}, "Created"), h("dd", {}, time(s.created_at)),
    h("dt", {}, "Updated"), h("dd", {}, time(s.updated_at)));
  const agentList = agents.length
    ? h("table", { class: "list" }, h("caption", { class: "sr-only" }, "Agents"),
        h("thead", {}, h("tr", {}, ["Agent", "Created", "Updated"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, agents.map((a) => h("tr", {},
          h("th", { scope: "row" }, link(`/session/${seg(id)}/agent/${seg(a.agent_id)}`, a.agent_id)),
          h("td", {}, time(a.created_at)), h("td", {}, time(a.updated_at))))))
    : h("p", { class: "empty" }, "No agents.");
  fill(ui.main, crumbs(link("/sessions", "Sessions"), id), heading(id, actions(ui, id)), facts,
    json("Metadata", s.metadata),
    h("section", { "aria-labelledby": "agents-title" }, h("h2", { id: "agents-title" }, `Agents (${agents.length})`), agentList),
    h("section", { "aria-labelledby": "multi-title" }, h("h2", { id: "multi-title" }, `Multi-agent states (${multi.length})`),
      multi.length ? multi.map((m) => json(m.multi_agent_id, m.state)) : h("p", { class: "empty" }, "None.")));
}

/** An agent: its states and its conversation, a page at a time. */
export async function agent(ui, id, agentId, params) {
  const newest = params.get("from") === "end";
  const [a, first] = await Promise.all([
    api.agent(id, agentId),
    newest ? api.newest(id, agentId, undefined, MESSAGE_PAGE) : api.messages(id, agentId, 0, MESSAGE_PAGE),
  ]);
  const chat = h("div", { class: "chat", role: "feed", "aria-label": "Conversation", "aria-busy": "false" });
  const onFork = (messageId) => fork(ui, id, { agent_id: agentId, up_to_message_id: messageId });
  let conversation = new Conversation(chat, { onFork });
  const total = first.total;
  const shown = h("span", { class: "count", role: "status" });
  const more = h("button", { type: "button", class: "more" }, "Load more");
  const here = `/session/${seg(id)}/agent/${seg(agentId)}`;
  const jump = newest ? link(here, "From the first message") : link(`${here}?from=end`, "Jump to the newest");
  // From the start, pages are appended; from the end, earlier pages are
  // put before what is shown, which is drawn again so that tool results
  // still find their calls.
  const records = [];
  let next = first.next_offset;
  const count = () => {
    shown.textContent = `${records.length} of ${total} message${total === 1 ? "" : "s"}`;
    const left = total - records.length;
    more.hidden = newest ? left <= 0 : next === null;
    more.textContent = newest ? `Load ${Math.min(MESSAGE_PAGE, left)} earlier` : `Load ${Math.min(MESSAGE_PAGE, left)} more`;
  };
  const show = (page) => {
    if (newest) {
      records.unshift(...[...page.messages].reverse());
      const before = document.documentElement.scrollHeight;
      chat.replaceChildren();
      conversation = new Conversation(chat, { onFork });
      conversation.add(records);
      // Keep the reader where they were: the new messages are above.
      if (chat.isConnected) window.scrollBy(0, document.documentElement.scrollHeight - before);
    } else {
      records.push(...page.messages);
      conversation.add(page.messages);
      next = page.next_offset;
    }
    count();
  };
  more.addEventListener("click", async () => {
    more.disabled = true;
    chat.setAttribute("aria-busy", "true");
    try {
      const page = newest
        ? await api.newest(id, agentId, records[0]?.message_id, MESSAGE_PAGE)
        : await api.messages(id, agentId, next, MESSAGE_PAGE);
      show(page);
    } catch (error) {
      ui.problem(error);
    } finally {
      more.disabled = false;
      chat.setAttribute("aria-busy", "false");
    }
  });
  fill(ui.main,
    crumbs(link("/sessions", "Sessions"), link(`/session/${seg(id)}`, id), agentId),
    heading(agentId, h("div", { class: "toolbar" }, shown, jump)),
    h("div", { class: "states" },
      json("Agent state", a.state), json("Conversation-manager state", a.conversation_manager_state),
      json("Internal state", a._internal_state)),
    h("h2", { class: "sr-only" }, "Conversation"),
    newest ? [more, chat] : [chat, more]);
  show(first);
  // The newest message is what the reader came for: bring it into view
  // once the page is shown.
  if (newest) setTimeout(() => chat.lastElementChild?.scrollIntoView({ block: "end" }));
}

/** The scopes of a snapshot session: `[{scope, id}]`. */
async function scopes(id) {
  const prefix = `session/${id}/scopes/`;
  const found = [];
  for (const scope of ["agent", "multiAgent"]) {
    const { found: ids } = await distinct(`${prefix}${scope}/`, null, 1000);
    found.push(...ids.map(({ name }) => ({ scope, id: name })));
  }
  return found;
}

/** A snapshot session: the latest snapshot of each agent and orchestrator. */
export async function snapshot(ui, id) {
  const found = await scopes(id);
  if (!found.length) {
    const error = new Error(`No snapshots are kept under session/${id}/.`);
    error.status = 404;
    throw error;
  }
  const parts = await Promise.all(found.map(async ({ scope, id: scopeId }) => {
    const key = `session/${id}/scopes/${scope}/${scopeId}/snapshots/snapshot_latest.json`;
    let snap;
    try {
      snap = JSON.parse(await api.blob(key));
    } catch (error) {
      return h("section", { class: "scope" }, h("h2", {}, `${scope} ${scopeId}`),
        h("p", { class: "error" }, `No readable latest snapshot (${error.message}).`));
    }
    // Python writes snake_case envelopes, TypeScript camelCase.
    const data = snap?.data ?? {};
    const taken = snap?.created_at ?? snap?.createdAt;
    const appData = snap?.app_data ?? snap?.appData ?? {};
    const chat = h("div", { class: "chat", role: "feed", "aria-label": `Conversation of ${scopeId}` });
    if (Array.isArray(data.messages)) {
      new Conversation(chat).add(data.messages.map((message, index) => ({ message_id: index, message, redact_message: null })));
    }
    const others = Object.entries(data).filter(([name]) => name !== "messages");
    return h("section", { class: "scope", "aria-label": `${scope} ${scopeId}` },
      h("h2", {}, scope === "agent" ? `Agent ${scopeId}` : `Multi-agent ${scopeId}`),
      h("p", { class: "hint" }, "Latest snapshot, taken ", taken ? time(taken) : "at an unknown time",
        Array.isArray(data.messages) ? ` · ${data.messages.length} messages` : ""),
      others.map(([name, value]) => json(name, value)), json("App data", appData), chat);
  }));
  fill(ui.main, crumbs(link("/sessions", "Sessions"), id), heading(id, validId(id) ? actions(ui, id, { snapshot: true }) : null),
    h("p", { class: "hint" }, "A snapshot session: the SDK's SnapshotSessionManager keeps it as snapshots, not as rows."),
    parts);
}

/** Full-text search across stored snapshots. */
export async function search(ui, params) {
  const q = params.get("q") ?? "";
  const form = h("form", { role: "search", class: "filters", "aria-label": "Search snapshots", onsubmit: (event) => {
    event.preventDefault();
    const value = new FormData(event.target).get("q");
    ui.go(`/search?${new URLSearchParams({ q: String(value ?? "") })}`);
  } }, h("label", {}, h("span", {}, "Words"), h("input", { name: "q", type: "search", value: q, required: true })),
  h("div", { class: "actions" }, h("button", { type: "submit" }, "Search")));
  fill(ui.main, heading("Search snapshots"), form);
  if (!q) return;
  const { results } = await api.search(q, "session/", 50);
  ui.main.append(results.length
    ? h("ol", { class: "results", "aria-label": "Results, best first" }, results.map(({ key, score }) => {
        const session = key.startsWith("session/") ? key.slice(8).split("/")[0] : null;
        return h("li", {}, session ? link(`/snapshot/${seg(session)}`, session) : null,
          h("span", { class: "mono" }, key), h("span", { class: "score" }, `score ${score.toFixed(3)}`));
      }))
    : h("p", { class: "empty" }, "Nothing found."));
}
