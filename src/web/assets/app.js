// qis-edge dashboard: replaces the page's live part with each fragment the gateway sends
// (rendered and escaped by the gateway), and sends the alarm commands with the CSRF token.
"use strict";
(function () {
  const live = document.getElementById("live");
  const badge = document.getElementById("connection");
  const csrf = document.querySelector('meta[name="csrf"]').content;
  const dialog = document.getElementById("confirm");
  const shelveDialog = document.getElementById("shelve");

  // The point page's charts: uPlot, each fed from the JSON its fragment carries (see
  // src/web/point.rs `chart` for the format). A chart is kept while its series stay the same,
  // so an update only replaces its data.
  const charts = new Map();
  function overlay(u, entry) {
    const spec = entry.spec;
    const ctx = u.ctx;
    const top = u.bbox.top;
    const height = u.bbox.height;
    const px = devicePixelRatio || 1;
    ctx.save();
    ctx.font = 11 * px + "px sans-serif";
    if (spec.region) {
      const a = u.valToPos(spec.region[0], "x", true);
      const b = u.valToPos(spec.region[1], "x", true);
      ctx.fillStyle = "rgba(154, 103, 0, 0.08)";
      ctx.fillRect(Math.min(a, b), top, Math.abs(b - a), height);
    }
    // Lines left to right, each label in the first of four rows where it clears the last
    // label; one that fits in none is left out (the table above names every frequency).
    const rows = [-Infinity, -Infinity, -Infinity, -Infinity];
    const cursors = (spec.cursors || []).slice().sort((a, b) => a.x - b.x);
    for (const c of cursors) {
      const x = u.valToPos(c.x, "x", true);
      if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
      ctx.strokeStyle = c.colour;
      ctx.fillStyle = c.colour;
      ctx.setLineDash([4 * px, 3 * px]);
      ctx.beginPath();
      ctx.moveTo(x, top);
      ctx.lineTo(x, top + height);
      ctx.stroke();
      const row = rows.findIndex((end) => x > end + 4 * px);
      if (row >= 0) {
        ctx.fillText(c.label, x + 3 * px, top + (12 + row * 12) * px);
        rows[row] = x + 3 * px + ctx.measureText(c.label).width;
      }
    }
    ctx.setLineDash([]);
    ctx.fillStyle = "#b3261e";
    ctx.font = "bold " + 12 * px + "px sans-serif";
    for (const m of spec.marks || []) {
      if (m.y === null || m.y === undefined) continue;
      const x = u.valToPos(m.x, "x", true);
      const y = u.valToPos(m.y, "y", true);
      ctx.beginPath();
      ctx.arc(x, y, 4 * px, 0, 2 * Math.PI);
      ctx.fill();
      ctx.fillText(m.label, x + 5 * px, y - 5 * px);
    }
    ctx.restore();
  }
  function options(spec, entry, width) {
    const series = [{ label: spec.xlabel || "time" }].concat(
      spec.series.map((s) => ({
        label: s.label,
        stroke: s.colour,
        width: s.width || 1,
        dash: s.dash,
        spanGaps: false,
        points: { show: spec.x !== "time" && s.width > 1 },
        paths: s.stepped ? uPlot.paths.stepped({ align: 1 }) : undefined,
      }))
    );
    return {
      width,
      height: spec.x === "time" ? 320 : 260,
      series,
      scales: { x: { time: spec.x === "time" } },
      bands: spec.band ? [{ series: spec.band, fill: "rgba(31, 111, 235, 0.12)" }] : [],
      axes: [
        // Charted points are counted: whole steps only.
        spec.x === "index" ? { label: spec.xlabel, incrs: [1, 2, 5, 10, 20, 50, 100] } : { label: spec.xlabel },
        { label: spec.unit },
      ],
      hooks: { draw: [(u) => overlay(u, entry)] },
    };
  }
  function drawCharts() {
    const host = document.getElementById("charts");
    if (!host || typeof uPlot === "undefined") return;
    const seen = new Set();
    for (const source of live.querySelectorAll("script.chart-data")) {
      const id = source.dataset.chart;
      const spec = JSON.parse(source.textContent);
      seen.add(id);
      let entry = charts.get(id);
      if (entry && entry.series === spec.series.length) {
        entry.spec = spec;
        entry.plot.setData(spec.data);
        continue;
      }
      if (entry) entry.plot.destroy();
      let box = document.getElementById(id);
      if (!box) {
        box = document.createElement("section");
        box.className = "chart";
        box.id = id;
        box.appendChild(document.createElement("h3"));
        host.appendChild(box);
      }
      box.firstChild.textContent = source.dataset.title;
      entry = { spec, series: spec.series.length };
      entry.plot = new uPlot(options(spec, entry, Math.max(box.clientWidth, 320)), spec.data, box);
      charts.set(id, entry);
    }
    for (const [id, entry] of charts) {
      if (seen.has(id)) continue;
      entry.plot.destroy();
      document.getElementById(id)?.remove();
      charts.delete(id);
    }
  }

  function connect() {
    const source = new EventSource(live.dataset.live);
    source.addEventListener("fragment", (e) => {
      live.innerHTML = e.data;
      badge.dataset.state = "live";
      badge.textContent = "live";
      drawCharts();
    });
    source.onerror = () => {
      badge.dataset.state = "lost";
      badge.textContent = "connection to the gateway lost; retrying";
    };
  }

  async function send(command, body) {
    const response = await fetch("/api/" + command, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
    });
    const answer = await response.json().catch(() => ({ ok: false, error: response.statusText }));
    return answer.ok ? null : answer.error || response.statusText;
  }

  function confirmAlarm(alarm) {
    const form = dialog.querySelector("form");
    form.reset();
    dialog.querySelector(".alarm").textContent = alarm;
    dialog.querySelector(".error").textContent = "";
    dialog.onclose = async () => {
      if (dialog.returnValue !== "ok") return;
      const error = await send("confirm", {
        alarm_id: alarm,
        failure_mode: form.failure_mode.value,
        note: form.note.value || undefined,
      });
      if (error) alert(error);
    };
    dialog.showModal();
  }

  function shelveAlarm(alarm) {
    const form = shelveDialog.querySelector("form");
    form.reset();
    shelveDialog.querySelector(".alarm").textContent = alarm;
    shelveDialog.onclose = async () => {
      if (shelveDialog.returnValue !== "ok") return;
      const error = await send("shelve", {
        alarm_id: alarm,
        hours: Number(form.hours.value),
        note: form.note.value || undefined,
      });
      if (error) alert(error);
    };
    shelveDialog.showModal();
  }

  live.addEventListener("click", async (e) => {
    const button = e.target.closest("button[data-command]");
    if (!button) return;
    const { command, alarm } = button.dataset;
    if (command === "confirm") return confirmAlarm(alarm);
    if (command === "shelve") return shelveAlarm(alarm);
    button.disabled = true;
    const error = await send(command, { alarm_id: alarm });
    button.disabled = false;
    if (error) alert(error);
  });

  drawCharts();
  if (live.dataset.live) connect();
  else badge.hidden = true;
})();
