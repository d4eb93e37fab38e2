// The chat page. The conversation is rebuilt from its stored events (the ack carries the user's words),
// so a reload, a reopened conversation and a reconnect all show the same thing, in order, and an answer
// still streaming keeps growing (resume follows it live).
import { ChatClient } from "/static/chat-client.js";
import { renderMarkdown, escapeHtml } from "/static/markdown.js";
import { toolCard, citationLink, answerSource } from "/static/cards.js";

const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem("mentor_token");
let client = null;
let personas = [];
let conversation = null; // {id, persona, mode, project_id}
let pendingMode = null; // {mode, project_id, title} for the first message of a role-play
const bubbles = {}; // assistant message id -> {el, text, persona}
const localClientIds = new Set(); // messages this tab sent (already on screen when their ack arrives)
let feedbackGiven = {};

async function api(path, options = {}) {
  const res = await fetch(path, { ...options, headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}), ...(options.headers || {}) } });
  if (!res.ok) throw new Error((await res.json().catch(() => ({}))).detail?.message || res.statusText);
  return res.json();
}

const personaOf = (id) => personas.find((p) => p.id === id) || { id, name: id, role: "", examples: [] };

async function loadUsers() {
  const users = await api("/api/demo-users");
  $("user-select").innerHTML = users.map((u) => `<option value="${escapeHtml(u.handle)}">${escapeHtml(u.name)} (${escapeHtml(u.role)})</option>`).join("");
  $("signin").hidden = !users.length; // demo sign-in only exists in demo mode
}

async function loadPersonas() {
  personas = await api("/api/personas");
  $("persona").innerHTML = personas.map((p) => `<option value="${escapeHtml(p.id)}">${escapeHtml(p.name)} — ${escapeHtml(p.role)}</option>`).join("");
}

async function loadConversations() {
  const list = await api("/api/conversations");
  $("conversations").innerHTML = list.map((c) => `<li><a href="#" data-id="${escapeHtml(c.id)}"${conversation && conversation.id === c.id ? ' aria-current="true"' : ""}>${escapeHtml(c.title || c.persona)}</a> <small>${escapeHtml(personaOf(c.persona).name)}${c.mode === "simulate_client" ? " · role-play" : ""}</small></li>`).join("");
  for (const a of $("conversations").querySelectorAll("a")) a.onclick = (e) => { e.preventDefault(); closeMenu(); openConversation(a.dataset.id); };
}

// -- the welcome screen of an empty conversation ----------------------------------------------------------
function showWelcome() {
  if ($("messages").querySelector(".msg")) return;
  const p = personaOf($("persona").value);
  const examples = (p.examples || []).slice(0, 3);
  $("messages").innerHTML = `<div class="examples welcome"><h2>${escapeHtml(p.name)} <small>${escapeHtml(p.role)}</small></h2>
    <p>${escapeHtml(p.description || "")}</p>${examples.length ? `<p>Try asking ${escapeHtml(p.name)}:</p>` : ""}${
    examples.map((q) => `<button type="button" class="example">${escapeHtml(q)}</button>`).join("")}</div>`;
  for (const btn of $("messages").querySelectorAll("button.example")) btn.onclick = () => { $("input").value = btn.textContent; $("input").focus(); };
}

function bubble(role, html) {
  const welcome = $("messages").querySelector(".welcome");
  if (welcome) welcome.remove();
  const el = document.createElement("div");
  el.className = `msg ${role}`;
  el.innerHTML = html;
  $("messages").appendChild(el);
  $("messages").scrollTop = $("messages").scrollHeight;
  return el;
}

// A support agent's part of a handed-over conversation (docs/protocol.md, "Human handoff").
let agentSeenUpto = 0, agentTypingTimer = null;
const sentBubbles = new Map();  // client id -> the user's own message, until its ack gives it a seq
function agentEvent(ev, add) {
  const who = ev.agent ? escapeHtml(ev.agent.name) : "The agent";
  if (ev.type === "agent_joined") add("system", `<div class="note agent-note">${who} from support joined the conversation.</div>`);
  else if (ev.type === "agent_message") {
    const t = $("messages").querySelector(".msg.typing"); if (t) t.remove();
    add("agent", `<div class="who">${who}</div><div class="text">${renderMarkdown(ev.text)}</div>`);
    if (ev.seq && document.visibilityState === "visible") client.raw({ type: "read", conversation_id: ev.conversation_id, upto_seq: ev.seq });
  }
  else if (ev.type === "agent_left") add("system", `<div class="note agent-note">${who} handed the conversation back to the assistant.</div>`);
  else if (ev.type === "handoff_resolved") add("system", '<div class="note agent-note">Support marked this as resolved.</div>');
  else if (ev.type === "typing") {
    if (ev.who !== "agent") return true;
    let t = $("messages").querySelector(".msg.typing");
    if (!t) t = add("typing", "");
    t.textContent = `${ev.name || "The agent"} is typing…`;
    $("messages").appendChild(t);
    clearTimeout(agentTypingTimer);
    agentTypingTimer = setTimeout(() => t.remove(), 4000);
  } else if (ev.type === "read") {
    if (ev.who !== "agent") return true;
    agentSeenUpto = Math.max(agentSeenUpto, ev.upto_seq);
    $("messages").querySelectorAll(".msg.user[data-seq]").forEach((el) => {
      if (Number(el.dataset.seq) <= agentSeenUpto && !el.querySelector(".seen")) el.insertAdjacentHTML("beforeend", '<div class="seen">Seen</div>');
    });
  } else return false;
  return true;
}

function assistantBubble(messageId, persona) {
  if (!bubbles[messageId]) {
    const el = bubble("assistant", `<div class="cards"></div><div class="text"><span class="thinking">thinking…</span></div><div class="cites"></div><div class="feedback"></div>`);
    el.dataset.messageId = messageId;
    bubbles[messageId] = { el, text: "", persona: persona || (conversation && conversation.persona) };
  }
  return bubbles[messageId];
}

function showFeedback(b, messageId) {
  const box = b.el.querySelector(".feedback");
  const given = feedbackGiven[String(messageId)];
  if (given) { box.innerHTML = `<small>Thanks — you rated this ${given.rating >= 4 ? "helpful" : "not helpful"}${given.implemented ? " and implemented it" : ""}.</small>`; return; }
  const advice = personaOf(b.persona).advice; // "I implemented this" only where the answer is advice to act on
  box.innerHTML = `<button type="button" data-r="5">Helpful</button><button type="button" data-r="1">Not helpful</button>${advice ? '<label><input type="checkbox"> I implemented this</label>' : ""}`;
  for (const btn of box.querySelectorAll("button")) btn.onclick = () => {
    const implemented = !!(box.querySelector("input") && box.querySelector("input").checked);
    client.feedback(Number(messageId), Number(btn.dataset.r), null, implemented);
    feedbackGiven[String(messageId)] = { rating: Number(btn.dataset.r), implemented };
    showFeedback(b, messageId);
  };
}

function belongsHere(ev) {
  // events of another conversation (one left open in another tab, or just left here) are not drawn
  if (!ev.conversation_id) return true;
  if (conversation) return ev.conversation_id === conversation.id;
  return ev.type === "ack" && localClientIds.has(ev.client_id);
}

function onEvent(ev) {
  if (ev.type === "ready" || ev.type === "pong" || ev.type === "feedback_saved") return;
  if (!belongsHere(ev)) return;
  if (ev.type === "ack") {
    const own = localClientIds.has(ev.client_id) ? sentBubbles.get(ev.client_id) : null;
    const userEl = own || (ev.text && !localClientIds.has(ev.client_id) ? bubble("user", renderMarkdown(ev.text)) : null);
    if (userEl && ev.seq) userEl.dataset.seq = ev.seq;  // "Seen" marks follow the agent's read receipts
    if (ev.conversation_id) remember({ id: ev.conversation_id, persona: ev.persona || $("persona").value, mode: ev.mode, project_id: ev.project_id });
    if (ev.message_id === null) return;  // a support agent owns the conversation: they answer, not the bot
    assistantBubble(ev.message_id, ev.persona);
    $("cancel").hidden = false;
    return;
  }
  if (agentEvent(ev, bubble)) return;
  const b = ev.message_id ? assistantBubble(ev.message_id) : null;
  if (ev.type === "token") {
    b.text += ev.delta;
    b.el.querySelector(".text").innerHTML = renderMarkdown(b.text);
  } else if (ev.type === "answer_replaced") {
    b.text = "";
    b.el.querySelector(".text").innerHTML = "";
    b.el.insertAdjacentHTML("beforeend", `<div class="grounding-note replaced">The first answer stated ${escapeHtml(ev.unsupported.join(", "))}, which no source or record holds; this answer is quoted from the sources instead.</div>`);
  } else if (ev.type === "tool_result") {
    b.el.querySelector(".cards").insertAdjacentHTML("beforeend", toolCard(ev));
  } else if (ev.type === "citation") {
    b.el.querySelector(".cites").insertAdjacentHTML("beforeend", citationLink(ev));
    (b.cites = b.cites || {})[ev.index] = ev;
  } else if (ev.type === "handoff") {
    b.el.querySelector(".cards").insertAdjacentHTML("beforeend", `<div class="card card-ticket" data-ticket="${escapeHtml(ev.ticket_id)}">Ticket #${escapeHtml(ev.ticket_id)} — a person from our support team will follow up</div>`);
  } else if (ev.type === "error") {
    (b ? b.el : bubble("system", "")).insertAdjacentHTML("beforeend", `<div class="err" role="alert">${escapeHtml(ev.message)}</div>`);
    if (!ev.seq) $("cancel").hidden = true;
  } else if (ev.type === "done") {
    const t = b.el.querySelector(".thinking"); if (t) t.remove();
    if (ev.finish_reason === "cancelled") b.el.classList.add("cancelled");
    if (ev.finish_reason === "length") b.el.insertAdjacentHTML("beforeend", '<div class="note">The answer was cut at the length limit.</div>');
    const unsupported = (ev.grounding && ev.grounding.unsupported) || [];
    if (unsupported.length) {  // figures the evidence does not hold: marked in the text and named below it
      b.el.querySelector(".text").innerHTML = renderMarkdown(b.text, { unsupported });
      b.el.insertAdjacentHTML("beforeend", `<div class="grounding-note">Not found in the sources or your records: ${escapeHtml(unsupported.join(", "))}. Treat ${unsupported.length === 1 ? "this figure" : "these figures"} with caution.</div>`);
    }
    b.el.querySelectorAll(".from").forEach((el) => el.remove());
    b.el.querySelector(".text").insertAdjacentHTML("afterend", answerSource(b.text, b.cites));
    showFeedback(b, ev.message_id);
    $("cancel").hidden = true;
    $("announcer").textContent = ev.finish_reason === "stop" ? "Answer complete." : `Answer ended (${ev.finish_reason}).`;
    loadConversations().catch(() => {});
  }
}

function remember(conv) {
  conversation = { ...(conversation || {}), ...conv };
  sessionStorage.setItem("mentor_conversation", conversation.id);
  showBanner();
}

function showBanner() {
  const roleplay = conversation && conversation.mode === "simulate_client" || pendingMode;
  const project = (conversation && conversation.project_id) || (pendingMode && pendingMode.project_id);
  $("banner").hidden = !roleplay;
  if (roleplay) $("banner").textContent = `Role-play: Sarah plays the client of project #${project}${pendingMode && pendingMode.title ? ` “${pendingMode.title}”` : ""}. Open with your pitch; write “feedback” to step out of the role.`;
}

function clearChat() {
  $("messages").innerHTML = "";
  for (const k of Object.keys(bubbles)) delete bubbles[k];
  localClientIds.clear();  // nothing of this tab's is on screen any more: replays draw every message
  sentBubbles.clear();
  feedbackGiven = {};
}

function newConversation() {
  conversation = null;
  pendingMode = null;
  sessionStorage.removeItem("mentor_conversation");
  if (client) client.newConversation();
  clearChat();
  showBanner();
  showWelcome();
  loadConversations().catch(() => {});
}

function connect() {
  if (client) client.close();
  const proto = location.protocol === "https:" ? "wss" : "ws";
  client = new ChatClient(`${proto}://${location.host}/ws/chat`, {
    onEvent, onStatus: (s) => { $("status").textContent = s; $("status").dataset.state = s; },
    credentials: () => [`bearer.${token}`],
  });
  window.mentorClient = client;
  client.connect();
  $("input").disabled = false; $("send").disabled = false;
}

async function openConversation(id) {
  const conv = await api(`/api/conversations/${encodeURIComponent(id)}`);
  clearChat();
  conversation = { id: conv.id, persona: conv.persona, mode: conv.mode, project_id: conv.project_id };
  if (client) client.newConversation();
  pendingMode = null;
  feedbackGiven = conv.feedback || {};
  $("persona").value = conv.persona;
  updateRoleplay();
  // the stored events, in seq order; older acks lack the text, which the stored messages have
  const userText = Object.fromEntries(conv.messages.filter((m) => m.role === "user").map((m) => [m.id, m.content]));
  for (const ev of conv.events) onEvent(ev.type === "ack" ? { ...ev, text: ev.text || userText[ev.user_message_id] } : ev);
  const streaming = conv.messages.some((m) => m.role === "assistant" && m.status === "streaming");
  $("cancel").hidden = !streaming;
  remember(conversation);
  client.open(conv.id, conv.last_seq); // follows an answer that is still being written
  loadConversations().catch(() => {});
}

async function signIn(handle) {
  const res = await api("/api/demo-login", { method: "POST", body: JSON.stringify({ user: handle }) });
  token = res.token;
  sessionStorage.setItem("mentor_token", token);
  await showSignedIn();
}

function signOut() {
  if (client) client.close();
  client = null;
  token = null;
  sessionStorage.removeItem("mentor_token");
  sessionStorage.removeItem("mentor_conversation");
  conversation = null;
  clearChat();
  $("conversations").innerHTML = "";
  $("whoami").hidden = true;
  $("signin").hidden = false;
  $("input").disabled = true; $("send").disabled = true;
  $("status").textContent = "signed out"; $("status").dataset.state = "signed-out";
}

async function showSignedIn() {
  const me = await api("/api/me");
  $("signin").hidden = true;
  $("whoami").hidden = false;
  $("whoami-name").textContent = `Signed in as ${me.name}`;
  $("inbox-link").hidden = !["agent", "admin"].includes(me.role);  // staff answer handed-over conversations there
  connect();
  const saved = sessionStorage.getItem("mentor_conversation");
  if (saved) await openConversation(saved).catch(() => { sessionStorage.removeItem("mentor_conversation"); showWelcome(); });
  else showWelcome();
  await loadConversations();
}

// -- Sarah's client role-play ---------------------------------------------------------------------------
async function updateRoleplay() {
  const p = personaOf($("persona").value);
  $("roleplay").hidden = !p.roleplay || !token;
  if (!p.roleplay || !token || $("project-select").options.length) return;
  $("start-roleplay").disabled = true;  // until there is a project to play (a click before would do nothing)
  const projects = await api("/api/projects/suggested").catch(() => []);
  $("project-select").innerHTML = projects.map((pr) => `<option value="${pr.id}">#${pr.id} ${escapeHtml(pr.title)}</option>`).join("");
  $("start-roleplay").disabled = !projects.length;
}

$("start-roleplay").onclick = () => {
  const select = $("project-select");
  if (!select.value) return;
  newConversation();
  pendingMode = { mode: "simulate_client", project_id: Number(select.value), title: select.selectedOptions[0].textContent.replace(/^#\d+ /, "") };
  showBanner();
  $("input").placeholder = "Your opening message to the client…";
  $("input").focus();
  closeMenu();
};

// -- controls -----------------------------------------------------------------------------------------------
function closeMenu() { document.body.classList.remove("menu-open"); $("menu").setAttribute("aria-expanded", "false"); }
$("menu").onclick = () => {
  const open = !document.body.classList.contains("menu-open");
  document.body.classList.toggle("menu-open", open);
  $("menu").setAttribute("aria-expanded", String(open));
};
$("signin-btn").onclick = () => signIn($("user-select").value).catch((e) => alert(e.message));
$("signout").onclick = signOut;
$("new-chat").onclick = () => { newConversation(); closeMenu(); };
$("persona").onchange = () => {
  // a conversation keeps one persona: another persona starts a new conversation
  if (conversation && conversation.persona !== $("persona").value) newConversation();
  else { clearChat(); showWelcome(); }
  updateRoleplay();
};
$("cancel").onclick = () => client && client.cancel();
$("composer").onsubmit = (e) => {
  e.preventDefault();
  const text = $("input").value.trim();
  if (!text || !client) return;
  const el = bubble("user", renderMarkdown(text));
  const extra = { persona: $("persona").value, ...(pendingMode && !conversation ? { mode: pendingMode.mode, project_id: pendingMode.project_id } : {}) };
  const clientId = client.send(text, extra);
  localClientIds.add(clientId);
  sentBubbles.set(clientId, el);
  $("input").value = "";
  $("input").placeholder = "Ask your mentor…";
};
$("input").onkeydown = (e) => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("composer").requestSubmit(); } };

await Promise.all([loadUsers(), loadPersonas()]);
showWelcome();
if (token) showSignedIn().catch(() => { sessionStorage.removeItem("mentor_token"); token = null; });
