// The support inbox: handed-over conversations, claimed and answered by a person. REST for the queue
// and actions (/api/inbox), /ws/inbox for the live transcript, the customer's typing and read receipts.
import { renderMarkdown, escapeHtml } from "/static/markdown.js";

const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem("mentor_agent_token");
let me = null, view = "open", current = null, socket = null, lastSeq = 0, typedAt = 0;
const answers = {};  // message id -> the bot's answer element (tokens arrive one by one)

async function api(path, options = {}) {
  const res = await fetch(path, { ...options, headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) } });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.detail?.message || res.statusText);
  return body;
}

const ago = (s) => (s < 90 ? `${s} s` : s < 5400 ? `${Math.round(s / 60)} min` : `${Math.round(s / 3600)} h`);

async function loadQueue() {
  if (!token) return;
  const items = await api(`/api/inbox?status=${view}`);
  $("handoffs").innerHTML = items.map((h) => `<li><button type="button" data-id="${escapeHtml(h.conversation_id)}" class="${current === h.conversation_id ? "current" : ""}">
    <strong>${escapeHtml(h.reason.replace("_", " "))}</strong> · ${h.status === "resolved" ? "resolved" : `waiting ${ago(h.waiting_s)}`}${h.upset >= 0.5 ? ' · <span class="upset">upset</span>' : ""}<br>
    <small>${escapeHtml(h.last_message ? h.last_message.text.replace(/[*_#`>]+/g, "").slice(0, 90) : "")}</small></button></li>`).join("") || "<li><small>Nothing here.</small></li>";
  $("handoffs").querySelectorAll("button").forEach((b) => { b.onclick = () => open(b.dataset.id); });
}

function line(cls, html) {
  const el = document.createElement("div");
  el.className = `msg ${cls}`;
  el.innerHTML = html;
  $("transcript").appendChild(el);
  $("transcript").scrollTop = $("transcript").scrollHeight;
  return el;
}

function show(ev) {
  if (ev.seq) lastSeq = Math.max(lastSeq, ev.seq);
  if (ev.type === "ack" && ev.text) line("user", `<div class="who">Customer</div>${renderMarkdown(ev.text)}`).dataset.seq = ev.seq;
  else if (ev.type === "token") {
    const a = answers[ev.message_id] || (answers[ev.message_id] = { el: line("assistant", '<div class="who">Bot</div><div class="text"></div>'), text: "" });
    a.text += ev.delta;
    a.el.querySelector(".text").innerHTML = renderMarkdown(a.text);
  } else if (ev.type === "tool_result") line("system", `<small>tool ${escapeHtml(ev.name)}${ev.error ? ": " + escapeHtml(ev.error) : ""}</small>`);
  else if (ev.type === "citation") line("system", `<small>[${ev.index}] ${escapeHtml(ev.title)} › ${escapeHtml(ev.section)}</small>`);
  else if (ev.type === "handoff") line("system", `<small>Handed to a person (${escapeHtml(ev.reason)}), ticket #${escapeHtml(ev.ticket_id)}</small>`);
  else if (ev.type === "agent_joined") line("system", `<small>${escapeHtml(ev.agent.name)} joined</small>`);
  else if (ev.type === "agent_left") line("system", `<small>${escapeHtml(ev.agent.name)} handed back to the bot</small>`);
  else if (ev.type === "handoff_resolved") line("system", `<small>Resolved: ${escapeHtml(ev.outcome)}</small>`);
  else if (ev.type === "agent_message") line("agent", `<div class="who">${escapeHtml(ev.agent.name)}</div>${renderMarkdown(ev.text)}`).dataset.seq = ev.seq;
  else if (ev.type === "read" && ev.who === "customer") {
    $("transcript").querySelectorAll(".msg.agent[data-seq]").forEach((el) => {
      if (Number(el.dataset.seq) <= ev.upto_seq && !el.querySelector(".seen")) el.insertAdjacentHTML("beforeend", '<div class="seen">Seen</div>');
    });
  } else if (ev.type === "typing" && ev.who === "customer") {
    $("customer-typing").textContent = "The customer is typing…";
    clearTimeout(show.typingTimer);
    show.typingTimer = setTimeout(() => { $("customer-typing").textContent = ""; }, 4000);
  }
  if (!loadingTranscript && (ev.type === "ack" || ev.type === "token") && socket && socket.readyState === WebSocket.OPEN && document.visibilityState === "visible") {
    socket.send(JSON.stringify({ type: "read", conversation_id: current, upto_seq: ev.seq }));
  }
}

let loadingTranscript = false;  // drawing a conversation's stored events: no receipts until it is watched

function connect() {
  if (!token || socket) return;
  const proto = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${proto}://${location.host}/ws/inbox`, ["mentor.v1", `bearer.${token}`]);
  socket.onopen = () => { $("status").textContent = "live"; loadQueue().catch(() => {}); if (current) socket.send(JSON.stringify({ type: "watch", conversation_id: current, after_seq: lastSeq })); };
  socket.onmessage = (m) => {
    const ev = JSON.parse(m.data);
    if (ev.type === "ready") {  // who the server says she is: her name after a reload too, not "user 562"
      if (ev.user) { me = ev.user; $("whoami-name").textContent = ev.user.name; }
      return;
    }
    if (ev.type === "pong") return;
    if (ev.type === "queue_changed") { loadQueue().catch(() => {}); return; }  // a handoff opened, claimed, released, resolved
    if (ev.type === "error") { $("error").textContent = ev.message; return; }
    if (ev.conversation_id !== current) return;
    if (ev.seq && ev.seq <= lastSeq && ev.type !== "typing") return;  // already shown
    show(ev);
  };
  socket.onclose = (e) => { socket = null; $("status").textContent = "reconnecting"; if (token && e.code !== 4401 && e.code !== 4403) setTimeout(connect, 1000); };
}

async function open(id) {
  current = id; lastSeq = 0;
  for (const k of Object.keys(answers)) delete answers[k];
  $("transcript").innerHTML = "";
  $("error").textContent = "";
  const data = await api(`/api/inbox/${id}`);
  const h = data.handoff, c = data.customer;
  $("conversation").hidden = false;
  const kv = (k, v) => `<div class="kv"><span>${k}</span><span>${v}</span></div>`;
  const money = (x) => `$${Number(x).toFixed(2)}`;
  // who vouched for the customer: a first-party site signs in marketplace users; a third-party site only
  // its own users, who have no marketplace records here
  const who = c.visitor ? (c.site_user ? `${escapeHtml(c.site_user)}, signed in at ${escapeHtml(c.site ? c.site.name : "a site")}` : escapeHtml(c.label || "a widget visitor"))
    : `${escapeHtml(c.name)} (@${escapeHtml(c.handle)})`;
  const site = c.site ? kv("site", `${escapeHtml(c.site.name)} · ${c.site.first_party ? "first-party" : "third-party"}`) : "";
  $("customer").innerHTML = `<div class="ctitle">Customer: ${who}</div>` + site
    + (c.contact_email ? kv("e-mail", `<a href="mailto:${escapeHtml(c.contact_email)}">${escapeHtml(c.contact_email)}</a>`) : "")
    + (c.site_user ? kv("account", "this site's own user — no marketplace records") : "")
    + (c.visitor ? "" : kv("plan", escapeHtml(c.plan || "")))
    + kv("ticket", `#${escapeHtml(h.ticket_id)}`) + kv("reason", escapeHtml(h.reason))
    + `<div class="kv"><span>status</span><span id="handoff-status">${escapeHtml(h.status)}</span></div>`
    + (c.visitor ? "" : `<details><summary>Recent orders and payments</summary>${(c.orders || []).map((o) => kv(`order #${o.id} · ${escapeHtml(o.status)}`, money(o.amount))).join("")}${(c.payments || []).map((p) => kv(`${escapeHtml(p.kind)} · ${escapeHtml(p.status)}`, money(p.amount))).join("")}</details>`);
  readOnly(h.status === "resolved");
  $("notes").innerHTML = data.notes.map((n) => `<li>${escapeHtml(n.text)}</li>`).join("");
  // the transcript first, then `watch`, then one receipt for all of it: a receipt before the watch was
  // refused ("no handed-over conversation … here") and shown in red on every opening
  loadingTranscript = true;
  try { data.events.forEach(show); } finally { loadingTranscript = false; }
  if (socket && socket.readyState === WebSocket.OPEN) {
    socket.send(JSON.stringify({ type: "watch", conversation_id: id, after_seq: lastSeq }));
    if (lastSeq && document.visibilityState === "visible") socket.send(JSON.stringify({ type: "read", conversation_id: id, upto_seq: lastSeq }));
  }
  loadQueue().catch(() => {});
}

async function act(path, body) {
  $("error").textContent = "";
  try { return await api(`/api/inbox/${current}/${path}`, { method: "POST", body: JSON.stringify(body || {}) }); }
  catch (e) { $("error").textContent = e.message; return null; }
  finally { loadQueue().catch(() => {}); }
}

$("claim").onclick = async () => { if (await act("claim")) $("handoff-status").textContent = "claimed"; };
$("release").onclick = async () => { if (await act("release")) $("handoff-status").textContent = "open"; };
$("resolve").onclick = async () => { if (await act("resolve", { outcome: $("outcome").value.trim() || "resolved" })) { $("handoff-status").textContent = "resolved"; readOnly(true); } };

// a resolved conversation is a record: shown, labelled, with nothing to act on
function readOnly(resolved) {
  for (const id of ["claim", "release", "resolve", "outcome", "reply-text", "reply-send", "suggest"]) $(id).disabled = resolved;
  $("handoff-status").textContent = resolved ? "resolved — read only" : $("handoff-status").textContent;
}
$("reply").onsubmit = async (e) => {
  e.preventDefault();
  const text = $("reply-text").value.trim();
  if (text && (await act("messages", { text }))) $("reply-text").value = "";
};
$("note-form").onsubmit = async (e) => {
  e.preventDefault();
  const text = $("note-text").value.trim();
  const n = text && (await act("notes", { text }));
  if (n) { $("notes").insertAdjacentHTML("beforeend", `<li>${escapeHtml(n.text)}</li>`); $("note-text").value = ""; }
};
$("suggest").onclick = async () => {  // agent assist: a draft from the help center, edited before sending
  $("suggest").disabled = true;
  const s = await act("suggest");
  $("suggest").disabled = false;
  if (!s) return;
  $("reply-text").value = s.text;
  $("suggest-cites").innerHTML = s.citations.map((c) => `<a href="/knowledge/${encodeURI(c.source)}#${encodeURIComponent(c.anchor)}" target="_blank" rel="noopener">[${c.index}] ${escapeHtml(c.title)} › ${escapeHtml(c.section)}</a>`).join(" ");
  $("reply-text").focus();
};
$("reply-text").addEventListener("input", () => {  // the customer sees "… is typing", at most every 2 s
  if (!socket || socket.readyState !== WebSocket.OPEN || !current || Date.now() - typedAt < 2000) return;
  typedAt = Date.now();
  socket.send(JSON.stringify({ type: "typing", conversation_id: current }));
});
document.querySelectorAll(".tabs button").forEach((b) => {
  b.onclick = () => {
    view = b.dataset.view;
    document.querySelectorAll(".tabs button").forEach((t) => t.setAttribute("aria-selected", String(t === b)));
    loadQueue().catch(() => {});
  };
});

async function signedIn() {
  const whoami = JSON.parse(atob(token.split(".")[1]));
  $("signin").hidden = true; $("whoami").hidden = false;
  $("whoami-name").textContent = me ? me.name : `user ${whoami.sub}`;
  connect();
  await loadQueue();
}

$("signin-btn").onclick = async () => {
  try {
    const res = await api("/api/demo-login", { method: "POST", body: JSON.stringify({ user: $("agent-select").value }) });
    token = res.token; me = res.user;
    sessionStorage.setItem("mentor_agent_token", token);
    await signedIn();
  } catch (e) { $("error").textContent = e.message; }
};
$("signout").onclick = () => { sessionStorage.removeItem("mentor_agent_token"); token = null; if (socket) socket.close(); location.reload(); };

(async () => {
  const users = await api("/api/demo-users").catch(() => []);
  const staff = users.filter((u) => u.role === "agent" || u.role === "admin");
  $("agent-select").innerHTML = staff.map((u) => `<option value="${escapeHtml(u.handle)}">${escapeHtml(u.name)}</option>`).join("");
  $("signin").hidden = !staff.length;
  if (token) await signedIn().catch(() => {});
  setInterval(() => loadQueue().catch(() => {}), 15000);  // waiting times and last messages; changes come live
})();
