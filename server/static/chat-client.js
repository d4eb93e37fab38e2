// The chat protocol client shared by the page and the widget: sends frames, de-duplicates events by
// seq, and on reconnect resumes each conversation from the last seq it saw and re-sends messages
// that were never acknowledged (same client_id, so the server does not start a second turn).
// Credentials travel in the Sec-WebSocket-Protocol header (`credentials()` returns e.g. ["bearer.<jwt>"]),
// never in the URL, which servers and proxies log.
export class ChatClient {
  constructor(url, { onEvent, onStatus, credentials } = {}) {
    this.url = url;
    this.credentials = credentials || (() => []);
    this.onEvent = onEvent || (() => {});
    this.onStatus = onStatus || (() => {});
    this.lastSeq = {};        // conversation id -> highest seq seen
    this.pending = new Map(); // client_id -> message frame not yet acked
    this.conversationId = null;
    this.backoff = 500;
    this.closedByUser = false;
  }

  connect() {
    this.closedByUser = false;
    const ws = new WebSocket(this.url, ["mentor.v1", ...this.credentials()]);
    this.ws = ws;
    this.onStatus("connecting");
    ws.onopen = () => {
      this.backoff = 500;
      this.onStatus("connected");
      if (this.conversationId) this.raw({ type: "resume", conversation_id: this.conversationId, after_seq: this.lastSeq[this.conversationId] || 0 });
      for (const frame of this.pending.values()) this.raw(frame);
    };
    ws.onmessage = (msg) => {
      const ev = JSON.parse(msg.data);
      if (ev.seq != null && ev.conversation_id) {
        const seen = this.lastSeq[ev.conversation_id] || 0;
        if (ev.seq <= seen) return; // duplicate after a resume
        this.lastSeq[ev.conversation_id] = ev.seq;
      }
      if (ev.type === "ack") {
        this.pending.delete(ev.client_id);
        this.conversationId = ev.conversation_id;
      }
      if (ev.type === "error" && ev.client_id) this.pending.delete(ev.client_id);
      this.onEvent(ev);
    };
    ws.onclose = (e) => {
      if (this.closedByUser || e.code === 4401) { this.onStatus(e.code === 4401 ? "unauthorized" : "closed"); return; }
      this.onStatus("reconnecting");
      setTimeout(() => this.connect(), this.backoff);
      this.backoff = Math.min(this.backoff * 2, 8000);
    };
  }

  raw(frame) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(frame));
  }

  send(text, extra = {}) {
    const clientId = (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random()).replace(/[^A-Za-z0-9_.:-]/g, "");
    const frame = { type: "message", client_id: clientId, text, ...extra };
    if (this.conversationId && !frame.conversation_id) frame.conversation_id = this.conversationId;
    this.pending.set(clientId, frame);
    this.raw(frame);
    return clientId;
  }

  cancel() { this.raw({ type: "cancel", conversation_id: this.conversationId || undefined }); }
  feedback(messageId, rating, comment, implemented) { this.raw({ type: "feedback", message_id: messageId, rating, comment, implemented: !!implemented }); }
  newConversation() { this.conversationId = null; }
  // Switch to a conversation whose events up to `lastSeq` are already on screen, and follow the rest live.
  open(conversationId, lastSeq) {
    this.conversationId = conversationId;
    this.lastSeq[conversationId] = lastSeq || 0;
    this.raw({ type: "resume", conversation_id: conversationId, after_seq: this.lastSeq[conversationId] });
  }
  dropConnection() { if (this.ws) this.ws.close(); } // simulate a network drop (reconnects and resumes)
  close() { this.closedByUser = true; if (this.ws) this.ws.close(); }
}
