// The /admin page's Knowledge panel: upload files by drag-and-drop (or a file picker), import a website from
// its sitemap, sync it, follow the job live, and read its impact report (past answers that cited text the
// sync changed or removed). Everything goes through /api/knowledge (admins only).
import { escapeHtml } from "/static/markdown.js";

const $ = (id) => document.getElementById(id);
let api = null;
let showError = (e) => { $("error").textContent = e.message; };
const day = (iso) => (iso ? iso.slice(0, 16).replace("T", " ") : "–");
const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

function say(id, text, error = false) {  // a status line next to what the admin just did, not at the page's top
  $(id).textContent = text;
  $(id).classList.toggle("err", error);
}

function counts(j) {
  return `${j.added} / ${j.updated} / ${j.unchanged} / ${j.removed}`;
}

async function loadDocuments() {
  const corpus = $("kn-corpus").value;
  const docs = await api(`/api/knowledge?corpus=${encodeURIComponent(corpus)}`);
  $("documents-caption").textContent = `Documents in ${corpus} (${docs.length})`;
  $("documents").querySelector("tbody").innerHTML = docs.map((d) => `<tr data-id="${d.id}">
    <td>${escapeHtml(d.title)}</td><td><a href="/knowledge/${encodeURI(d.source)}" target="_blank" rel="noopener">${escapeHtml(d.source)}</a></td>
    <td>${d.origin === "upload" ? "uploaded" : `source ${escapeHtml(d.origin)}`}</td><td>${d.chunks}</td><td>${escapeHtml(day(d.ingested_at))}</td>
    <td><button type="button" class="remove" aria-label="Remove ${escapeHtml(d.title)}">Remove</button></td></tr>`).join("")
    || `<tr><td colspan="6">No documents in ${escapeHtml(corpus)} yet.</td></tr>`;
  $("documents").querySelectorAll("button.remove").forEach((b) => {
    b.onclick = async () => {
      const row = b.closest("tr");
      if (!confirm(`Remove "${row.cells[0].textContent}" and its chunks? Past answers keep their quotes.`)) return;
      try {
        const gone = await api(`/api/knowledge/${row.dataset.id}`, { method: "DELETE" });
        say("upload-result", `Removed ${gone.source}${gone.impact.length ? `; ${plural(new Set(gone.impact.map((i) => i.message_id)).size, "past answer")} had cited it` : ""}.`);
        await loadDocuments();
      } catch (e) { showError(e); }
    };
  });
}

async function loadSources() {
  const sources = (await api("/api/knowledge/sources")).filter((s) => s.corpus === $("kn-corpus").value);
  $("sources").querySelector("tbody").innerHTML = sources.map((s) => `<tr data-id="${s.id}">
    <td>${escapeHtml(s.sitemap_url || s.urls.join(", "))}${s.every_hours ? `<br><small>every ${s.every_hours} h</small>` : ""}</td>
    <td>${s.documents}</td>
    <td>${s.last_job ? `${escapeHtml(day(s.last_job.started_at))} <span class="badge ${s.last_job.status}">${s.last_job.status}</span>` : "never"}</td>
    <td>${s.last_job ? counts(s.last_job) : "–"}${s.last_job?.reason ? `<br><small>${escapeHtml(s.last_job.reason)}</small>` : ""}</td>
    <td><button type="button" class="sync">Sync now</button>${s.last_job ? ' <button type="button" class="linkish reports">Reports</button>' : ""}
      <button type="button" class="remove-source" aria-label="Remove source ${s.id} and its pages">Remove</button></td></tr>`).join("")
    || `<tr><td colspan="5">No sources for ${escapeHtml($("kn-corpus").value)}.</td></tr>`;
  $("sources").querySelectorAll("button.sync").forEach((b) => {
    b.onclick = async () => {
      b.disabled = true;
      try { follow((await api(`/api/knowledge/sources/${b.closest("tr").dataset.id}/sync`, { method: "POST" })).job_id); }
      catch (e) { say("source-result", e.message, true); b.disabled = false; }
    };
  });
  $("sources").querySelectorAll("button.reports").forEach((b) => {
    b.onclick = () => history(b.closest("tr").dataset.id).catch(showError);
  });
  $("sources").querySelectorAll("button.remove-source").forEach((b) => {
    b.onclick = async () => {
      const id = b.closest("tr").dataset.id;
      if (!confirm(`Remove source ${id} and every page it imported? Uploaded files stay.`)) return;
      try {
        const gone = await api(`/api/knowledge/sources/${id}`, { method: "DELETE" });
        say("source-result", `Removed source ${id} and its ${plural(gone.documents, "page")}${gone.impact.length ? `; ${plural(new Set(gone.impact.map((i) => i.message_id)).size, "past answer")} had cited them` : ""}.`);
        $("job").hidden = true;
        await Promise.all([loadSources(), loadDocuments()]);
      } catch (e) { say("source-result", e.message, true); }
    };
  });
}

async function history(sourceId) {
  // every recent sync of the source, so an impact report stays findable after later syncs
  const jobs = await api(`/api/knowledge/sources/${sourceId}/jobs`);
  $("job").hidden = false;
  $("job-title").textContent = `Syncs of source ${sourceId}`;
  $("job-progress").hidden = true;
  $("job-counts").textContent = "";
  $("job-errors").innerHTML = "";
  $("job-impact").innerHTML = `<ul>${jobs.map((j) => `<li><button type="button" class="linkish" data-job="${j.id}">${escapeHtml(day(j.started_at))}</button>
    ${j.status}${j.errors.length ? `, ${plural(j.errors.length, "error")}` : ""} · ${counts(j)} · ${plural(j.impacted, "past answer")} impacted</li>`).join("")}</ul>`;
  $("job-impact").querySelectorAll("button[data-job]").forEach((b) => { b.onclick = () => follow(b.dataset.job); });
}

function renderJob(job) {
  $("job").hidden = false;
  $("job-progress").hidden = false;
  const status = job.status === "done" && job.errors.length ? `done, with ${plural(job.errors.length, "error")}` : job.status;
  $("job-title").textContent = `Sync ${job.id} of source ${job.source_id}: ${status}`;
  $("job-progress").max = Math.max(job.progress.total, 1);
  $("job-progress").value = job.progress.done;
  $("job-counts").textContent = `${job.progress.done} of ${job.progress.total} pages · ${job.added} added, ${job.updated} updated, `
    + `${job.unchanged} unchanged, ${job.removed} removed · ${plural(job.embedded, "chunk")} embedded${job.reason ? ` · ${job.reason}` : ""}`;
  $("job-errors").innerHTML = job.errors.map((e) => `<li>${escapeHtml(e.error)}</li>`).join("");
  $("job-impact").innerHTML = job.status === "running" ? "" : job.impact.length
    ? `<table><caption>Impact: ${plural(job.impacted, "past answer")} cited text this sync changed or removed</caption>
       <thead><tr><th scope="col">Answered</th><th scope="col">Page</th><th scope="col">Change</th><th scope="col">What it quoted</th></tr></thead>
       <tbody>${job.impact.map((i) => `<tr><td>${escapeHtml(day(i.cited_at))}<br><small>message ${i.message_id}</small></td><td>${escapeHtml(i.title)}<br><small>${escapeHtml(i.source)}</small></td>
       <td>${i.change}</td><td><small>${escapeHtml(i.snippet.slice(0, 200))}</small></td></tr>`).join("")}</tbody></table>`
    : "<p>Impact: no past answer cited text this sync changed or removed.</p>";
}

async function follow(jobId) {
  for (;;) {
    const job = await api(`/api/knowledge/jobs/${jobId}`).catch((e) => { showError(e); return null; });
    if (!job) return;
    renderJob(job);
    if (job.status !== "running") break;
    await new Promise((r) => setTimeout(r, 700));
  }
  await Promise.all([loadSources(), loadDocuments()]).catch(showError);
}

async function upload(files) {
  if (!files.length) return;
  const form = new FormData();
  form.append("corpus", $("kn-corpus").value);
  for (const f of files) form.append("files", f, f.name);
  say("upload-result", `Uploading ${plural(files.length, "file")}… (a long PDF takes a minute or two)`);
  try {
    const res = await api("/api/knowledge", { method: "POST", body: form });
    say("upload-result", res.documents.map((d) => `${d.title} (${d.source}): ${plural(d.chunks, "chunk")}, ${d.status}`).join("; ")
      + (res.impact.length ? `. ${plural(new Set(res.impact.map((i) => i.message_id)).size, "past answer")} cited text it replaced.` : "."));
    await Promise.all([loadDocuments(), loadCorpora()]);
  } catch (e) { say("upload-result", `Nothing uploaded: ${e.message}`, true); }
}

async function loadCorpora() {
  const corpora = await api("/api/knowledge/corpora");
  const chosen = $("kn-corpus").value || "help_center";
  $("kn-corpus").innerHTML = corpora.map((c) => `<option value="${escapeHtml(c.name)}" ${c.name === chosen ? "selected" : ""}>${escapeHtml(c.name)} (${plural(c.documents, "document")})</option>`).join("");
}

export async function initKnowledge(request, onError) {
  api = request;
  showError = onError;
  await loadCorpora();
  $("kn-corpus").onchange = () => Promise.all([loadSources(), loadDocuments()]).catch(showError);
  const zone = $("dropzone");
  zone.ondragover = (e) => { e.preventDefault(); zone.classList.add("over"); };
  zone.ondragleave = () => zone.classList.remove("over");
  zone.ondrop = (e) => { e.preventDefault(); zone.classList.remove("over"); upload([...e.dataTransfer.files]); };
  zone.onclick = () => $("kn-files").click();
  zone.onkeydown = (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); $("kn-files").click(); } };
  $("kn-files").onchange = () => { upload([...$("kn-files").files]); $("kn-files").value = ""; };
  $("source-form").onsubmit = async (e) => {
    e.preventDefault();
    const body = { corpus: $("kn-corpus").value, sitemap_url: $("src-url").value.trim(),
      ...($("src-every").value ? { every_hours: Number($("src-every").value) } : {}) };
    try {
      const res = await api("/api/knowledge/sources", { method: "POST", body: JSON.stringify(body) });
      $("src-url").value = "";
      say("source-result", `Source ${res.source_id} created; its first sync is running.`);
      await loadSources();
      follow(res.job_id);
    } catch (err) { say("source-result", `Not imported: ${err.message}`, true); }
  };
  await Promise.all([loadSources(), loadDocuments()]);
}
