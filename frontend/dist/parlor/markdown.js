/* Parlor safe Markdown: turns model output into DOM nodes.
 *
 * Why hand-written: model output is untrusted. This renderer never parses HTML. Every piece of text
 * becomes a Text node (createTextNode), every element comes from a fixed allow-list, and links are
 * kept only when their URL parses as http: or https:. Raw "<script>" or "<img onerror>" therefore
 * shows up as literal characters. Supported: paragraphs, line breaks, headings, bold, italic,
 * strikethrough, inline code, fenced code, block quotes, (nested) lists, simple tables, horizontal
 * rules, links and bare URLs. Images are shown as links (no remote loads from model output).
 */
(function (root) {
  "use strict";

  function el(tag, parent) {
    var node = document.createElement(tag);
    if (parent) parent.appendChild(node);
    return node;
  }

  function text(parent, value) {
    if (value) parent.appendChild(document.createTextNode(value));
  }

  function safeUrl(raw) {
    try {
      var url = new URL(raw); // no base: relative and scheme-less URLs are rejected
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch (e) {
      return null;
    }
  }

  function link(parent, href) {
    var a = el("a", parent);
    a.href = href;
    a.target = "_blank";
    a.rel = "noopener noreferrer nofollow ugc";
    return a;
  }

  // One alternation per inline construct; the earliest match wins, text in between stays text.
  var INLINE = new RegExp(
    [
      "(`+)([^`]|[^`][\\s\\S]*?[^`])\\1(?!`)", // 1,2 code span
      "(!?)\\[([^\\]\\n]+)\\]\\(\\s*<?([^\\s()<>]+(?:\\([^\\s()<>]*\\))?)>?(?:\\s+\"[^\"]*\")?\\s*\\)", // 3,4,5 link
      "(\\*\\*|__)(?=\\S)([\\s\\S]*?\\S)\\6", // 6,7 strong
      "(\\*|_)(?=[^\\s*_])([\\s\\S]*?[^\\s*_])\\8(?![\\w*])", // 8,9 emphasis
      "~~(?=\\S)([\\s\\S]*?\\S)~~", // 10 strikethrough
      "<(https?:\\/\\/[^\\s<>]+)>", // 11 autolink
      "(https?:\\/\\/[^\\s<>()\\[\\]]*[^\\s<>()\\[\\].,;:!?'\"])", // 12 bare URL
      "( {2,}|\\\\)?\\n", // 13 line break
    ].join("|"),
    "g"
  );

  function inline(source, parent) {
    var re = new RegExp(INLINE.source, "g");
    var last = 0;
    var m;
    while ((m = re.exec(source))) {
      var start = m.index;
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
        var href = safeUrl(m[5]);
        if (href) inline(m[4], link(parent, href));
        else inline(m[4], parent);
      } else if (m[6]) {
        inline(m[7], el("strong", parent));
      } else if (m[8]) {
        inline(m[9], el("em", parent));
      } else if (m[10] !== undefined) {
        inline(m[10], el("del", parent));
      } else if (m[11] || m[12]) {
        var url = m[11] || m[12];
        var safe = safeUrl(url);
        if (safe) link(parent, safe).textContent = url;
        else text(parent, url);
      } else {
        el("br", parent);
      }
    }
    text(parent, source.slice(last));
  }

  var FENCE = /^ {0,3}(```+|~~~+)\s*([\w+#.-]*)\s*$/;
  var HEADING = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
  var RULE = /^ {0,3}([-*_])(\s*\1){2,}\s*$/;
  var QUOTE = /^ {0,3}> ?/;
  var ITEM = /^( {0,12})([-*+]|\d{1,9}[.)])\s+(.*)$/;
  var TABLE_SEP = /^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$/;

  function isBlockStart(line) {
    return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) || ITEM.test(line);
  }

  function cells(line) {
    return line.trim().replace(/^\|/, "").replace(/\|$/, "").split("|").map(function (c) {
      return c.trim();
    });
  }

  function blocks(lines, parent, depth) {
    var i = 0;
    var m;
    while (i < lines.length) {
      var line = lines[i];
      if (!line.trim()) {
        i++;
        continue;
      }
      if ((m = FENCE.exec(line))) {
        var fence = m[1];
        var code = [];
        i++;
        while (i < lines.length && lines[i].trim().indexOf(fence) !== 0) code.push(lines[i++]);
        i++;
        var pre = el("pre", parent);
        var codeEl = el("code", pre);
        if (m[2]) codeEl.setAttribute("data-lang", m[2]);
        codeEl.textContent = code.join("\n");
        continue;
      }
      if ((m = HEADING.exec(line))) {
        inline(m[2], el("h" + Math.min(6, m[1].length + 2), parent));
        i++;
        continue;
      }
      if (RULE.test(line)) {
        el("hr", parent);
        i++;
        continue;
      }
      if (QUOTE.test(line)) {
        var quoted = [];
        while (i < lines.length && lines[i].trim() && QUOTE.test(lines[i])) {
          quoted.push(lines[i++].replace(QUOTE, ""));
        }
        if (depth < 8) blocks(quoted, el("blockquote", parent), depth + 1);
        continue;
      }
      if ((m = ITEM.exec(line))) {
        i = list(lines, i, parent, depth);
        continue;
      }
      if (line.indexOf("|") !== -1 && i + 1 < lines.length && TABLE_SEP.test(lines[i + 1])) {
        var table = el("table", parent);
        var head = el("tr", el("thead", table));
        cells(line).forEach(function (c) {
          inline(c, el("th", head));
        });
        var body = el("tbody", table);
        i += 2;
        while (i < lines.length && lines[i].indexOf("|") !== -1 && lines[i].trim()) {
          var row = el("tr", body);
          cells(lines[i++]).forEach(function (c) {
            inline(c, el("td", row));
          });
        }
        continue;
      }
      var para = [line];
      i++;
      while (i < lines.length && lines[i].trim() && !isBlockStart(lines[i])) para.push(lines[i++]);
      inline(para.join("\n").trim(), el("p", parent));
    }
  }

  function list(lines, i, parent, depth) {
    var first = ITEM.exec(lines[i]);
    var indent = first[1].length;
    var ordered = /\d/.test(first[2]);
    var listEl = el(ordered ? "ol" : "ul", parent);
    if (ordered && parseInt(first[2], 10) !== 1) listEl.start = parseInt(first[2], 10);
    var blank = false;
    while (i < lines.length) {
      var m = ITEM.exec(lines[i]);
      if (!m || m[1].length < indent || m[1].length > indent + 1 || /\d/.test(m[2]) !== ordered) break;
      var content = [m[3]];
      i++;
      // Continuation: indented lines (including nested lists) and lazy paragraph lines.
      while (i < lines.length) {
        var next = lines[i];
        if (!next.trim()) {
          if (i + 1 < lines.length && /^\s{2,}\S/.test(lines[i + 1]) && !ITEM.test(lines[i + 1].slice(indent))) {
            content.push("");
            i++;
            continue;
          }
          if (i + 1 < lines.length && ITEM.test(lines[i + 1])) {
            var nm = ITEM.exec(lines[i + 1]);
            if (nm[1].length > indent + 1) {
              content.push("");
              i++;
              continue;
            }
          }
          break;
        }
        var im = ITEM.exec(next);
        if (im && im[1].length <= indent + 1) break;
        if (!im && !/^\s/.test(next) && isBlockStart(next)) break;
        content.push(next.replace(new RegExp("^ {0," + (indent + 4) + "}"), ""));
        i++;
      }
      var li = el("li", listEl);
      if (content.length === 1 || depth >= 8) inline(content.join("\n"), li);
      else {
        blocks(content, li, depth + 1);
        // Tight items: unwrap a lone leading paragraph so lists stay compact.
        if (li.firstChild && li.firstChild.tagName === "P") {
          var p = li.firstChild;
          while (p.firstChild) li.insertBefore(p.firstChild, p);
          li.removeChild(p);
        }
      }
      if (i < lines.length && !lines[i].trim()) {
        if (i + 1 < lines.length && ITEM.test(lines[i + 1]) && ITEM.exec(lines[i + 1])[1].length === indent) {
          blank = true; // a blank line between items makes a loose list
          i++;
          continue;
        }
        break;
      }
    }
    if (blank) listEl.className = "loose";
    return i;
  }

  /** Render `source` (untrusted Markdown) into a fresh DocumentFragment. */
  function render(source) {
    var frag = document.createDocumentFragment();
    blocks(String(source || "").replace(/\r\n?/g, "\n").split("\n"), frag, 0);
    return frag;
  }

  root.ParlorMarkdown = { render: render, safeUrl: safeUrl };
})(window);
