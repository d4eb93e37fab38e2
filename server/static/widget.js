// Support widget: <script src="https://YOUR-MENTOR-HOST/widget.js" data-site-key="site_..."></script>
// For a signed-in user of the host site add data-user-token="<HS256 JWT signed with the site's secret>".
// Renders a floating button and a chat panel inside a Shadow DOM, so the host page's CSS cannot reach it.
// The visitor id the server issued and the current conversation are kept in localStorage, so a reload
// reopens the conversation (rebuilt from its stored events). Escape closes the panel; focus stays inside it
// while it is open; on a phone it fills the screen.
(function () {
  const script = document.currentScript;
  const siteKey = script && script.dataset.siteKey;
  if (!siteKey) { console.error("mentor widget: data-site-key is missing"); return; }
  const userToken = script.dataset.userToken || null;  // optional: the host site's own signed-in user
  const base = new URL(script.src).origin;
  const visitorKey = `mentor_visitor_${siteKey}`;
  const conversationKey = `mentor_conversation_${siteKey}`;

  Promise.all([import(`${base}/static/chat-client.js`), import(`${base}/static/markdown.js`), import(`${base}/static/cards.js`)])
    .then(([{ ChatClient }, { renderMarkdown, escapeHtml }, { citationLink, answerSource }]) => {
      const host = document.createElement("div");
      host.id = "mentor-support-widget";
      document.body.appendChild(host);
      const root = host.attachShadow({ mode: "open" });
      root.innerHTML = `
        <style>
          :host { all: initial; }
          * { box-sizing: border-box; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; }
          .launcher { position: fixed; right: 20px; bottom: 20px; z-index: 2147483000; border: none; border-radius: 28px;
            padding: 12px 18px; background: #1d2a44; color: #fff; cursor: pointer; box-shadow: 0 4px 14px #0003; }
          .panel { position: fixed; right: 20px; bottom: 80px; z-index: 2147483000; width: 360px; max-height: 70vh; display: none;
            flex-direction: column; background: #fff; color: #1d2330; border-radius: 12px; box-shadow: 0 8px 30px #0004; overflow: hidden; }
          .panel.open { display: flex; }
          .head { display: flex; align-items: center; justify-content: space-between; padding: 10px 14px; background: #1d2a44; color: #fff; }
          .head h2 { color: #fff; margin: 0; font-weight: 700; } .head button { background: none; border: none; color: #fff; cursor: pointer; font-size: 18px; }
          .status { color: #fff; font-size: 12px; }
          .msgs { flex: 1; overflow: auto; padding: 10px; background: #f5f6f8; min-height: 200px; }
          .msg { margin: 6px 0; padding: 8px 10px; border-radius: 10px; background: #fff; overflow-wrap: anywhere; }
          .msg.user { background: #dbe7ff; margin-left: 30px; }
          .msg.agent { background: #e7f6ec; border-left: 3px solid #1f7a3f; } .msg .who { font-size: 12px; font-weight: 700; color: #1a5c30; }
          .msg.note { background: none; border-left: none; padding: 2px 6px; font-size: 12px; color: #4a4f59; }
          .msg.typing { background: none; padding: 2px 6px; font-size: 12px; color: #4a4f59; font-style: italic; }
          .seen { font-size: 11px; color: #4a4f59; text-align: right; margin-top: 2px; }
          .msg p { margin: 0 0 6px; } .cites a { display: block; font-size: 12px; color: #1f4fbf; text-decoration: none; } .from { font-size: 12px; color: #444; margin-top: 4px; } .contact .change { margin-left: 4px; font-size: 12px; }
          .ticket { margin-top: 6px; padding: 6px 8px; border-radius: 8px; background: #fff8e6; border: 1px solid #a36b00; font-size: 13px; }
          .ticket form { display: flex; flex-wrap: wrap; gap: 4px; margin-top: 6px; } .ticket label { flex-basis: 100%; font-size: 12px; margin-top: 4px; } .ticket input { min-width: 0; } .ticket button { white-space: nowrap; } .ticket .state { margin-top: 4px; font-weight: 600; }
          .thinking { color: #5f6470; font-style: italic; } .err { color: #b00020; font-size: 12px; }
          mark.unsupported { background: #ffe1e1; color: #8a0012; border-bottom: 2px dotted #b00020; }
          .note { margin-top: 6px; padding: 4px 6px; border-left: 3px solid #a36b00; background: #fff8e6; font-size: 12px; color: #4d3300; }
          .ext-url { color: #5f6470; font-size: 12px; }
          form.composer { display: flex; gap: 6px; padding: 8px; border-top: 1px solid #e4e7ec; }
          input { flex: 1; padding: 8px; border: 1px solid #8a93a3; border-radius: 8px; color: #1d2330; }
          button.send, button.human, .ticket button { border: none; border-radius: 8px; padding: 8px 10px; cursor: pointer; background: #1f4fbf; color: #fff; }
          button.human { background: #7a4b00; width: calc(100% - 16px); margin: 0 8px 8px; }
          .intro { margin: 4px 2px 8px; color: #3d4454; }
          .sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
          @media (max-width: 520px) { .panel { inset: 0; width: 100%; max-height: none; border-radius: 0; } .panel.open ~ .launcher { display: none; } }
        </style>
        <div class="panel" role="dialog" aria-modal="true" aria-labelledby="mentor-widget-title">
          <div class="head"><h2 id="mentor-widget-title">Support</h2><span class="status" role="status"></span><button class="close" type="button" aria-label="Close support chat">×</button></div>
          <div class="msgs" role="log" aria-live="off"><p class="intro">Hi! Ask about fees, payments, withdrawals or your account — or talk to a person.</p></div>
          <div class="announcer sr-only" aria-live="polite"></div>
          <form class="composer"><label class="sr-only" for="mentor-widget-input">Your message</label><input id="mentor-widget-input" placeholder="Ask about fees, payments, withdrawals…"><button class="send" type="submit">Send</button></form>
          <button class="human" type="button">Talk to a person</button>
        </div>
        <button class="launcher" part="launcher" type="button" aria-expanded="false">Help</button>`;
      const $ = (sel) => root.querySelector(sel);
      const msgs = $(".msgs");
      const replies = {};
      const mine = new Set(); // client ids of messages shown when sent (their ack must not show them again)
      // A person from support (docs/protocol.md, "Human handoff"): their messages, typing and "seen" marks.
      let conversationId = null, agentHere = false, seenUpto = 0, typingTimer = null, typedAt = 0;
      const sentBubbles = new Map();  // client id -> the visitor's own message, until its ack gives it a seq
      const markSeen = () => msgs.querySelectorAll(".msg.user[data-seq]").forEach((el) => {
        if (Number(el.dataset.seq) <= seenUpto && !el.querySelector(".seen")) el.insertAdjacentHTML("beforeend", '<div class="seen">Seen</div>');
      });
      const showTyping = (name) => {
        let t = msgs.querySelector(".typing");
        if (!t) t = add("typing", "");
        t.textContent = `${name || "Support"} is typing…`;
        msgs.appendChild(t);
        clearTimeout(typingTimer);
        typingTimer = setTimeout(() => t.remove(), 4000);
      };
      const ticketState = (text) => {  // the latest ticket's state line follows the handoff
        const lines = msgs.querySelectorAll(".ticket .state");
        if (lines.length) lines[lines.length - 1].textContent = text;
      };
      function agentEvent(ev) {
        const who = ev.agent ? escapeHtml(ev.agent.name) : "Support";
        if (ev.type === "agent_joined") {
          agentHere = true;
          ticketState(`Status: ${ev.agent ? ev.agent.name : "Support"} is handling it`);
          add("note", `${who} from support joined the conversation.`);
        }
        else if (ev.type === "agent_message") {
          agentHere = true;
          const t = msgs.querySelector(".typing"); if (t) t.remove();
          add("agent", `<div class="who">${who}</div><div class="text">${renderMarkdown(ev.text)}</div>`);
          if (ev.seq && isOpen()) client.raw({ type: "read", conversation_id: ev.conversation_id, upto_seq: ev.seq });
        }
        else if (ev.type === "agent_left") {
          agentHere = false;
          ticketState("Status: back with the assistant (still open)");
          add("note", `${who} handed you back to the assistant.`);
        }
        else if (ev.type === "handoff_resolved") { agentHere = false; ticketState("Status: resolved"); add("note", "Support marked this as resolved."); }
        else if (ev.type === "typing") { if (ev.who === "agent") showTyping(ev.name && escapeHtml(ev.name)); }
        else if (ev.type === "read") { if (ev.who === "agent") { seenUpto = Math.max(seenUpto, ev.upto_seq); markSeen(); } }
        else return false;
        return true;
      }
      const add = (cls, html) => { const el = document.createElement("div"); el.className = `msg ${cls}`; el.innerHTML = html; msgs.appendChild(el); msgs.scrollTop = msgs.scrollHeight; return el; };
      const reply = (id) => replies[id] || (replies[id] = { el: add("bot", `<div class="text"><span class="thinking">thinking…</span></div><div class="cites"></div>`), text: "" });

      // the address a visitor left for a ticket, kept in this browser so a reload shows it (the server has it too)
      const contactKey = (ticketId) => `${conversationKey}_contact_${ticketId}`;
      function contactSaved(ticketEl, ticketId, email) {
        const old = ticketEl.querySelector("form, .contact"); if (old) old.remove();
        ticketEl.insertAdjacentHTML("beforeend", `<div class="contact">We'll write to you at <b>${escapeHtml(email)}</b> (and here). <button type="button" class="change">Change</button></div>`);
        ticketEl.querySelector(".contact .change").onclick = () => contactForm(ticketEl, ticketId, email);
      }
      function contactForm(ticketEl, ticketId, editing = null) {
        const saved = localStorage.getItem(contactKey(ticketId));
        if (saved && editing === null) { contactSaved(ticketEl, ticketId, saved); return; }
        const old = ticketEl.querySelector("form, .contact"); if (old) old.remove();
        ticketEl.insertAdjacentHTML("beforeend", `<form><label for="mentor-contact-${ticketId}">How can we reach you?</label>
          <input id="mentor-contact-${ticketId}" type="email" placeholder="you@example.com" required><button type="submit">Save</button></form>`);
        if (editing) ticketEl.querySelector("input").value = editing;
        ticketEl.querySelector("form").onsubmit = (e) => {
          e.preventDefault();
          const email = ticketEl.querySelector("input").value.trim();
          if (email) { pendingContact[ticketId] = email; client.raw({ type: "contact", ticket_id: Number(ticketId), email }); }
        };
      }
      const pendingContact = {};

      const client = new ChatClient(`${base.startsWith("https") ? "wss" : "ws"}://${new URL(base).host}/ws/chat?site_key=${encodeURIComponent(siteKey)}`, {
        // the visitor id the server issued (signed, bound to this site) rides in the protocol header, not the URL
        // a host page's signed-in user: a token the site signed with its secret (data-user-token)
        credentials: () => { const v = localStorage.getItem(visitorKey); return [...(v ? [`visitor.${v}`] : []), ...(userToken ? [`user.${userToken}`] : [])]; },
        onStatus: (s) => { $(".status").textContent = s === "connected" ? "" : s; },
        onEvent: (ev) => {
          if (ev.type === "ready") { if (ev.visitor_id) localStorage.setItem(visitorKey, ev.visitor_id); return; }
          if (ev.type === "contact_saved") {
            const t = root.querySelector(`.ticket[data-ticket="${ev.ticket_id}"]`);
            const email = pendingContact[ev.ticket_id];
            if (email) localStorage.setItem(contactKey(ev.ticket_id), email);
            if (t && email) contactSaved(t, ev.ticket_id, email);
            $("form.composer input").focus();
            return;
          }
          if (ev.type === "ack") {
            if (ev.conversation_id) { localStorage.setItem(conversationKey, ev.conversation_id); conversationId = ev.conversation_id; }
            const own = sentBubbles.get(ev.client_id);
            const userEl = own || (ev.text && !mine.has(ev.client_id) ? add("user", renderMarkdown(ev.text)) : null); // a replay after a reload
            if (userEl && ev.seq) { userEl.dataset.seq = ev.seq; markSeen(); }
            if (ev.message_id !== null) reply(ev.message_id); // null: a person from support answers this one
            return;
          }
          if (agentEvent(ev)) return;
          if (ev.type === "error" && !ev.message_id) {
            if (ev.code === "not_found" && !ev.client_id) { localStorage.removeItem(conversationKey); client.newConversation(); return; }
            add("bot", `<span class="err" role="alert">${escapeHtml(ev.message)}</span>`); return;
          }
          if (!ev.message_id) return;
          const r = reply(ev.message_id);
          if (ev.type === "token") { r.text += ev.delta; r.el.querySelector(".text").innerHTML = renderMarkdown(r.text); }
          else if (ev.type === "answer_replaced") { r.text = ""; r.el.querySelector(".text").innerHTML = ""; r.el.insertAdjacentHTML("beforeend", `<div class="note">The first answer stated ${escapeHtml(ev.unsupported.join(", "))}, which the help center does not say; this answer quotes the help center instead.</div>`); }
          else if (ev.type === "citation") { r.el.querySelector(".cites").insertAdjacentHTML("beforeend", citationLink(ev, base)); (r.cites = r.cites || {})[ev.index] = ev; }
          else if (ev.type === "handoff") {
            r.el.insertAdjacentHTML("beforeend", `<div class="ticket" data-ticket="${escapeHtml(ev.ticket_id)}">Ticket #${escapeHtml(ev.ticket_id)} — a person from our support team will follow up.<div class="state" role="status">Status: waiting for a person</div></div>`);
            contactForm(r.el.querySelector(`.ticket[data-ticket="${ev.ticket_id}"]`), ev.ticket_id);
          }
          else if (ev.type === "error") r.el.insertAdjacentHTML("beforeend", `<div class="err" role="alert">${escapeHtml(ev.message)}</div>`);
          else if (ev.type === "done") {
            const t = r.el.querySelector(".thinking"); if (t) t.remove(); r.el.dataset.done = ev.finish_reason;
            r.el.querySelectorAll(".from").forEach((el) => el.remove()); r.el.querySelector(".text").insertAdjacentHTML("afterend", answerSource(r.text, r.cites));
            const unsupported = (ev.grounding && ev.grounding.unsupported) || [];
            if (unsupported.length) { r.el.querySelector(".text").innerHTML = renderMarkdown(r.text, { unsupported }); r.el.insertAdjacentHTML("beforeend", `<div class="note">Not found in the help center: ${escapeHtml(unsupported.join(", "))}.</div>`); }
            $(".announcer").textContent = "Answer complete.";
          }
        },
      });
      let connected = false;
      const panel = $(".panel");
      const isOpen = () => panel.classList.contains("open");
      const open = () => {
        panel.classList.add("open");
        $(".launcher").setAttribute("aria-expanded", "true");
        if (!connected) {
          connected = true;
          const saved = localStorage.getItem(conversationKey);
          if (saved) client.open(saved, 0); // replays the conversation's events, then follows it live
          client.connect();
        }
        $("form.composer input").focus();
      };
      const close = () => { panel.classList.remove("open"); $(".launcher").setAttribute("aria-expanded", "false"); $(".launcher").focus(); };
      const send = (text) => { const el = add("user", renderMarkdown(text)); const id = client.send(text, { persona: "support" }); mine.add(id); sentBubbles.set(id, el); };
      $("form.composer input").addEventListener("input", () => {  // tell the agent, at most every 2 s
        if (!agentHere || !conversationId || Date.now() - typedAt < 2000) return;
        typedAt = Date.now();
        client.raw({ type: "typing", conversation_id: conversationId });
      });
      $(".launcher").onclick = () => (isOpen() ? close() : open());
      $(".close").onclick = close;
      $("form.composer").onsubmit = (e) => { e.preventDefault(); const t = $("form.composer input").value.trim(); if (t) { send(t); $("form.composer input").value = ""; } };
      $(".human").onclick = () => send("I'd like to talk to a person, please.");
      document.addEventListener("keydown", (e) => { if (e.key === "Escape" && isOpen()) close(); });
      panel.addEventListener("keydown", (e) => {
        if (e.key === "Escape") { e.preventDefault(); e.stopPropagation(); close(); return; }
        if (e.key !== "Tab") return; // keep focus inside the open dialog
        const items = [...panel.querySelectorAll("button, input, a[href]")].filter((el) => el.offsetParent !== null);
        if (!items.length) return;
        const first = items[0], last = items[items.length - 1], active = root.activeElement;
        if (e.shiftKey && active === first) { e.preventDefault(); last.focus(); }
        else if (!e.shiftKey && active === last) { e.preventDefault(); first.focus(); }
      });
      window.mentorWidget = { client, open, close, root };
    })
    .catch((err) => console.error("mentor widget failed to load", err));
})();
