// The dashboard: asks for the gateway token once per browser tab (sessionStorage), reads GET /metrics and
// renders the table and two uPlot charts. No data lives in the page itself.
"use strict";

(function () {
  const TOKEN_KEY = "devops-metrics-token";
  const WINDOW_KEY = "devops-metrics-window";
  const REFRESH_MS = 30000;
  const $ = (id) => document.getElementById(id);
  const state = { data: null, repo: null, charts: {}, timer: null };

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "no data";
    if (seconds < 3600) return (seconds / 60).toFixed(1) + " min";
    if (seconds < 86400) return (seconds / 3600).toFixed(1) + " h";
    return (seconds / 86400).toFixed(1) + " d";
  }

  function count(n, word) {
    return n + " " + word + (n === 1 ? "" : "s");
  }

  function cells(metrics) {
    const df = metrics.deployment_frequency, lt = metrics.lead_time;
    const cfr = metrics.change_failure_rate, rt = metrics.recovery_time;
    return [
      ["deployment_frequency", df.per_day, df.per_day.toFixed(2) + " / day", count(df.count, "deploy"), df.level],
      ["lead_time", lt.median_s, duration(lt.median_s), count(lt.samples, "sample"), lt.level],
      ["change_failure_rate", cfr.rate, cfr.rate === null ? "no deploys" : (cfr.rate * 100).toFixed(1) + " %",
        cfr.failures + " of " + count(cfr.deploys, "deploy"), cfr.level],
      ["recovery_time", rt.median_s, duration(rt.median_s), count(rt.samples, "sample"), rt.level],
    ];
  }

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function renderTable(repos) {
    const body = $("repos").tBodies[0];
    body.replaceChildren();
    for (const metrics of repos) {
      const row = el("tr", { "data-repo": metrics.repo });
      row.append(el("th", { scope: "row" }, metrics.repo === "ALL" ? "ALL (every repository)" : metrics.repo));
      for (const [name, raw, text, sub, level] of cells(metrics)) {
        const td = el("td", { "data-metric": name, "data-value": raw === null ? "" : String(raw) });
        td.append(el("span", { class: "value" }, text));
        td.append(el("span", { class: "level level-" + (level || "none") }, level || "n/a"));
        td.append(el("span", { class: "sub" }, sub));
        row.append(td);
      }
      body.append(row);
    }
  }

  function renderSelector(repos) {
    const select = $("repo");
    const names = repos.map((m) => m.repo);
    if (!names.includes(state.repo)) state.repo = names[0];
    select.replaceChildren(...names.map((name) => el("option", { value: name }, name)));
    select.value = state.repo;
  }

  function dayTs(day) {
    return Date.parse(day + "T00:00:00Z") / 1000;
  }

  function chartWidth(id) {
    return Math.max(320, $(id).clientWidth || 480);
  }

  function makeChart(id, series, data, yLabel, integer) {
    if (state.charts[id]) state.charts[id].destroy();
    const opts = {
      width: chartWidth(id),
      height: 240,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
      legend: { show: true },
      cursor: { drag: { x: false, y: false } },
      scales: {
        x: { time: true, range: (u, min, max) => [min - 43200, max + 43200] },
        y: { range: (u, min, max) => [0, Math.max(integer ? 2 : 1, (max || 0) * 1.15)] },
      },
      axes: [
        { stroke: "#1b1f24", grid: { stroke: "#e3e7eb" } },
        { label: yLabel, stroke: "#1b1f24", grid: { stroke: "#e3e7eb" }, incrs: integer ? [1, 2, 5, 10, 20, 50, 100] : undefined },
      ],
      series: [{ label: "Day", value: (u, ts) => (ts === null ? "-" : new Date(ts * 1e3).toISOString().slice(0, 10)) }, series],
    };
    state.charts[id] = new uPlot(opts, data, $(id));
  }

  function renderCharts() {
    const metrics = state.data.repos.find((m) => m.repo === state.repo);
    if (!metrics) return;
    const days = metrics.daily;
    const xs = days.map((d) => dayTs(d.day));
    makeChart("deploys-chart", {
      label: "Deploys", stroke: "#0d47a1", fill: "#0d47a1", width: 0,
      paths: uPlot.paths.bars({ size: [0.7, 28], align: 0 }), points: { show: false },
    }, [xs, days.map((d) => d.deploys)], "deploys", true);
    makeChart("lead-chart", {
      label: "Median lead time (h)", stroke: "#8a4500", width: 2, spanGaps: false,
      points: { show: true, size: 8, fill: "#8a4500" },
      value: (u, v) => (v === null ? "-" : v.toFixed(2) + " h"),
    }, [xs, days.map((d) => (d.lead_time_median_s === null ? null : d.lead_time_median_s / 3600))], "hours", false);
    $("deploys-empty").hidden = metrics.deployment_frequency.count > 0;
    $("lead-empty").hidden = metrics.lead_time.samples > 0;
    $("deploys-title").textContent = "Deploys per day: " + metrics.repo;
    $("lead-title").textContent = "Lead time per day (median, hours): " + metrics.repo;
    const withData = days.filter((d) => d.deploys || d.change_failures || d.lead_time_samples);
    $("deploys-table").tBodies[0].replaceChildren(...withData.map((d) => {
      const row = el("tr");
      row.append(el("td", {}, d.day), el("td", {}, String(d.deploys)), el("td", {}, String(d.change_failures)));
      return row;
    }));
    $("lead-table").tBodies[0].replaceChildren(...withData.filter((d) => d.lead_time_samples).map((d) => {
      const row = el("tr");
      row.append(el("td", {}, d.day), el("td", {}, duration(d.lead_time_median_s)), el("td", {}, String(d.lead_time_samples)));
      return row;
    }));
    for (const row of $("repos").tBodies[0].rows) {
      row.classList.toggle("selected", row.dataset.repo === state.repo);
    }
  }

  function syncWindow(days) {
    const select = $("window");
    if (![...select.options].some((option) => option.value === days)) {
      select.append(el("option", { value: days }, days + " days (configured)"));
    }
    select.value = days;
  }

  function showLogin(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    clearInterval(state.timer);
    $("metrics").hidden = true;
    $("controls").hidden = true;
    $("login").hidden = false;
    $("error").textContent = message || "";
    $("token").value = "";
    $("token").focus();
  }

  async function load() {
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (!token) return showLogin();
    // Until the user picks a window, the gateway's configured one (DEPLOYMENT_FREQ_TIMEFRAME_DAY) applies.
    const windowDays = sessionStorage.getItem(WINDOW_KEY);
    const query = windowDays ? "?window=" + encodeURIComponent(windowDays) : "";
    let response;
    try {
      response = await fetch("/metrics" + query, {
        headers: { Authorization: "Bearer " + token, Accept: "application/json" },
        cache: "no-store",
      });
    } catch (error) {
      $("error").textContent = "The gateway did not answer: " + error.message;
      return;
    }
    if (response.status === 401) return showLogin("That token was not accepted. Enter the gateway token.");
    if (!response.ok) {
      $("error").textContent = "GET /metrics failed with HTTP " + response.status + ".";
      return;
    }
    state.data = await response.json();
    syncWindow(String(state.data.window_days));
    $("error").textContent = "";
    $("login").hidden = true;
    $("controls").hidden = false;
    $("metrics").hidden = false;
    renderTable(state.data.repos);
    renderSelector(state.data.repos);
    renderCharts();
    const first = state.data.repos[0];
    // Only a change of window is announced to screen readers, not every 30 s refresh.
    const status = "Window " + state.data.window_days + " days (" + first.window_start + " to " +
      first.window_end + ", UTC).";
    if ($("status").textContent !== status) $("status").textContent = status;
    $("updated").textContent = "Updated " + new Date().toLocaleTimeString() + ".";
    document.body.dataset.loaded = "true";
  }

  function start() {
    clearInterval(state.timer);
    state.timer = setInterval(load, REFRESH_MS);
    return load();
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("login").addEventListener("submit", (event) => {
      event.preventDefault();
      const token = $("token").value.trim();
      if (!token) return;
      sessionStorage.setItem(TOKEN_KEY, token);
      start().then(() => { if (!$("metrics").hidden) $("window").focus(); });
    });
    $("window").addEventListener("change", () => {
      sessionStorage.setItem(WINDOW_KEY, $("window").value);
      load();
    });
    $("repo").addEventListener("change", () => {
      state.repo = $("repo").value;
      renderCharts();
    });
    $("refresh").addEventListener("click", load);
    $("signout").addEventListener("click", () => showLogin("Token forgotten."));
    window.addEventListener("resize", () => {
      for (const [id, chart] of Object.entries(state.charts)) chart.setSize({ width: chartWidth(id), height: 240 });
    });
    if (sessionStorage.getItem(TOKEN_KEY)) start();
    else showLogin();
  });
})();
