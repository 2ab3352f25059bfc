// qis-edge dashboard: replaces the page's live part with each fragment the gateway sends
// (rendered and escaped by the gateway), and sends the alarm commands with the CSRF token.
"use strict";
(function () {
  const live = document.getElementById("live");
  const badge = document.getElementById("connection");
  const csrf = document.querySelector('meta[name="csrf"]').content;
  const dialog = document.getElementById("confirm");
  const shelveDialog = document.getElementById("shelve");

  // The point page's trend: uPlot, fed from the JSON the fragment carries.
  let chart = null;
  const colours = ["#7aa7e0", "#7aa7e0", "#1f6feb", "#9a6700", "#b3261e", "#6e40c9", "#1b7f3b"];
  function drawTrend() {
    const source = document.getElementById("trend-data");
    const target = document.getElementById("trend");
    if (!source || !target || typeof uPlot === "undefined") return;
    const trend = JSON.parse(source.textContent);
    if (chart && chart.series.length === trend.data.length) {
      chart.setData(trend.data);
      return;
    }
    if (chart) chart.destroy();
    const series = [{}].concat(
      trend.series.map((label, i) => ({
        label,
        stroke: colours[i % colours.length],
        width: i === 2 ? 2 : 1,
        dash: i > 2 ? [6, 4] : undefined,
        spanGaps: false,
      }))
    );
    chart = new uPlot(
      {
        width: Math.max(target.clientWidth, 320),
        height: 320,
        series,
        bands: [{ series: [2, 1], fill: "rgba(31, 111, 235, 0.12)" }],
        axes: [{}, { label: trend.unit }],
      },
      trend.data,
      target
    );
  }

  function connect() {
    const source = new EventSource(live.dataset.live);
    source.addEventListener("fragment", (e) => {
      live.innerHTML = e.data;
      badge.dataset.state = "live";
      badge.textContent = "live";
      drawTrend();
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

  drawTrend();
  if (live.dataset.live) connect();
  else badge.hidden = true;
})();
