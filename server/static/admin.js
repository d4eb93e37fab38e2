// The operator's page: /api/admin/stats (figures and charts, drawn by the vendored Chart.js), the
// conversations behind each figure, read-only transcripts, the knowledge gaps with "check again", and the
// Knowledge panel (admin-knowledge.js).
import { renderMarkdown, escapeHtml } from "/static/markdown.js";
import { initKnowledge } from "/static/admin-knowledge.js";

const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem("mentor_admin_token");
let stats = null;
const charts = {};

async function api(path, options = {}) {
  const json = options.body && !(options.body instanceof FormData);  // a FormData body sets its own multipart type
  const res = await fetch(path, { ...options, headers: { ...(json ? { "content-type": "application/json" } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}) } });
  if (!res.ok) {
    const body = await res.json().catch(() => ({}));
    const err = new Error(body.detail?.message || res.statusText);
    err.status = res.status;
    throw err;
  }
  return res.headers.get("content-type")?.includes("json") ? res.json() : res;
}

const pct = (v) => (v === null || v === undefined ? "–" : `${Math.round(v * 100)}%`);
const ms = (p) => (p.p50 === null ? "–" : `${Math.round(p.p50)} / ${Math.round(p.p95)} ms`);

function figureButton(count, persona, outcome, label) {
  return `<button type="button" class="linkish" data-persona="${escapeHtml(persona)}" data-outcome="${outcome}" aria-label="${escapeHtml(label)}">${count}</button>`;
}

function renderSummary() {
  const rows = Object.entries(stats.personas).filter(([p]) => !$("persona").value || p === $("persona").value);
  $("summary").querySelector("tbody").innerHTML = rows.map(([p, s]) => `<tr><th scope="row">${escapeHtml(p)}</th>
    <td>${figureButton(s.conversations, p, "", `${s.conversations} conversations of ${p}`)}</td><td>${s.turns}</td>
    <td>${figureButton(s.resolved, p, "resolved", `${s.resolved} resolved conversations of ${p}`)} (${pct(s.resolution_rate)})<br><small>${s.resolution.confirmed} confirmed, ${s.resolution.assumed} assumed</small></td>
    <td>${figureButton(s.handoffs, p, "handed_off", `${s.handoffs} handed-off conversations of ${p}`)} (${pct(s.handoff_rate)})<br><small>${Object.entries(s.handoffs_by_reason).map(([r, n]) => `${escapeHtml(r.replace("_", " "))} ${n}`).join(", ")}</small></td>
    <td>${figureButton(s.unresolved, p, "unresolved", `${s.unresolved} unresolved conversations of ${p}`)} (${pct(s.unresolved_rate)})<br><small>${Object.entries(s.unresolved_by_reason).map(([r, n]) => `${escapeHtml(r.replace("_", " "))} ${n}`).join(", ")}</small></td>
    <td>${pct(s.csat)} <small>(${s.rated} rated)</small></td><td>${pct(s.implemented_rate)}</td><td>${pct(s.unsupported_figure_rate)}</td>
    <td>${ms(s.first_token_ms)}</td><td>${ms(s.answer_ms)}</td>
    <td>${s.tokens.prompt} / ${s.tokens.cached} / ${s.tokens.completion}</td>
    <td>$${s.cost_usd.toFixed(4)}${s.unpriced_models.length ? `<br><small>unpriced: ${s.unpriced_models.map(escapeHtml).join(", ")}</small>` : ""}</td></tr>`).join("")
    || `<tr><td colspan="13">No conversations in this range yet.</td></tr>`;
  $("summary").querySelectorAll("button.linkish").forEach((b) => { b.onclick = () => drill(b.dataset.persona, b.dataset.outcome).catch(showError); });
}

function draw(id, type, labels, datasets, stacked) {
  if (!window.Chart) return;  // Chart.js not vendored (no npm at set-up): the table holds every figure
  charts[id]?.destroy();
  charts[id] = new window.Chart($(id), {
    type, data: { labels, datasets },
    options: { responsive: true, maintainAspectRatio: false, animation: false,
      scales: { x: { stacked }, y: { stacked, beginAtZero: true } } },
  });
}

function renderCharts() {
  const persona = $("persona").value;
  const days = [];  // every day of the range, those without conversations too
  for (let d = new Date(stats.since); d <= new Date(); d.setUTCDate(d.getUTCDate() + 1)) days.push(d.toISOString().slice(0, 10));
  const sum = (day, f) => stats.days.filter((d) => d.day === day && (!persona || d.persona === persona)).reduce((n, d) => n + f(d), 0);
  draw("chart-outcomes", "bar", days, [
    { label: "resolved", data: days.map((d) => sum(d, (x) => x.resolved)), backgroundColor: "#1f7a3f" },
    { label: "handed off", data: days.map((d) => sum(d, (x) => x.handoffs)), backgroundColor: "#b26b00" },
    { label: "unresolved", data: days.map((d) => sum(d, (x) => x.unresolved)), backgroundColor: "#b00020" },
  ], true);
  draw("chart-turns", "bar", days, [{ label: "turns", data: days.map((d) => sum(d, (x) => x.turns)), backgroundColor: "#1f4fbf" }], false);
  const pick = (day, q) => {  // the slowest persona's figure that day, or the chosen persona's
    const v = stats.days.filter((d) => d.day === day && (!persona || d.persona === persona)).map((d) => d.answer_ms[q]).filter((x) => x !== null);
    return v.length ? Math.max(...v) : null;
  };
  const who = persona ? "" : " (the slowest persona each day)";
  draw("chart-latency", "line", days, [
    { label: `p50${who}`, data: days.map((d) => pick(d, "p50")), borderColor: "#1f4fbf" },
    { label: `p95${who}`, data: days.map((d) => pick(d, "p95")), borderColor: "#b00020" },
  ], false);
}

async function load() {
  const days = $("days").value;
  $("drill").hidden = true; $("transcript-panel").hidden = true;  // they showed the previous selection
  $("since").textContent = "loading…";
  $("panel").setAttribute("aria-busy", "true");
  stats = await api(`/api/admin/stats?days=${days}`);
  $("panel").removeAttribute("aria-busy");
  const chosen = $("persona").value;
  $("persona").innerHTML = `<option value="">all</option>` + Object.keys(stats.personas).map((p) => `<option ${p === chosen ? "selected" : ""}>${escapeHtml(p)}</option>`).join("");
  $("since").textContent = `since ${stats.since.slice(0, 10)} (UTC)`;
  renderSummary();
  renderCharts();
  await Promise.all([loadGaps(), initKnowledge(api, showError)]);
}

async function drill(persona, outcome) {
  const q = new URLSearchParams({ days: $("days").value, persona, ...(outcome ? { outcome } : {}) });
  const rows = await api(`/api/admin/conversations?${q}`);
  $("drill").hidden = false;
  $("drill-title").textContent = `${persona}: ${outcome ? outcome.replace("_", " ") : "all"} (${rows.length})`;
  $("drill-list").innerHTML = rows.map((r) => `<li><button type="button" class="linkish" data-id="${escapeHtml(r.id)}">${escapeHtml(r.created_at.slice(0, 16).replace("T", " "))}</button> ${escapeHtml(r.outcome.replace("_", " "))} <small>${escapeHtml(r.detail.replace("_", " "))}</small></li>`).join("") || "<li>None.</li>";
  $("drill-list").querySelectorAll("button").forEach((b) => { b.onclick = () => openTranscript(b.dataset.id).catch(showError); });
}

async function openTranscript(id) {
  const c = await api(`/api/admin/conversations/${encodeURIComponent(id)}`);
  $("transcript-panel").hidden = false;
  $("transcript-meta").textContent = `${c.persona} · ${c.created_at.slice(0, 16).replace("T", " ")}${c.handoff_reason ? ` · handed off (${c.handoff_reason})` : ""}`;
  $("transcript").innerHTML = c.messages.map((m) => `<div class="msg ${m.role === "assistant" ? "assistant" : m.role}"><div class="who">${m.role === "user" ? "Customer" : m.role === "agent" ? "Agent" : "Bot"}${m.rating ? ` · rated ${m.rating}/5` : ""}</div>${renderMarkdown(m.content)}</div>`).join("");
  $("transcript-panel").scrollIntoView();
}
$("transcript-close").onclick = () => { $("transcript-panel").hidden = true; };

function renderGap(g) {
  return `<li class="gap" data-id="${g.id}"><strong>${g.count}×</strong> <span class="badge ${g.kind}">${g.kind === "no_article" ? "no article" : "article missed"}</span>${g.fixed ? ' <span class="badge fixed">fixed</span>' : ""}
    ${escapeHtml(g.representative)}
    ${g.nearest.length ? `<br><small>nearest: ${escapeHtml(g.nearest[0].title)} › ${escapeHtml(g.nearest[0].section)} (distance ${g.nearest[0].distance})</small>` : ""}
    <ul>${g.questions.map((q) => `<li><button type="button" class="linkish" data-id="${escapeHtml(q.conversation_id)}">${escapeHtml(q.asked_at.slice(0, 16).replace("T", " "))}</button> <small>${escapeHtml(q.why.replace("_", " "))}</small> ${escapeHtml(q.text)}${q.answered_now === true ? " <small>✓ answered now</small>" : q.answered_now === false ? " <small>still unanswered</small>" : ""}</li>`).join("")}</ul>
    <details><summary>Draft article outline</summary><pre>${escapeHtml(g.outline)}</pre></details>
    ${g.checkable ? '<button type="button" class="check">Check again</button>' : "<small>Answered before but rated low or asked again: read its conversations (an answer now proves nothing).</small>"}</li>`;
}

async function loadGaps() {
  const gaps = await api("/api/admin/gaps?days=30");
  $("gaps").innerHTML = gaps.map(renderGap).join("") || "<li>No failed questions in the last 30 days.</li>";
  $("gaps").querySelectorAll("button.linkish").forEach((b) => { b.onclick = () => openTranscript(b.dataset.id).catch(showError); });
  $("gaps").querySelectorAll("button.check").forEach((b) => {
    b.onclick = async () => {
      b.disabled = true; b.textContent = "Checking…";
      try { await api(`/api/admin/gaps/${b.closest("li.gap").dataset.id}/check`, { method: "POST" }); await loadGaps(); }
      catch (e) { $("error").textContent = e.message; b.disabled = false; b.textContent = "Check again"; }
    };
  });
}

$("csv").onclick = async () => {
  const res = await api(`/api/admin/stats.csv?days=${$("days").value}`).catch((e) => { showError(e); return null; });
  if (!res) return;
  const url = URL.createObjectURL(await res.blob());
  const a = Object.assign(document.createElement("a"), { href: url, download: `mentor-stats-${$("days").value}d.csv` });
  a.click();
  URL.revokeObjectURL(url);
};
$("days").onchange = () => load().catch(showError);
$("persona").onchange = () => { $("drill").hidden = true; $("transcript-panel").hidden = true; renderSummary(); renderCharts(); };

function showError(e) {
  if (e.status === 401) {  // a bad or expired token: forget it and ask again
    sessionStorage.removeItem("mentor_admin_token"); token = null;
    $("signin").hidden = false; $("whoami").hidden = true;
  }
  $("panel").hidden = e.status === 401 || e.status === 403 ? true : $("panel").hidden;
  $("error").textContent = e.status === 403 ? "This page is for admins: your account cannot see the operator's figures."
    : e.status === 401 ? `Sign in to see the operator's figures (${e.message}).` : e.message;
}

async function signedIn(name) {
  $("signin").hidden = true; $("whoami").hidden = false;
  $("whoami-name").textContent = name || "signed in";
  $("error").textContent = "";
  $("loading").hidden = false;
  try {
    await load();
    $("panel").hidden = false; $("error").textContent = "";
  } catch (e) { showError(e); } finally { $("loading").hidden = true; }
}

$("signin").onsubmit = async (event) => {
  event.preventDefault();
  try {
    let name = null;
    if ($("token-input").value.trim()) token = $("token-input").value.trim();
    else { const res = await api("/api/demo-login", { method: "POST", body: JSON.stringify({ user: $("admin-select").value }) }); token = res.token; name = res.user.name; }
    sessionStorage.setItem("mentor_admin_token", token);
    if (!name) name = (await api("/api/me")).name;  // a token that is no sign-in is refused here
    await signedIn(name);
  } catch (e) { showError(e); }
};
$("signout").onclick = () => { sessionStorage.removeItem("mentor_admin_token"); location.reload(); };

(async () => {
  const users = await api("/api/demo-users").catch(() => []);
  $("admin-select").innerHTML = users.filter((u) => u.role === "admin").map((u) => `<option value="${escapeHtml(u.handle)}">${escapeHtml(u.name)}</option>`).join("");
  if (!$("admin-select").options.length) { $("admin-select").hidden = true; $("signin-btn").textContent = "Sign in with the token"; }
  if (token) await api("/api/me").then((me) => signedIn(me.name)).catch(showError);
  else $("error").textContent = "Sign in to see the operator's figures.";
})();
