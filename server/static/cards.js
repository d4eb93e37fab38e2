// Compact cards for tool results and citations. Values are inserted as text, never as HTML.
import { escapeHtml } from "./markdown.js";

const money = (v) => (typeof v === "number" ? "$" + v.toLocaleString("en-US", { maximumFractionDigits: 0 }) : escapeHtml(v ?? "—"));

function rows(pairs) {
  return pairs.map(([k, v]) => `<div class="kv"><span>${escapeHtml(k)}</span><b>${v}</b></div>`).join("");
}

export function toolCard(ev) {
  const d = ev.data || {};
  let title = ev.name.replace(/_/g, " "), body = "", kind = "generic";
  if (ev.error) { body = `<div class="err">${escapeHtml(ev.error)}</div>`; kind = "error"; }
  else if (ev.name === "market_rates") {
    kind = "rates"; title = `Rates · ${d.skill} (${d.segment})`;
    body = rows([["25th", money(d.p25)], ["median", money(d.p50)], ["75th", money(d.p75)], ["90th", money(d.p90)],
                 ["demand", `${escapeHtml(d.demand_score)}/10`], ["trend", `${escapeHtml(d.trend)} ${escapeHtml(d.trend_pct)}%`]]) + `<div class="unit">USD per hour</div>`;
  } else if (ev.name === "my_revenue_summary") {
    kind = "revenue"; title = `Revenue by ${d.group_by}`;
    body = rows([["total", money(d.total)], ["since", escapeHtml(d.since)]]) +
      rows((d.rows || []).slice(0, 6).map((r) => [r[d.group_by], money(r.revenue)]));
  } else if (ev.name === "get_project") {
    kind = "project"; title = `Project #${d.id}`;
    body = `<div class="ptitle">${escapeHtml(d.title)}</div>` + rows([["type", escapeHtml(d.project_type)],
      ["budget", `${money(d.budget_min)}–${money(d.budget_max)}`], ["complexity", escapeHtml(d.complexity)], ["client", escapeHtml(d.client)]]);
  } else if (ev.name === "recommend_bid") {
    kind = "bid"; title = "Recommended bid";
    body = rows([["bid", money(d.amount) + (d.bid_type === "hourly" ? "/h" : "")], ["range", `${money(d.range_low)}–${money(d.range_high)}`],
      ["market median", money(d.percentiles && d.percentiles.p50)]]) + `<ul>${(d.reasoning || []).map((r) => `<li>${escapeHtml(r)}</li>`).join("")}</ul>`;
  } else if (ev.name === "recommend_rate") {
    kind = "bid"; title = `Rate advice · ${d.skill} (${d.segment})`;
    body = rows([["your rate", d.your_rate != null ? money(d.your_rate) + "/h" : "—"], ["position", escapeHtml(d.position)],
      ["aim for", `${money(d.range_low)}–${money(d.range_high)}/h`]]) +
      (d.existing_clients ? rows([["existing clients", `${money(d.existing_clients[0])}–${money(d.existing_clients[1])}/h`]]) : "");
  } else if (ev.name === "learning_roi") {
    kind = "roi"; title = "Learning ROI";
    body = rows([["learning hours", escapeHtml(d.learning_hours)], ["revenue from learned skills", money(d.revenue_from_learned_skills)],
      ["per learning hour", money(d.revenue_per_learning_hour)], ["skills earning", `${escapeHtml(d.skills_monetized)} of ${escapeHtml(d.skills_tracked)}`]]);
  } else if (ev.name === "my_profile") {
    kind = "profile"; title = d.name || "Profile";
    // a client has an account but no freelancer profile: show what there is, never "null"
    body = d.hourly_rate == null ? rows([["plan", escapeHtml(d.plan ?? "—")], ["country", escapeHtml(d.country ?? "—")]]) + `<div class="unit">no freelancer profile</div>`
      : rows([["rate", money(d.hourly_rate) + "/h"], ["level", escapeHtml(d.experience_level ?? "—")], ["revenue", money(d.total_revenue)], ["jobs", escapeHtml(d.jobs_completed ?? 0)]]);
  } else if (ev.name === "my_account") {
    kind = "account"; title = `${d.plan} plan`;
    const pct = typeof d.commission_rate === "number" ? `${+(d.commission_rate * 100).toFixed(2)}%` : "—";
    body = rows([["monthly price", money(d.monthly_price)], ["commission", pct], ["proposals / month", d.proposals_per_month == null ? "unlimited" : escapeHtml(d.proposals_per_month)]]);
    const pay = (d.payments || [])[0];
    if (pay) body += rows([["latest payment", `${money(pay.amount)} · ${escapeHtml(pay.kind)} · ${escapeHtml(String(pay.created_at).slice(0, 10))}`]]);
  } else if (ev.name === "create_support_ticket") {
    return "";  // shown once, by the handoff card
  } else if (ev.name === "save_proposal_draft") {
    kind = "draft"; title = `Draft proposal #${d.proposal_id}${d.revised ? " (revised)" : ""}`;
    body = rows([["bid", money(d.bid_amount) + (d.bid_type === "hourly" ? "/h" : "")], ["type", escapeHtml(d.bid_type)]]);
    const letter = ev.args && ev.args.cover_letter;
    if (letter) body += `<details class="letter" open><summary>Cover letter (saved)</summary><div class="letter-text">${escapeHtml(letter)}</div></details>`;
  } else {
    body = `<pre>${escapeHtml(JSON.stringify(d, null, 1).slice(0, 600))}</pre>`;
  }
  return `<div class="card card-${kind}" data-tool="${escapeHtml(ev.name)}"><div class="ctitle">${escapeHtml(title)}</div>${body}</div>`;
}

export function citationLink(ev, base = "") {
  const href = `${base}/knowledge/${encodeURI(ev.source)}#${encodeURIComponent(ev.anchor || "")}`;
  return `<a class="citation" href="${escapeHtml(href)}" target="_blank" rel="noopener" title="${escapeHtml(ev.snippet)}">[${ev.index}] ${escapeHtml(ev.title)} › ${escapeHtml(ev.section)}</a>`;
}

// "From: Getting paid › Withdrawals": the section of the first source an answer quotes, shown under it.
export function answerSource(text, cites) {
  const m = /\[(\d+)\]/.exec(text || "");
  const c = m && cites && cites[m[1]];
  if (!c) return "";
  return `<div class="from">From: ${escapeHtml(c.title)} › ${escapeHtml(c.section)}</div>`;
}
