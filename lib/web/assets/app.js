// pacs2xnat web door: fills the pages from the JSON API and keeps them up to date.
// Served from /assets/app.js (compiled into the daemon); no inline script anywhere.
"use strict";

(function () {
  const POLL_MS = 2000;
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.content : "";

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  function when(unix) {
    if (!unix) return "";
    return new Date(unix * 1000).toLocaleString();
  }

  function duration(s) {
    if (s === null || s === undefined) return "";
    if (s < 90) return Math.round(s) + " s";
    if (s < 5400) return Math.round(s / 60) + " min";
    return (s / 3600).toFixed(1) + " h";
  }

  async function api(method, url, body) {
    const opts = { method: method, credentials: "same-origin", headers: {} };
    if (method !== "GET") opts.headers["X-CSRF-Token"] = csrf;
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    const res = await fetch(url, opts);
    if (res.status === 401) { window.location.href = "/login"; throw new Error("logged out"); }
    let data;
    try { data = await res.json(); } catch (e) { data = { ok: false, error: { message: res.status + " " + res.statusText } }; }
    if (!data.ok) {
      const err = new Error((data.error && data.error.message) || ("HTTP " + res.status));
      err.status = res.status;
      throw err;
    }
    return data;
  }

  function countsText(counts) {
    return Object.keys(counts).filter(function (k) { return counts[k] > 0; })
      .map(function (k) { return counts[k] + " " + k; }).join(", ");
  }

  // ---- jobs page ---------------------------------------------------------------------------
  function jobsPage() {
    const body = document.querySelector("#jobs tbody");
    async function refresh() {
      try {
        const data = await api("GET", "/api/jobs");
        body.replaceChildren();
        data.jobs.forEach(function (j) {
          const tr = el("tr");
          tr.dataset.job = j.job;
          const a = el("a", j.job);
          a.href = "/jobs/" + j.job;
          const id = el("td"); id.appendChild(a); tr.appendChild(id);
          tr.appendChild(el("td", j.project));
          tr.appendChild(el("td", j.pacs));
          tr.appendChild(el("td", j.who));
          tr.appendChild(el("td", when(j.created_at)));
          tr.appendChild(el("td", j.state + (j.paused ? " (paused)" : ""), "state-" + j.state));
          const p = el("td");
          const bar = el("progress"); bar.max = 1; bar.value = j.progress;
          p.appendChild(bar); p.appendChild(el("span", " " + j.done + " / " + j.total));
          tr.appendChild(p);
          tr.appendChild(el("td", countsText(j.counts)));
          tr.appendChild(el("td", j.rate_per_hour ? j.rate_per_hour.toFixed(1) + " /h" : ""));
          tr.appendChild(el("td", duration(j.eta_s)));
          body.appendChild(tr);
        });
        document.getElementById("updated").textContent = "Updated " + new Date().toLocaleTimeString();
      } catch (e) {
        document.getElementById("updated").textContent = "Cannot update: " + e.message;
      }
    }
    refresh();
    setInterval(refresh, POLL_MS);
  }

  // ---- job page ----------------------------------------------------------------------------
  function jobPage() {
    const summary = document.getElementById("summary");
    const jobId = summary.dataset.job;
    const message = document.getElementById("message");
    const filter = document.getElementById("state-filter");
    const limit = 100;
    let offset = 0;

    function key(it) {
      if (it.kind === "accession") return "ACC " + it.accession;
      if (it.kind === "patient_date") return "PID " + it.patient_id + " " + it.study_date;
      return "UID " + it.study_uid;
    }

    function reason(it) {
      if (it.state === "failed") return it.last_error;
      if (it.state === "queued") return it.wait_reason || it.last_error;
      return it.wait_reason || "";
    }

    function renderSummary(j, mayControl) {
      summary.replaceChildren();
      const dl = el("dl");
      const add = function (k, v) { dl.appendChild(el("dt", k)); dl.appendChild(el("dd", v)); };
      add("Project", j.project);
      add("PACS", j.pacs);
      add("Submitted by", j.who);
      add("Created", when(j.created_at));
      add("CSV", j.csv_name);
      add("State", j.state + (j.paused ? " (paused)" : ""));
      add("Rows", j.done + " of " + j.total + " finished: " + countsText(j.counts));
      add("Instances", j.instances.expected + " expected, " + j.instances.received +
          " received, " + j.instances.verified + " verified");
      add("Rate", j.rate_per_hour ? j.rate_per_hour.toFixed(1) + " rows/h" : "");
      add("ETA", duration(j.eta_s));
      if (j.review) add("Review", j.review);
      summary.appendChild(dl);
      const bar = el("progress"); bar.max = 1; bar.value = j.progress; bar.id = "job-progress";
      summary.appendChild(bar);
      summary.dataset.state = j.state;
      document.querySelectorAll("button[data-action]").forEach(function (b) {
        b.disabled = !mayControl;
      });
    }

    // Rows whose series are shown (a click on the row toggles them); kept across redraws.
    const expanded = new Set();

    async function seriesRow(it, columns) {
      const tr = el("tr", null, "series");
      const td = el("td");
      td.colSpan = columns;
      tr.appendChild(td);
      try {
        const r = (await api("GET", "/api/items/" + it.id + "/series")).result;
        const t = el("table");
        const head = el("tr");
        ["Series", "Modality", "Description", "Expected", "Received", "Verified"].forEach(function (h) { head.appendChild(el("th", h)); });
        t.appendChild(head);
        r.series.forEach(function (x) {
          const row = el("tr");
          [x.number || "", x.modality, x.description, x.expected, x.received,
           r.state === "verified" ? x.expected : "-"].forEach(function (v) { row.appendChild(el("td", v)); });
          row.title = x.series_uid;
          t.appendChild(row);
        });
        if (!r.series.length) td.textContent = "no series known yet (the PACS has not been asked)";
        else td.appendChild(t);
      } catch (e) { td.textContent = e.message; }
      return tr;
    }

    function renderItems(items) {
      const body = document.querySelector("#items tbody");
      body.replaceChildren();
      items.forEach(function (it) {
        const tr = el("tr");
        tr.dataset.row = it.row;
        tr.dataset.state = it.state;
        tr.className = "item";
        tr.title = "click to show its series";
        tr.addEventListener("click", function () {
          if (expanded.has(it.id)) expanded.delete(it.id); else expanded.add(it.id);
          refresh();
        });
        [it.row, it.line, key(it), it.subject, it.session].forEach(function (v) { tr.appendChild(el("td", v)); });
        tr.appendChild(el("td", it.state, "state-" + it.state));
        tr.appendChild(el("td", it.expected + " / " + it.received + " / " + it.verified));
        tr.appendChild(el("td", it.attempts));
        tr.appendChild(el("td", reason(it), "reason"));
        tr.appendChild(el("td", when(it.updated_at)));
        body.appendChild(tr);
        if (expanded.has(it.id)) {
          const placeholder = el("tr", null, "series");
          body.appendChild(placeholder);
          seriesRow(it, tr.children.length).then(function (row) { placeholder.replaceWith(row); });
        }
      });
      document.getElementById("page").textContent =
        "rows " + (items.length ? offset + 1 : 0) + "-" + (offset + items.length);
      document.getElementById("next").disabled = items.length < limit;
      document.getElementById("prev").disabled = offset === 0;
    }

    async function refresh() {
      let url = "/api/jobs/" + jobId + "?offset=" + offset + "&limit=" + limit;
      if (filter.value) url += "&state=" + encodeURIComponent(filter.value);
      try {
        const data = await api("GET", url);
        renderSummary(data.job, data.may_control);
        renderItems(data.items);
      } catch (e) {
        message.textContent = "Cannot update: " + e.message;
      }
    }

    document.querySelectorAll("button[data-action]").forEach(function (b) {
      b.addEventListener("click", async function () {
        const action = b.dataset.action;
        if (action === "cancel" && !window.confirm("Cancel every unfinished row of job " + jobId + "?")) return;
        try {
          const data = await api("POST", "/api/jobs/" + jobId + "/" + action);
          const r = data.result;
          message.textContent = action + ": done" +
            (r.requeued !== undefined ? " (" + r.requeued + " row(s) queued again)" : "") +
            (r.cancelled !== undefined ? " (" + r.cancelled + " row(s) cancelled)" : "");
        } catch (e) {
          message.textContent = action + " refused: " + e.message;
        }
        refresh();
      });
    });
    filter.addEventListener("change", function () { offset = 0; refresh(); });
    document.getElementById("next").addEventListener("click", function () { offset += limit; refresh(); });
    document.getElementById("prev").addEventListener("click", function () { offset = Math.max(0, offset - limit); refresh(); });
    refresh();
    setInterval(refresh, POLL_MS);
  }

  // ---- submit page -------------------------------------------------------------------------
  function toBase64(buffer) {
    const bytes = new Uint8Array(buffer);
    const parts = [];
    for (let i = 0; i < bytes.length; i += 0x8000) {
      parts.push(String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000)));
    }
    return btoa(parts.join(""));
  }

  function submitPage() {
    const status = document.getElementById("status");
    const details = document.getElementById("details");
    const problems = document.getElementById("problems");
    const dry = document.getElementById("dry-run");
    const queue = document.getElementById("queue");
    const file = document.getElementById("csv");

    function say(text, cls) { status.textContent = text; status.className = "message " + (cls || ""); }

    async function args() {
      const f = file.files[0];
      if (!f) throw new Error("choose a CSV file first");
      const a = { csv_name: f.name, csv_base64: toBase64(await f.arrayBuffer()),
                  project: document.getElementById("project").value,
                  pacs: document.getElementById("pacs").value };
      ["modality", "series_description"].forEach(function (k) {
        const v = document.getElementById(k).value.trim();
        if (v) a[k] = v;
      });
      ["strict", "skip_existing", "append", "no_anonymisation_check", "allow_duplicate"].forEach(function (k) {
        if (document.getElementById(k).checked) a[k] = true;
      });
      return a;
    }

    function showProblems(list) {
      const body = problems.querySelector("tbody");
      body.replaceChildren();
      list.forEach(function (p) {
        const tr = el("tr");
        tr.appendChild(el("td", p.line));
        tr.appendChild(el("td", p.column ? p.column + (p.column_name ? " (" + p.column_name + ")" : "") : ""));
        tr.appendChild(el("td", p.message));
        body.appendChild(tr);
      });
      problems.hidden = list.length === 0;
    }

    file.addEventListener("change", function () { dry.disabled = true; queue.disabled = true; });

    document.getElementById("check").addEventListener("click", async function () {
      details.textContent = "";
      dry.disabled = true; queue.disabled = true;
      try {
        const r = (await api("POST", "/api/check", await args())).result;
        showProblems(r.problems.concat(r.warnings));
        if (r.ok) {
          say("The CSV is valid: " + r.rows + " row(s)" +
              (r.warnings.length ? ", " + r.warnings.length + " warning(s)" : "") +
              ". Next: a dry run, or queue it.", "ok");
          dry.disabled = false; queue.disabled = false;
        } else {
          say(r.problems.length + " problem(s) in the CSV; fix them and check again. Nothing was queued.", "error");
        }
      } catch (e) { say(e.message, "error"); }
    });

    dry.addEventListener("click", async function () {
      say("Dry run: asking XNAT and the PACS...", "");
      try {
        const r = (await api("POST", "/api/dry-run", await args())).result;
        details.textContent = r.text;
        say("Dry run: " + r.found + " of " + r.total + " row(s) found, " + r.instances +
            " instance(s)" + (r.ok ? "." : "; see below."), r.ok ? "ok" : "error");
      } catch (e) { say("Dry run refused: " + e.message, "error"); }
    });

    queue.addEventListener("click", async function () {
      say("Queueing...", "");
      try {
        const r = (await api("POST", "/api/submit", await args())).result;
        say("Queued as job " + r.job + " (" + r.items + " row(s)).", "ok");
        window.location.href = "/jobs/" + r.job;
      } catch (e) {
        say("Refused: nothing was queued.", "error");
        details.textContent = e.message;
      }
    });
  }

  const page = document.body.dataset.page;
  if (page === "jobs") jobsPage();
  else if (page === "job") jobPage();
  else if (page === "submit") submitPage();
})();
