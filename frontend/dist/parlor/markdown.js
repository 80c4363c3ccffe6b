/* Parlor safe Markdown: turns model output into DOM nodes.
 *
 * Why hand-written: model output is untrusted. This renderer never parses HTML. Every piece of text
 * becomes a Text node (createTextNode), every element comes from a fixed allow-list, and links are
 * kept only when their URL parses as http: or https:. Raw "<script>" or "<img onerror>" therefore
 * shows up as literal characters. Supported: paragraphs, line breaks, headings, bold, italic,
 * strikethrough, inline code, fenced code, block quotes, (nested) lists, simple tables, horizontal
 * rules, links and bare URLs. Images are shown as links (no remote loads from model output).
 *
 * render(source) draws a whole text. createStream(container) draws an answer while it streams: blocks
 * that are finished stay in place as they are, only the block still being written is drawn again.
 */

function el(tag, parent) {
  const node = document.createElement(tag);
  if (parent) parent.appendChild(node);
  return node;
}

function text(parent, value) {
  if (value) parent.appendChild(document.createTextNode(value));
}

/** The URL if it is an absolute http(s) URL, otherwise null (javascript:, data:, relative, junk). */
export function safeUrl(raw) {
  try {
    const url = new URL(raw); // no base: relative and scheme-less URLs are rejected
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

function link(parent, href) {
  const a = el("a", parent);
  a.href = href;
  a.target = "_blank";
  a.rel = "noopener noreferrer nofollow ugc";
  return a;
}

// One alternation per inline construct; the earliest match wins, text in between stays text.
const INLINE = new RegExp(
  [
    "(`+)([^`]|[^`][\\s\\S]*?[^`])\\1(?!`)", // 1,2 code span
    '(!?)\\[([^\\]\\n]+)\\]\\(\\s*<?([^\\s()<>]+(?:\\([^\\s()<>]*\\))?)>?(?:\\s+"[^"]*")?\\s*\\)', // 3,4,5 link
    "(\\*\\*|__)(?=\\S)([\\s\\S]*?\\S)\\6", // 6,7 strong
    "(\\*|_)(?=[^\\s*_])([\\s\\S]*?[^\\s*_])\\8(?![\\w*])", // 8,9 emphasis
    "~~(?=\\S)([\\s\\S]*?\\S)~~", // 10 strikethrough
    "<(https?:\\/\\/[^\\s<>]+)>", // 11 autolink
    "(https?:\\/\\/[^\\s<>()\\[\\]]*[^\\s<>()\\[\\].,;:!?'\"])", // 12 bare URL
    "( {2,}|\\\\)?\\n", // 13 line break
  ].join("|"),
  "g",
);

function inline(source, parent) {
  const re = new RegExp(INLINE.source, "g");
  let last = 0;
  for (let m = re.exec(source); m; m = re.exec(source)) {
    const start = m.index;
    // "_" inside a word (snake_case) is not emphasis.
    if ((m[6] === "__" || m[8] === "_") && start > 0 && /\w/.test(source.charAt(start - 1))) {
      re.lastIndex = start + 1;
      continue;
    }
    text(parent, source.slice(last, start));
    last = re.lastIndex;
    if (m[1]) {
      el("code", parent).textContent = m[2].replace(/^ (.*) $/, "$1");
    } else if (m[4] !== undefined) {
      const href = safeUrl(m[5]);
      inline(m[4], href ? link(parent, href) : parent);
    } else if (m[6]) {
      inline(m[7], el("strong", parent));
    } else if (m[8]) {
      inline(m[9], el("em", parent));
    } else if (m[10] !== undefined) {
      inline(m[10], el("del", parent));
    } else if (m[11] || m[12]) {
      const url = m[11] || m[12];
      const safe = safeUrl(url);
      if (safe) link(parent, safe).textContent = url;
      else text(parent, url);
    } else {
      el("br", parent);
    }
  }
  text(parent, source.slice(last));
}

const FENCE = /^ {0,3}(```+|~~~+)\s*([\w+#.-]*)\s*$/;
const HEADING = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const RULE = /^ {0,3}([-*_])(\s*\1){2,}\s*$/;
const QUOTE = /^ {0,3}> ?/;
const ITEM = /^( {0,12})([-*+]|\d{1,9}[.)])\s+(.*)$/;
const TABLE_SEP = /^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$/;

function isBlockStart(line) {
  return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) || ITEM.test(line);
}

function isBlank(line) {
  return !line.trim();
}

function cells(line) {
  return line
    .trim()
    .replace(/^\|/, "")
    .replace(/\|$/, "")
    .split("|")
    .map((c) => c.trim());
}

function blocks(lines, parent, depth) {
  let i = 0;
  while (i < lines.length) {
    if (isBlank(lines[i])) i++;
    else i = block(lines, i, parent, depth);
  }
}

/** Draws the block that starts on the (non-blank) line i into parent; returns the line after it. */
function block(lines, i, parent, depth) {
  const line = lines[i];
  let m = FENCE.exec(line);
  if (m) {
    const fence = m[1];
    const code = [];
    i++;
    while (i < lines.length && lines[i].trim().indexOf(fence) !== 0) code.push(lines[i++]);
    const codeEl = el("code", el("pre", parent));
    if (m[2]) codeEl.setAttribute("data-lang", m[2]);
    codeEl.textContent = code.join("\n");
    return i + 1;
  }
  m = HEADING.exec(line);
  if (m) {
    inline(m[2], el(`h${Math.min(6, m[1].length + 2)}`, parent));
    return i + 1;
  }
  if (RULE.test(line)) {
    el("hr", parent);
    return i + 1;
  }
  if (QUOTE.test(line)) {
    const quoted = [];
    while (i < lines.length && !isBlank(lines[i]) && QUOTE.test(lines[i])) {
      quoted.push(lines[i++].replace(QUOTE, ""));
    }
    if (depth < 8) blocks(quoted, el("blockquote", parent), depth + 1);
    return i;
  }
  if (ITEM.test(line)) return list(lines, i, parent, depth);
  if (line.indexOf("|") !== -1 && i + 1 < lines.length && TABLE_SEP.test(lines[i + 1])) {
    const table = el("table", parent);
    const head = el("tr", el("thead", table));
    for (const c of cells(line)) inline(c, el("th", head));
    const body = el("tbody", table);
    i += 2;
    while (i < lines.length && lines[i].indexOf("|") !== -1 && !isBlank(lines[i])) {
      const row = el("tr", body);
      for (const c of cells(lines[i++])) inline(c, el("td", row));
    }
    return i;
  }
  const para = [line];
  i++;
  while (i < lines.length && !isBlank(lines[i]) && !isBlockStart(lines[i])) para.push(lines[i++]);
  inline(para.join("\n").trim(), el("p", parent));
  return i;
}

function list(lines, i, parent, depth) {
  const first = ITEM.exec(lines[i]);
  const indent = first[1].length;
  const ordered = /\d/.test(first[2]);
  const listEl = el(ordered ? "ol" : "ul", parent);
  if (ordered && parseInt(first[2], 10) !== 1) listEl.start = parseInt(first[2], 10);
  let loose = false;
  while (i < lines.length) {
    const m = ITEM.exec(lines[i]);
    if (!m || m[1].length < indent || m[1].length > indent + 1 || /\d/.test(m[2]) !== ordered) break;
    const content = [m[3]];
    i++;
    // Continuation: indented lines (including nested lists) and lazy paragraph lines.
    while (i < lines.length) {
      const next = lines[i];
      if (isBlank(next)) {
        const after = lines[i + 1];
        const nested = after !== undefined && ITEM.exec(after);
        if (after !== undefined && /^\s{2,}\S/.test(after) && !ITEM.test(after.slice(indent))) {
          content.push("");
          i++;
          continue;
        }
        if (nested && nested[1].length > indent + 1) {
          content.push("");
          i++;
          continue;
        }
        break;
      }
      const im = ITEM.exec(next);
      if (im && im[1].length <= indent + 1) break;
      if (!im && !/^\s/.test(next) && isBlockStart(next)) break;
      content.push(next.replace(new RegExp(`^ {0,${indent + 4}}`), ""));
      i++;
    }
    const li = el("li", listEl);
    if (content.length === 1 || depth >= 8) inline(content.join("\n"), li);
    else {
      blocks(content, li, depth + 1);
      // Tight items: unwrap a lone leading paragraph so lists stay compact.
      if (li.firstChild && li.firstChild.tagName === "P") {
        const p = li.firstChild;
        while (p.firstChild) li.insertBefore(p.firstChild, p);
        li.removeChild(p);
      }
    }
    if (i < lines.length && isBlank(lines[i])) {
      const after = i + 1 < lines.length && ITEM.exec(lines[i + 1]);
      if (after && after[1].length === indent) {
        loose = true; // a blank line between items makes a loose list
        i++;
        continue;
      }
      break;
    }
  }
  if (loose) listEl.className = "loose";
  return i;
}

/** Render `source` (untrusted Markdown) into a fresh DocumentFragment. */
export function render(source) {
  const frag = document.createDocumentFragment();
  blocks(
    String(source || "")
      .replace(/\r\n?/g, "\n")
      .split("\n"),
    frag,
    0,
  );
  return frag;
}

// The lines of `source` and where each starts in it (line ends: \n, \r\n or \r).
function splitLines(source) {
  const lines = [];
  const starts = [];
  const re = /\r\n?|\n/g;
  let start = 0;
  for (let m = re.exec(source); m; m = re.exec(source)) {
    lines.push(source.slice(start, m.index));
    starts.push(start);
    start = re.lastIndex;
  }
  lines.push(source.slice(start));
  starts.push(start);
  return { lines, starts };
}

function skipBlank(lines, i) {
  while (i < lines.length && isBlank(lines[i])) i++;
  return i;
}

// A finished blank line ends any block but a list (a list goes on when the next line is another item or
// indented, and the line being written may still turn into one: "1" → "1. Next").
function endsForGood(lines, end, writing, frag) {
  const list = frag.firstChild && (frag.firstChild.tagName === "UL" || frag.firstChild.tagName === "OL");
  return end < writing && isBlank(lines[end]) && !list;
}

/**
 * Draws a streaming answer into `container`, which it owns: call update(text so far) as often as text
 * arrives and finish(text) once at the end; the result is the same as render(text).
 *
 * Blocks are drawn one by one. A block is final once appending text can no longer change where it ends
 * nor what it is (the next block has started on a finished line, or a finished blank line ends it): its
 * nodes stay, and its text is not parsed again. Only the blocks after the last final one (usually just the
 * one being written) are parsed and drawn again on an update, not the whole answer: a long answer no
 * longer costs time in proportion to the square of its length.
 */
export function createStream(container) {
  let settled = 0; // length of the text whose blocks are final (their nodes stay in the container)
  let open = []; // the nodes of the blocks after it, replaced on every update

  function draw(source, finished) {
    for (const node of open) node.remove();
    open = [];
    const base = settled;
    const rest = String(source || "").slice(base);
    const { lines, starts } = splitLines(rest);
    const writing = lines.length - 1; // the line still being written (it may not be complete)
    let final = true;
    let i = skipBlank(lines, 0);
    while (i < lines.length) {
      const frag = document.createDocumentFragment();
      const end = block(lines, i, frag, 0);
      const next = skipBlank(lines, end);
      final = final && (finished || next < writing || endsForGood(lines, end, writing, frag));
      if (final) settled = base + (end < lines.length ? starts[end] : rest.length);
      else open.push(...frag.childNodes);
      container.appendChild(frag);
      i = next;
    }
  }

  return {
    update: (source) => draw(source, false),
    finish: (source) => draw(source, true),
  };
}
