import { ChatClient } from "/static/chat-client.js";
import { renderMarkdown, escapeHtml } from "/static/markdown.js";
import { toolCard, citationLink } from "/static/cards.js";

const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem("mentor_token");
let client = null;
const bubbles = {}; // assistant message id -> {el, text}

async function api(path, options = {}) {
  const res = await fetch(path, { ...options, headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}), ...(options.headers || {}) } });
  if (!res.ok) throw new Error((await res.json()).detail?.message || res.statusText);
  return res.json();
}

async function loadUsers() {
  const users = await api("/api/demo-users");
  $("user-select").innerHTML = users.map((u) => `<option value="${escapeHtml(u.handle)}">${escapeHtml(u.name)} (${escapeHtml(u.role)})</option>`).join("");
}

let personas = [];

async function loadPersonas() {
  personas = await api("/api/personas");
  $("persona").innerHTML = personas.map((p) => `<option value="${escapeHtml(p.id)}">${escapeHtml(p.name)} — ${escapeHtml(p.role)}</option>`).join("");
  showExamples();
}

// An empty conversation suggests three questions for the chosen persona (from its registry entry).
function showExamples() {
  if ($("messages").querySelector(".msg")) return;
  const persona = personas.find((p) => p.id === $("persona").value);
  const examples = (persona && persona.examples) || [];
  $("messages").innerHTML = examples.length ? `<div class="examples"><p>Try asking ${escapeHtml(persona.name)}:</p>${
    examples.slice(0, 3).map((q) => `<button type="button" class="example">${escapeHtml(q)}</button>`).join("")}</div>` : "";
  for (const btn of $("messages").querySelectorAll("button.example")) btn.onclick = () => { $("input").value = btn.textContent; $("input").focus(); };
}

async function loadConversations() {
  const list = await api("/api/conversations");
  $("conversations").innerHTML = list.map((c) => `<li><a href="#" data-id="${escapeHtml(c.id)}">${escapeHtml(c.title || c.persona)}</a> <small>${escapeHtml(c.persona)}</small></li>`).join("");
  for (const a of $("conversations").querySelectorAll("a")) a.onclick = (e) => { e.preventDefault(); openConversation(a.dataset.id); };
}

function bubble(role, html) {
  const examples = $("messages").querySelector(".examples");
  if (examples) examples.remove();
  const el = document.createElement("div");
  el.className = `msg ${role}`;
  el.innerHTML = html;
  $("messages").appendChild(el);
  $("messages").scrollTop = $("messages").scrollHeight;
  return el;
}

function assistantBubble(messageId) {
  if (!bubbles[messageId]) {
    const el = bubble("assistant", `<div class="cards"></div><div class="text"><span class="thinking">thinking…</span></div><div class="cites"></div><div class="feedback"></div>`);
    el.dataset.messageId = messageId;
    bubbles[messageId] = { el, text: "", unsupported: [] };
  }
  return bubbles[messageId];
}

function feedbackButtons(b, messageId) {
  const box = b.el.querySelector(".feedback");
  box.innerHTML = `<button data-r="5">Helpful</button><button data-r="1">Not helpful</button><label><input type="checkbox"> I implemented this</label>`;
  for (const btn of box.querySelectorAll("button")) btn.onclick = () => {
    client.feedback(Number(messageId), Number(btn.dataset.r), null, box.querySelector("input").checked);
    box.innerHTML = "<small>thanks for the feedback</small>";
  };
}

function onEvent(ev) {
  if (ev.type === "ready") return;
  if (ev.type === "ack") { assistantBubble(ev.message_id); $("cancel").hidden = false; return; }
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
  } else if (ev.type === "handoff") {
    b.el.querySelector(".cards").insertAdjacentHTML("beforeend", `<div class="card card-ticket">Ticket #${escapeHtml(ev.ticket_id)} — a person will reply</div>`);
  } else if (ev.type === "error") {
    (b ? b.el : bubble("system", "")).insertAdjacentHTML("beforeend", `<div class="err">${escapeHtml(ev.message)}</div>`);
  } else if (ev.type === "done") {
    const t = b.el.querySelector(".thinking"); if (t) t.remove();
    const unsupported = (ev.grounding && ev.grounding.unsupported) || [];
    if (unsupported.length) {  // figures the evidence does not hold: marked in the text and named below it
      b.el.querySelector(".text").innerHTML = renderMarkdown(b.text, { unsupported });
      b.el.insertAdjacentHTML("beforeend", `<div class="grounding-note">Not found in the sources or your records: ${escapeHtml(unsupported.join(", "))}. Treat ${unsupported.length === 1 ? "this figure" : "these figures"} with caution.</div>`);
    }
    if (ev.finish_reason === "cancelled") b.el.classList.add("cancelled");
    feedbackButtons(b, ev.message_id);
    $("cancel").hidden = true;
    loadConversations().catch(() => {});
  }
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
  const conv = await api(`/api/conversations/${id}`);
  $("messages").innerHTML = "";
  for (const k of Object.keys(bubbles)) delete bubbles[k];
  for (const m of conv.messages.filter((m) => m.role === "user")) bubble("user", renderMarkdown(m.content));
  for (const ev of conv.events) onEvent(ev);
  client.open(conv.id, conv.last_seq);
  $("persona").value = conv.persona;
}

async function signIn(handle) {
  const res = await api("/api/demo-login", { method: "POST", body: JSON.stringify({ user: handle }) });
  token = res.token;
  sessionStorage.setItem("mentor_token", token);
  await showSignedIn();
}

async function showSignedIn() {
  const me = await api("/api/me");
  $("signin").hidden = true;
  $("whoami").hidden = false;
  $("whoami").textContent = `Signed in as ${me.name}`;
  connect();
  await loadConversations();
}

$("signin-btn").onclick = () => signIn($("user-select").value).catch((e) => alert(e.message));
$("new-chat").onclick = () => { client && client.newConversation(); $("messages").innerHTML = ""; showExamples(); };
$("persona").onchange = () => showExamples();
$("cancel").onclick = () => client && client.cancel();
$("composer").onsubmit = (e) => {
  e.preventDefault();
  const text = $("input").value.trim();
  if (!text || !client) return;
  bubble("user", renderMarkdown(text));
  client.send(text, { persona: $("persona").value });
  $("input").value = "";
};
$("input").onkeydown = (e) => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("composer").requestSubmit(); } };

await Promise.all([loadUsers(), loadPersonas()]);
if (token) showSignedIn().catch(() => { sessionStorage.removeItem("mentor_token"); token = null; });
