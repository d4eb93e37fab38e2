// Safe Markdown subset for model output and retrieved text: everything is HTML-escaped first, then a
// few constructs are recognised (paragraphs, lists, **bold**, *italic*, `code`, http(s) links, [n]
// citation markers). No raw HTML from the input can reach the page. Hand-written because the page
// must run with no build step and no network (no CDN, no npm on a fresh machine).
export function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

function inline(text) {
  let out = escapeHtml(text);
  out = out.replace(/`([^`]+)`/g, "<code>$1</code>");
  out = out.replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>");
  out = out.replace(/(^|[^*])\*([^*\s][^*]*)\*/g, "$1<em>$2</em>");
  out = out.replace(/\[([^\]]+)\]\((https?:\/\/[^\s)"'<>]+)\)/g,
    '<a href="$2" target="_blank" rel="noopener noreferrer">$1</a>');
  out = out.replace(/\[(\d{1,2})\]/g, '<sup class="cite" data-cite="$1">[$1]</sup>');
  return out;
}

export function renderMarkdown(text) {
  const blocks = String(text || "").replace(/\r/g, "").split(/\n{2,}/);
  return blocks.map((block) => {
    const lines = block.split("\n").filter((l) => l.trim() !== "");
    if (!lines.length) return "";
    if (lines.every((l) => /^\s*([-*]|\d+\.)\s+/.test(l))) {
      const ordered = /^\s*\d+\./.test(lines[0]);
      const items = lines.map((l) => `<li>${inline(l.replace(/^\s*([-*]|\d+\.)\s+/, ""))}</li>`).join("");
      return ordered ? `<ol>${items}</ol>` : `<ul>${items}</ul>`;
    }
    const heading = /^(#{1,4})\s+(.*)$/.exec(lines[0]);
    if (heading && lines.length === 1) return `<h4>${inline(heading[2])}</h4>`;
    return `<p>${lines.map(inline).join("<br>")}</p>`;
  }).join("");
}
