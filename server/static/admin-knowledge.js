// The /admin page's Knowledge panel: upload files by drag-and-drop (or a file picker), import a website from
// its sitemap, sync it, follow the job live, and read its impact report (past answers that cited text the
// sync changed or removed). Everything goes through /api/knowledge (admins only).
import { escapeHtml } from "/static/markdown.js";

const $ = (id) => document.getElementById(id);
let api = null;
let showError = (e) => { $("error").textContent = e.message; };
const day = (iso) => (iso ? iso.slice(0, 16).replace("T", " ") : "–");

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
        $("upload-result").textContent = `Removed ${gone.source}${gone.impact.length ? `; ${gone.impact.length} past answer(s) had cited it` : ""}.`;
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
    <td><button type="button" class="sync">Sync now</button>${s.last_job ? ' <button type="button" class="linkish report">Report</button>' : ""}</td></tr>`).join("")
    || `<tr><td colspan="5">No sources for ${escapeHtml($("kn-corpus").value)}.</td></tr>`;
  $("sources").querySelectorAll("button.sync").forEach((b) => {
    b.onclick = async () => {
      b.disabled = true;
      try { follow((await api(`/api/knowledge/sources/${b.closest("tr").dataset.id}/sync`, { method: "POST" })).job_id); }
      catch (e) { showError(e); b.disabled = false; }
    };
  });
  $("sources").querySelectorAll("button.report").forEach((b) => {
    const source = sources.find((s) => String(s.id) === b.closest("tr").dataset.id);
    b.onclick = () => follow(source.last_job.id);
  });
}

function renderJob(job) {
  $("job").hidden = false;
  $("job-title").textContent = `Sync ${job.id} of source ${job.source_id}: ${job.status}`;
  $("job-progress").max = Math.max(job.progress.total, 1);
  $("job-progress").value = job.progress.done;
  $("job-counts").textContent = `${job.progress.done} of ${job.progress.total} pages · ${job.added} added, ${job.updated} updated, `
    + `${job.unchanged} unchanged, ${job.removed} removed · ${job.embedded} chunks embedded${job.reason ? ` · ${job.reason}` : ""}`;
  $("job-errors").innerHTML = job.errors.map((e) => `<li>${escapeHtml(e.error)}</li>`).join("");
  $("job-impact").innerHTML = job.status === "running" ? "" : job.impact.length
    ? `<table><caption>Impact: past answers that cited text this sync changed or removed (${job.impacted})</caption>
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
  $("upload-result").textContent = `Uploading ${files.length} file(s)…`;
  try {
    const res = await api("/api/knowledge", { method: "POST", body: form });
    $("upload-result").textContent = res.documents.map((d) => `${d.title} (${d.source}): ${d.chunks} chunks, ${d.status}`).join("; ")
      + (res.impact.length ? `. ${res.impact.length} past answer(s) cited text it replaced.` : ".");
    await loadDocuments();
  } catch (e) { $("upload-result").textContent = `Nothing uploaded: ${e.message}`; }
}

export async function initKnowledge(request, onError) {
  api = request;
  showError = onError;
  const corpora = await api("/api/knowledge/corpora");
  const chosen = $("kn-corpus").value || "help_center";
  $("kn-corpus").innerHTML = corpora.map((c) => `<option value="${escapeHtml(c.name)}" ${c.name === chosen ? "selected" : ""}>${escapeHtml(c.name)} (${c.documents} documents)</option>`).join("");
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
      await loadSources();
      follow(res.job_id);
    } catch (err) { showError(err); }
  };
  await Promise.all([loadSources(), loadDocuments()]);
}
