// An agent's conversation as a chat: text, tool calls paired with their
// results (collapsible), reasoning, and placeholders for images, documents
// and video. Every stored string is shown as text.

import { bytes, h, json, time } from "./dom.js";

/** The size of stored bytes: the SDK's `{"__bytes_encoded__": true,
 * "data": base64}`, a plain string or an array of numbers. */
function sizeOf(source) {
  const data = source?.bytes ?? source;
  if (data && typeof data === "object" && typeof data.data === "string") {
    const text = data.data.replace(/=+$/, "");
    return Math.floor((text.length * 3) / 4);
  }
  if (typeof data === "string" || Array.isArray(data)) return data.length;
  return null;
}

function placeholder(kind, block) {
  const size = sizeOf(block.source);
  const name = block.name ? `“${block.name}”` : null;
  const parts = [name, block.format, size === null ? null : bytes(size)].filter(Boolean);
  return h("div", { class: `placeholder ${kind}`, role: "img", "aria-label": `${kind} ${parts.join(", ")}` },
    h("span", { class: "placeholder-kind" }, kind), " ", parts.join(" · "));
}

function reasoning(block) {
  const text = block.reasoningText?.text;
  const summary = text === undefined ? "Reasoning (redacted)" : "Reasoning";
  return h("details", { class: "reasoning" }, h("summary", {}, summary),
    text === undefined ? placeholder("redacted reasoning", { source: block.redactedContent }) : h("p", { class: "text" }, text));
}

/** The parts of a tool result's content. */
function resultParts(content) {
  return (Array.isArray(content) ? content : []).map((part) => {
    if (typeof part?.text === "string") return h("p", { class: "text" }, part.text);
    if (part?.json !== undefined) return h("pre", { tabindex: 0 }, JSON.stringify(part.json, null, 2));
    if (part?.image) return placeholder("image", part.image);
    if (part?.document) return placeholder("document", part.document);
    return h("pre", { tabindex: 0 }, JSON.stringify(part, null, 2));
  });
}

function status(result) {
  const state = result ? result.status ?? "success" : "no result yet";
  return h("span", { class: `badge ${state === "error" ? "bad" : state === "success" ? "good" : ""}` }, state);
}

/** Tool calls rendered so far on this page, for unique element ids. */
let calls = 0;

/** Renders message records into `container`, page after page: a tool
 * result finds the call it answers on an earlier page as well. */
export class Conversation {
  constructor(container, { onFork } = {}) {
    this.container = container;
    this.onFork = onFork;
    this.calls = new Map();
  }

  /** Appends records (`{message_id, message, redact_message, created_at}`). */
  add(records) {
    const fragment = document.createDocumentFragment();
    for (const record of records) fragment.append(this.message(record));
    this.container.append(fragment);
  }

  message(record) {
    const redacted = record.redact_message !== null && record.redact_message !== undefined;
    const message = redacted ? record.redact_message : record.message;
    const role = typeof message?.role === "string" ? message.role : "unknown";
    const blocks = Array.isArray(message?.content) ? message.content : [];
    const onlyResults = blocks.length > 0 && blocks.every((b) => b?.toolResult);
    const article = h("article", {
      class: `message ${role === "user" || role === "assistant" ? role : "other"}${onlyResults ? " results" : ""}`,
      "aria-label": `Message ${record.message_id}, ${role}`,
      "data-message-id": record.message_id,
    });
    const fork = this.onFork
      ? h("button", { type: "button", class: "quiet", onclick: () => this.onFork(record.message_id),
          "aria-label": `Fork the session keeping messages up to ${record.message_id}` }, "Fork here")
      : null;
    article.append(h("header", {}, h("span", { class: "role" }, role),
      h("span", { class: "id" }, `#${record.message_id}`),
      redacted ? h("span", { class: "badge", title: "the SDK shows this redacted version; the original is kept" }, "redacted") : null,
      record.created_at ? time(record.created_at) : null, fork));
    for (const block of blocks) article.append(this.block(block));
    if (!Array.isArray(message?.content)) article.append(json("Content", message?.content ?? null, true));
    return article;
  }

  block(block) {
    if (typeof block?.text === "string") return h("p", { class: "text" }, block.text);
    if (block?.toolUse) return this.call(block.toolUse);
    if (block?.toolResult) return this.result(block.toolResult);
    if (block?.reasoningContent) return reasoning(block.reasoningContent);
    if (block?.image) return placeholder("image", block.image);
    if (block?.document) return placeholder("document", block.document);
    if (block?.video) return placeholder("video", block.video);
    if (block?.cachePoint) return null;
    return json("Other content", block);
  }

  call(use) {
    calls += 1;
    const id = `tool-call-${calls}`;
    const badge = status(null);
    const details = h("details", { class: "tool", id },
      h("summary", {}, h("span", { class: "tool-name" }, `Tool call · ${use.name ?? "?"}`), " ", badge),
      h("div", { class: "tool-part" }, h("h4", {}, "Input"), h("pre", { tabindex: 0 }, JSON.stringify(use.input ?? null, null, 2))));
    if (typeof use.toolUseId === "string") this.calls.set(use.toolUseId, { details, badge, name: use.name });
    return details;
  }

  result(result) {
    const call = this.calls.get(result.toolUseId);
    const body = h("div", { class: "tool-part" }, h("h4", {}, "Result"), resultParts(result.content));
    if (!call) {
      return h("details", { class: "tool" }, h("summary", {}, h("span", { class: "tool-name" }, "Tool result"), " ", status(result)), body);
    }
    call.details.append(body);
    call.badge.replaceWith((call.badge = status(result)));
    return h("p", { class: "paired" }, h("a", { href: `#${call.details.id}`, onclick: (e) => {
      e.preventDefault();
      call.details.open = true;
      call.details.scrollIntoView({ block: "center" });
      call.details.querySelector("summary").focus();
    } }, `Result of ${call.name ?? "the tool"}`), " — shown with its call");
  }
}
