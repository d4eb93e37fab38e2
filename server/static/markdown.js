// Safe Markdown subset for model output and retrieved text: everything is HTML-escaped first, then a
// few constructs are recognised (paragraphs, headings, lists — also after a lead-in line, numbering kept
// across blank lines —, **bold**, *italic*, `code`, links, [n] citation markers). No raw HTML from the
// input can reach the page. Links are clickable only to this site (a cited source); a link to anywhere
// else shows its address as text, since a model may invent one.
// Figures the grounding check could not find in the evidence are wrapped in <mark class="unsupported">.
// Hand-written because the page must run with no build step and no network (no CDN, no npm on a fresh machine).
export function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

const LIST_LINE = /^\s*([-*]|\d+\.)\s+/;

function markFigures(html, figures) {
  // longest first, so "$12.15" is marked whole rather than its "$12"
  for (const fig of [...(figures || [])].sort((a, b) => b.length - a.length)) {
    const escaped = escapeHtml(fig).replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    html = html.replace(new RegExp(`(?<![\\w.,$>])${escaped}(?![\\w%])`, "g"),
      (m) => `<mark class="unsupported" title="Not found in the sources or your records">${m}</mark>`);
  }
  return html;
}

function inline(text, figures) {
  let out = escapeHtml(text);
  out = out.replace(/`([^`]+)`/g, "<code>$1</code>");
  out = out.replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>");
  out = out.replace(/(^|[^*])\*([^*\s][^*]*)\*/g, "$1<em>$2</em>");
  out = out.replace(/\[([^\]]+)\]\((https?:\/\/[^\s)"'<>]+|\/[^\s)"'<>]*)\)/g, (m, label, url) => {
    // resolve it as the browser would: "//host/p", "/\\host" and "/\\/host" leave the site although they start with "/"
    let own = false;
    try { own = new URL(url.replace(/&amp;/g, "&"), location.href).origin === location.origin; } catch { own = false; }
    return own ? `<a href="${url}" target="_blank" rel="noopener noreferrer">${label}</a>`
      : `${label} <span class="ext-url">(${url})</span>`;
  });
  // citation markers and figure marks only in text, never inside a tag's attributes (an href)
  return out.split(/(<[^>]*>)/).map((part) => (part.startsWith("<") ? part :
    markFigures(part.replace(/\[(\d{1,2})\]/g, "\u0000$1\u0001"), figures)
      .replace(/\u0000(\d{1,2})\u0001/g, '<sup class="cite" data-cite="$1">[$1]</sup>'))).join("");
}

function list(lines, figures) {
  const first = /^\s*(\d+)\./.exec(lines[0]);
  const items = lines.map((l) => `<li>${inline(l.replace(LIST_LINE, ""), figures)}</li>`).join("");
  // "2." after a blank line continues the list: keep its number instead of restarting at 1
  return first ? `<ol${first[1] !== "1" ? ` start="${Number(first[1])}"` : ""}>${items}</ol>` : `<ul>${items}</ul>`;
}

export function renderMarkdown(text, { unsupported = [] } = {}) {
  const blocks = String(text || "").replace(/\r/g, "").split(/\n{2,}/);
  return blocks.map((block) => {
    const lines = block.split("\n").filter((l) => l.trim() !== "");
    if (!lines.length) return "";
    const heading = /^(#{1,6})\s+(.*)$/.exec(lines[0]);
    if (heading) {  // a heading line, then whatever follows it in the same block
      const rest = lines.slice(1).join("\n");
      return `<h4>${inline(heading[2], unsupported)}</h4>${rest ? renderMarkdown(rest, { unsupported }) : ""}`;
    }
    // runs of list lines become lists; other lines a paragraph (a lead-in such as "Next steps:" stays with its list)
    let html = "", run = [], prose = [];
    const flushProse = () => { if (prose.length) html += `<p>${prose.map((l) => inline(l, unsupported)).join("<br>")}</p>`; prose = []; };
    const flushRun = () => { if (run.length) html += list(run, unsupported); run = []; };
    for (const line of lines) {
      if (LIST_LINE.test(line)) { flushProse(); run.push(line); } else { flushRun(); prose.push(line); }
    }
    flushProse(); flushRun();
    return html;
  }).join("");
}
