// Live job page: polls status.json every 2 s while the job is queued or running and updates the page in place.
// The server renders the same values, so the page reads fine without this script.
(() => {
  const INTERVAL_MS = 2000;
  const MAX_BACKOFF_MS = 30000;
  const BADGES = { succeeded: "badge-ok", failed: "badge-bad", running: "badge-run", queued: "badge-warn" };

  const root = document.getElementById("job-live");
  if (!root) return;
  const byId = (id) => document.getElementById(id);
  let delay = INTERVAL_MS;

  const stamp = (iso) => (iso ? iso.slice(0, 19).replace("T", " ") : "—");
  const number = (value) => {
    if (value === null || value === undefined) return "—";
    if (typeof value !== "number") return String(value);
    return Number.isInteger(value) ? String(value) : value.toFixed(4);
  };
  const setText = (id, text) => {
    const element = byId(id);
    if (element && element.textContent !== text) element.textContent = text;
  };

  function cell(tag, text, scope) {
    const element = document.createElement(tag);
    element.className = "num";
    element.textContent = text;
    if (scope) element.scope = scope;
    return element;
  }

  function renderEpochs(status) {
    const section = byId("job-epochs");
    section.hidden = status.epochs.length === 0;
    const head = byId("job-epochs-head");
    head.replaceChildren(cell("th", "Epoch", "col"), ...status.epoch_labels.map((label) => cell("th", label, "col")));
    byId("job-epochs-body").replaceChildren(...status.epochs.map((epoch) => {
      const row = document.createElement("tr");
      row.append(cell("th", number(epoch.epoch), "row"), ...epoch.values.map((value) => cell("td", number(value))));
      return row;
    }));
  }

  function renderResult(status) {
    const result = byId("job-result");
    if (!status.result_version_url) return;
    const link = document.createElement("a");
    link.href = status.result_version_url;
    link.textContent = `version ${status.result_version_id}`;
    result.replaceChildren(link);
  }

  function renderLog(text) {
    const log = byId("job-log");
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 24;
    setText("job-log", text || "(nothing logged yet)");
    if (atBottom) log.scrollTop = log.scrollHeight;
  }

  function render(status) {
    const badge = document.createElement("span");
    badge.className = `badge ${BADGES[status.state] || ""}`.trim();
    badge.textContent = status.state;
    byId("job-state").replaceChildren(badge);
    byId("job-stopping").hidden = !(status.cancel_requested && status.active);
    byId("job-progress").value = status.progress;
    setText("job-progress-text", String(Math.round(status.progress)));
    setText("job-attempts", String(status.attempts));
    setText("job-worker", status.worker || "—");
    setText("job-started", stamp(status.started_at));
    setText("job-heartbeat", stamp(status.heartbeat_at));
    setText("job-finished", stamp(status.finished_at));
    byId("job-error").hidden = !status.error;
    setText("job-error-text", status.error || "");
    byId("job-cancel").hidden = !status.active;
    renderResult(status);
    renderLog(status.log_tail);
    renderEpochs(status);
    byId("job-chart-empty").hidden = Boolean(status.chart);
    if (status.chart && window.parlanceCharts) window.parlanceCharts.render(byId("job-chart"), status.chart);
  }

  function note(text) {
    const element = byId("job-poll-note");
    element.hidden = !text;
    element.textContent = text;
  }

  async function poll() {
    let status;
    try {
      const response = await fetch(root.dataset.statusUrl, {
        headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store",
      });
      if (response.status >= 400 && response.status < 500) {
        note(`Live updates stopped (the server answered ${response.status}); reload the page to try again.`);
        return;
      }
      if (!response.ok) throw new Error(`status ${response.status}`);
      status = await response.json();
    } catch (error) {
      delay = Math.min(delay * 2, MAX_BACKOFF_MS);
      note(`Live updates paused (${error.message}); retrying in ${Math.round(delay / 1000)} s.`);
      window.setTimeout(poll, delay);
      return;
    }
    delay = INTERVAL_MS;
    note("");
    render(status);
    if (status.active) window.setTimeout(poll, INTERVAL_MS);
  }

  if (root.dataset.active === "true") window.setTimeout(poll, INTERVAL_MS);
})();
