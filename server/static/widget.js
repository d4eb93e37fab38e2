// Support widget: <script src="https://YOUR-MENTOR-HOST/widget.js" data-site-key="site_..."></script>
// Renders a floating button and a chat panel inside a Shadow DOM, so the host page's CSS cannot reach it.
(function () {
  const script = document.currentScript;
  const siteKey = script && script.dataset.siteKey;
  if (!siteKey) { console.error("mentor widget: data-site-key is missing"); return; }
  const base = new URL(script.src).origin;
  const visitorKey = `mentor_visitor_${siteKey}`;

  Promise.all([import(`${base}/static/chat-client.js`), import(`${base}/static/markdown.js`), import(`${base}/static/cards.js`)])
    .then(([{ ChatClient }, { renderMarkdown, escapeHtml }, { citationLink }]) => {
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
          .head b { color: #fff; } .head button { background: none; border: none; color: #fff; cursor: pointer; font-size: 18px; }
          .msgs { flex: 1; overflow: auto; padding: 10px; background: #f5f6f8; min-height: 200px; }
          .msg { margin: 6px 0; padding: 8px 10px; border-radius: 10px; background: #fff; overflow-wrap: anywhere; }
          mark.unsupported { background: #ffe1e1; color: #8a0012; border-bottom: 2px dotted #b00020; }
          .note { margin-top: 6px; padding: 4px 6px; border-left: 3px solid #a36b00; background: #fff8e6; font-size: 12px; color: #4d3300; }
          .msg.user { background: #dbe7ff; margin-left: 30px; }
          .msg p { margin: 0 0 6px; } .cites a { display: block; font-size: 12px; color: #2a5bd7; text-decoration: none; }
          .ticket { margin-top: 6px; padding: 6px 8px; border-radius: 8px; background: #fff8e6; border: 1px solid #e0a100; font-size: 13px; }
          .thinking { color: #889; font-style: italic; } .err { color: #b00020; font-size: 12px; }
          form { display: flex; gap: 6px; padding: 8px; border-top: 1px solid #e4e7ec; }
          input { flex: 1; padding: 8px; border: 1px solid #ccd; border-radius: 8px; }
          button.send, button.human { border: none; border-radius: 8px; padding: 8px 10px; cursor: pointer; background: #2a5bd7; color: #fff; }
          button.human { background: #e0a100; width: calc(100% - 16px); margin: 0 8px 8px; }
        </style>
        <button class="launcher" part="launcher">Help</button>
        <div class="panel" role="dialog" aria-label="Support chat">
          <div class="head"><b>Support</b><span class="status"></span><button class="close" aria-label="Close">×</button></div>
          <div class="msgs" aria-live="polite"></div>
          <form><input placeholder="Ask about fees, payments, withdrawals…" aria-label="Message"><button class="send">Send</button></form>
          <button class="human">Talk to a human</button>
        </div>`;
      const $ = (sel) => root.querySelector(sel);
      const msgs = $(".msgs");
      const replies = {};
      const add = (cls, html) => { const el = document.createElement("div"); el.className = `msg ${cls}`; el.innerHTML = html; msgs.appendChild(el); msgs.scrollTop = msgs.scrollHeight; return el; };
      const reply = (id) => replies[id] || (replies[id] = { el: add("bot", `<div class="text"><span class="thinking">thinking…</span></div><div class="cites"></div>`), text: "" });

      const proto = base.startsWith("https") ? "wss" : "ws";
      // the visitor id the server issued (signed, bound to this site) rides in the protocol header, not the URL
      const client = new ChatClient(`${proto}://${new URL(base).host}/ws/chat?site_key=${encodeURIComponent(siteKey)}`, {
        credentials: () => { const v = localStorage.getItem(visitorKey); return v ? [`visitor.${v}`] : []; },
        onStatus: (s) => { $(".status").textContent = s === "connected" ? "" : s; },
        onEvent: (ev) => {
          if (ev.type === "ready") { if (ev.visitor_id) localStorage.setItem(visitorKey, ev.visitor_id); return; }
          if (ev.type === "ack") { reply(ev.message_id); return; }
          if (ev.type === "error" && !ev.message_id) { add("bot", `<span class="err">${escapeHtml(ev.message)}</span>`); return; }
          if (!ev.message_id) return;
          const r = reply(ev.message_id);
          if (ev.type === "token") { r.text += ev.delta; r.el.querySelector(".text").innerHTML = renderMarkdown(r.text); }
          else if (ev.type === "answer_replaced") { r.text = ""; r.el.querySelector(".text").innerHTML = ""; r.el.insertAdjacentHTML("beforeend", `<div class="note">The first answer stated ${escapeHtml(ev.unsupported.join(", "))}, which the help center does not say; this answer quotes the help center instead.</div>`); }
          else if (ev.type === "citation") r.el.querySelector(".cites").insertAdjacentHTML("beforeend", citationLink(ev, base));
          else if (ev.type === "handoff") r.el.insertAdjacentHTML("beforeend", `<div class="ticket" data-ticket="${escapeHtml(ev.ticket_id)}">Ticket #${escapeHtml(ev.ticket_id)} created — a person will reply soon.</div>`);
          else if (ev.type === "error") r.el.insertAdjacentHTML("beforeend", `<div class="err">${escapeHtml(ev.message)}</div>`);
          else if (ev.type === "done") {
            const t = r.el.querySelector(".thinking"); if (t) t.remove(); r.el.dataset.done = ev.finish_reason;
            const unsupported = (ev.grounding && ev.grounding.unsupported) || [];
            if (unsupported.length) { r.el.querySelector(".text").innerHTML = renderMarkdown(r.text, { unsupported }); r.el.insertAdjacentHTML("beforeend", `<div class="note">Not found in the help center: ${escapeHtml(unsupported.join(", "))}.</div>`); }
          }
        },
      });
      let connected = false;
      const open = () => { $(".panel").classList.add("open"); if (!connected) { client.connect(); connected = true; } $("input").focus(); };
      const send = (text) => { add("user", renderMarkdown(text)); client.send(text, { persona: "support" }); };
      $(".launcher").onclick = () => ($(".panel").classList.contains("open") ? $(".panel").classList.remove("open") : open());
      $(".close").onclick = () => $(".panel").classList.remove("open");
      $("form").onsubmit = (e) => { e.preventDefault(); const t = $("input").value.trim(); if (t) { send(t); $("input").value = ""; } };
      $(".human").onclick = () => send("I'd like to talk to a human, please.");
      window.mentorWidget = { client, open, root };
    })
    .catch((err) => console.error("mentor widget failed to load", err));
})();
