// Building the page from data. Stored text only ever becomes text nodes
// and attribute values, never markup: nothing here parses HTML.

/** An element: `h("a", {href: "#/"}, "text", child)`. `on*` attributes
 * become listeners, `class` the class name; `null`, `false` and
 * `undefined` children and attributes are skipped. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

/** Appends children (nodes, strings, arrays of them) as nodes and text. */
export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replaces everything in `el` with `children`. */
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** Bytes in words: `1.4 MB`. */
export function bytes(n) {
  if (n < 1000) return `${n} B`;
  const units = ["kB", "MB", "GB", "TB"];
  let value = n;
  let unit = -1;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

/** An RFC 3339 time as a `<time>` in the reader's locale. */
export function time(text) {
  const date = new Date(text);
  const shown = Number.isNaN(date.getTime()) ? text : dateFormat.format(date);
  return h("time", { datetime: text, title: text }, shown);
}

/** A JSON value, pretty-printed, in a collapsible block. */
export function json(label, value, open = false) {
  return h(
    "details",
    { class: "json", open },
    h("summary", {}, label),
    h("pre", { tabindex: 0 }, JSON.stringify(value, null, 2)),
  );
}

/** An `<a>` to a route of the console. */
export function link(route, ...children) {
  return h("a", { href: `#${route}` }, ...children);
}

/** A path segment of a route, escaped. */
export const seg = encodeURIComponent;
