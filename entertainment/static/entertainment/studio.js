// Story studio: streams the latest generation into the page by polling its status.json, and fills the
// sampler fields from a preset. The server renders the same values, so the page works without this script.
(() => {
  const INTERVAL_MS = 700;
  const MAX_BACKOFF_MS = 15000;
  const BADGES = { done: "badge-ok", failed: "badge-bad", running: "badge-run", queued: "badge-warn", cancelled: "" };
  const byId = (id) => document.getElementById(id);

  function presets() {
    document.querySelectorAll("form[data-presets]").forEach((form) => {
      const data = byId(form.dataset.presets);
      const select = form.querySelector("select[name=preset]");
      if (!data || !select) return;
      const table = JSON.parse(data.textContent);
      select.addEventListener("change", () => {
        const values = table[select.value] || {};
        Object.entries(values).forEach(([name, value]) => {
          const input = form.querySelector(`[name=${name}]`);
          if (input) input.value = value;
        });
      });
    });
  }

  function live() {
    const root = byId("job");
    if (!root || root.dataset.active !== "true") return;
    let delay = INTERVAL_MS;
    const setText = (id, text) => {
      const element = byId(id);
      if (element && element.textContent !== text) element.textContent = text;
    };
    const note = (text) => {
      const element = byId("job-poll-note");
      if (!element) return;
      element.hidden = !text;
      element.textContent = text;
    };

    function render(status) {
      const badge = byId("job-state");
      badge.className = `badge ${BADGES[status.state] || ""}`.trim();
      badge.textContent = status.state;
      setText("job-tokens", String(status.tokens));
      setText("job-speed", String(status.tokens_per_second));
      setText("job-text", status.text || "(nothing written yet)");
      byId("job-error").hidden = !status.error;
      setText("job-error-text", status.error || "");
      byId("job-cancel").hidden = !status.active;
    }

    async function poll() {
      let status;
      try {
        const response = await fetch(root.dataset.statusUrl, {
          headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store",
        });
        if (response.status >= 400 && response.status < 500) {
          note(`Live updates stopped (the server answered ${response.status}); reload the page.`);
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
      if (status.active) {
        window.setTimeout(poll, INTERVAL_MS);
      } else if (status.state === "done") {
        window.location.reload(); // the new segment, version or candidate replies are rendered by the server
      }
    }

    window.setTimeout(poll, INTERVAL_MS);
  }

  // The style fine-tune on the world page: progress while it trains, then a reload for the results.
  function styleLive() {
    const root = byId("style");
    if (!root || root.dataset.active !== "true") return;
    async function poll() {
      let status;
      try {
        const response = await fetch(root.dataset.statusUrl, {
          headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store",
        });
        if (!response.ok) return;
        status = await response.json();
      } catch (error) {
        window.setTimeout(poll, 10000);
        return;
      }
      byId("style-state").textContent = status.state;
      byId("style-progress").value = status.progress;
      byId("style-progress-text").textContent = String(status.progress);
      if (status.active) window.setTimeout(poll, 3000);
      else window.location.reload();
    }
    window.setTimeout(poll, 3000);
  }

  presets();
  live();
  styleLive();
})();
