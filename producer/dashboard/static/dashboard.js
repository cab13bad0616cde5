// The dashboard: asks for the gateway token once per browser tab (sessionStorage), reads GET /metrics,
// GET /metrics/{repo} and GET /deployments/{repo}, and renders them. No data lives in the page itself.
//
// Views are URL hashes, so a view can be shared and the back button works:
//   #/?window=30&team=T&service=S&environment=E&per=week&sort=lead_time&order=asc   the overview
//   #/repo/<repo>?window=30&environment=E&per=day                                   one repository
"use strict";

(function () {
  const TOKEN_KEY = "devops-metrics-token";
  const REFRESH_MS = 30000;
  const DEPLOYMENT_ROWS = 20; // a repository's page lists the newest 20 until asked for all
  const PRODUCTION = "production";
  const MINUTE = 60, HOUR = 3600, DAY = 86400, WEEK = 7 * DAY, MONTH = 30 * DAY;
  const LEVELS = ["elite", "high", "medium", "low"];
  const LEVEL_COLORS = { elite: "#1b5e20", high: "#0d47a1", medium: "#8a4500", low: "#b3261e" };
  const BAND_TINTS = {
    elite: "rgba(27, 94, 32, 0.10)", high: "rgba(13, 71, 161, 0.08)",
    medium: "rgba(138, 69, 0, 0.10)", low: "rgba(179, 38, 30, 0.08)",
  };
  const SOURCE_2024 = "DORA 2024 report";
  const SOURCE_2023 = "DORA 2023 report";

  // The five metrics. `edges`: the DORA level bands of devops_core/dora/levels.py (elite, high, medium
  // edges; the browser test checks them against that module). `more` = higher is better: a level needs
  // at least the edge; otherwise a level needs less than the edge (at most, for change failure rate).
  const METRICS = [
    {
      key: "deployment_frequency", title: "Deployment frequency", headline: "per_day", more: true,
      edges: [1, 1 / 7, 1 / 30], source: SOURCE_2024,
      bands: ["at least 1 per day (on demand)", "at least 1 per week", "at least 1 per month", "less than 1 per month"],
    },
    {
      key: "lead_time", title: "Lead time for changes", headline: "median_s", more: false,
      edges: [DAY, WEEK, MONTH], source: SOURCE_2024,
      bands: ["less than 1 day", "1 day to 1 week", "1 week to 1 month (30 days)", "1 month or more"],
    },
    {
      key: "change_failure_rate", title: "Change failure rate", headline: "rate", more: false,
      edges: [0.05, 0.10, 0.15], inclusive: true, source: SOURCE_2023,
      bands: ["at most 5 %", "at most 10 %", "at most 15 %", "more than 15 %"],
    },
    {
      key: "recovery_time", title: "Failed deployment recovery time", headline: "median_s", more: false,
      edges: [HOUR, DAY, WEEK], source: SOURCE_2023,
      bands: ["less than 1 hour", "less than 1 day", "1 day to 1 week", "1 week or more"],
    },
    {
      key: "rework_rate", title: "Deployment rework rate", headline: "rate", more: false,
      edges: null, source: "DORA 2024 report (no bands published)",
      bands: null,
    },
  ];
  const METRIC = Object.fromEntries(METRICS.map((m) => [m.key, m]));

  const $ = (id) => document.getElementById(id);
  const state = {
    token: null, charts: {}, timer: null, rendered: null, lastRepo: null, loading: 0,
    showAll: false, activityRepo: null,
  };

  // -- formatting (tests/dashboard/test_dashboard_browser.py mirrors these) ----------------------------
  function plural(n, word, many) {
    return n + " " + (n === 1 ? word : many || word + "s");
  }

  function duration(seconds) {
    if (seconds < HOUR) return (seconds / MINUTE).toFixed(1) + " min";
    if (seconds < DAY) return (seconds / HOUR).toFixed(1) + " h";
    return (seconds / DAY).toFixed(1) + " d";
  }

  function frequency(perDay) {
    if (perDay >= 1) return perDay.toFixed(2) + " / day";
    if (perDay * 7 >= 1) return (perDay * 7).toFixed(1) + " / week";
    return (perDay * 30).toFixed(1) + " / month";
  }

  function percent(rate) {
    return (rate * 100).toFixed(1) + " %";
  }

  function headlineText(key, value) {
    if (key === "deployment_frequency") return frequency(value);
    if (key === "lead_time" || key === "recovery_time") return duration(value);
    return percent(value);
  }

  // What a metric shows: [value text, empty?, detail line]. An empty metric says why, never a level.
  function describe(key, metric) {
    switch (key) {
      case "deployment_frequency": {
        const extra = metric.other_environments ? ", " + metric.other_environments + " to other environments" : "";
        if (!metric.count) return ["no deployments in this window", true, "0 deployments" + extra];
        return [frequency(metric.per_day), false, plural(metric.count, "deployment") + ", " + metric.failed + " failed" + extra];
      }
      case "lead_time":
        if (metric.median_s === null) return ["no changes shipped", true, "no lead-time samples"];
        return [duration(metric.median_s), false, plural(metric.samples, "change") + ", p90 " + duration(metric.p90_s)];
      case "change_failure_rate":
        if (metric.rate === null) return ["no deployments in this window", true, "0 deployments"];
        return [percent(metric.rate), false, metric.failures + " of " + plural(metric.deploys, "deployment")];
      case "recovery_time": {
        const open = metric.open_failures ? plural(metric.open_failures, "failure") + " open now" : "";
        if (metric.median_s === null) return [open ? open : "no failures recovered", true, open ? "none recovered in this window" : "0 recoveries"];
        return [duration(metric.median_s), false, plural(metric.samples, "recovery", "recoveries") + (open ? ", " + open : "")];
      }
      default:
        if (metric.rate === null) return ["no deployments in this window", true, "0 deployments"];
        return [percent(metric.rate), false, metric.rework + " of " + plural(metric.deploys, "deployment")];
    }
  }

  function levelText(key, level) {
    if (level) return level;
    return METRIC[key].edges ? "no level" : "no bands";
  }

  // [text, css class, title]: the arrow shows which way the number moved, the colour and the word
  // whether that is better or worse for this metric.
  function trend(key, trendValue, windowDays) {
    const previous = "previous " + windowDays + " days";
    if (!trendValue || trendValue.direction === null) {
      if (!trendValue || trendValue.previous === null) return ["no data in the " + previous, "trend-none", ""];
      return ["was " + headlineText(key, trendValue.previous), "trend-none", previous];
    }
    const title = previous + ": " + headlineText(key, trendValue.previous);
    if (trendValue.direction === "same") return ["→ no change", "trend-same", title];
    let moved;
    if (trendValue.change === null) moved = (trendValue.previous === 0 ? "▲ from 0" : "▼ to 0");
    else {
      const pct = Math.abs(trendValue.change * 100);
      moved = (trendValue.change > 0 ? "▲ " : "▼ ") + (pct < 10 ? pct.toFixed(1) : pct.toFixed(0)) + " %";
    }
    return [moved + ", " + trendValue.direction, "trend-" + trendValue.direction, title];
  }

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function timeText(iso) {
    return iso ? iso.replace("T", " ").replace(/(\.\d+)?(Z|\+00:00)$/, "") : "";
  }

  // -- the view in the URL -----------------------------------------------------------------------------
  function decoded(text) {
    try {
      return decodeURIComponent(text);
    } catch (error) {
      return text; // a malformed escape in a pasted URL: the name as typed (the API will say if unknown)
    }
  }

  function parseView() {
    const hash = location.hash.startsWith("#/") ? location.hash.slice(1) : "/";
    const cut = hash.indexOf("?");
    const path = cut < 0 ? hash : hash.slice(0, cut);
    const params = new URLSearchParams(cut < 0 ? "" : hash.slice(cut + 1));
    const view = {
      repo: path.startsWith("/repo/") ? decoded(path.slice(6)) : null,
      window: params.get("window"), environment: params.get("environment"), per: params.get("per"),
      team: params.get("team"), service: params.get("service"),
      sort: params.get("sort"), order: params.get("order") === "desc" ? "desc" : "asc",
    };
    if (view.sort !== "repo" && !Object.hasOwn(METRIC, view.sort || "")) view.sort = null; // unknown: unsorted
    if (view.repo) view.team = view.service = null;
    if (view.team) view.service = null;
    return view;
  }

  function viewHash(view) {
    const params = new URLSearchParams();
    const keys = view.repo ? ["window", "environment", "per"] : ["window", "team", "service", "environment", "per", "sort"];
    for (const key of keys) if (view[key]) params.set(key, view[key]);
    if (!view.repo && view.sort && view.order === "desc") params.set("order", "desc");
    const query = params.toString();
    return "#" + (view.repo ? "/repo/" + encodeURIComponent(view.repo) : "/") + (query ? "?" + query : "");
  }

  function overviewOf(view) {
    return { ...view, repo: null, sort: view.sort || null };
  }

  // Filters and sorting replace the current history entry; opening a repository adds one.
  function go(view, push) {
    const hash = viewHash(view);
    if (push) {
      state.nextCause = "filter"; // read by the hashchange listener
      location.hash = hash;
    } else {
      history.replaceState(null, "", hash);
      load({ cause: "filter" });
    }
  }

  // -- the API ---------------------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, body) {
      super(ApiError.describe(status, body));
      this.status = status;
    }

    static describe(status, body) {
      if (body && Array.isArray(body.detail)) {
        return body.detail.map((d) => d.field + ": " + d.reason).join("; ");
      }
      if (body && typeof body.detail === "string") return body.detail;
      return "HTTP " + status;
    }
  }

  function repoPath(repo) {
    return repo.split("/").map(encodeURIComponent).join("/");
  }

  async function api(path, params) {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(params)) if (value) query.set(key, value);
    const text = query.toString();
    let response;
    try {
      response = await fetch(path + (text ? "?" + text : ""), {
        headers: { Authorization: "Bearer " + state.token, Accept: "application/json" },
        cache: "no-store",
      });
    } catch (error) {
      throw new ApiError(0, { detail: "the gateway did not answer (" + error.message + ")" });
    }
    let body = null;
    try {
      body = await response.json();
    } catch (error) {
      body = null;
    }
    if (!response.ok) throw new ApiError(response.status, body);
    return body;
  }

  // -- filters ---------------------------------------------------------------------------------------
  function fillSelect(select, values, current, first) {
    const options = [];
    if (first) options.push(el("option", { value: "" }, first));
    const names = values.slice();
    if (current && !names.includes(current)) names.push(current);
    for (const name of names) options.push(el("option", { value: name }, name));
    select.replaceChildren(...options);
    select.value = current || "";
  }

  function syncFilters(view, overview, head) {
    const windowDays = String(head.window_days);
    const windowSelect = $("window");
    if (![...windowSelect.options].some((option) => option.value === windowDays)) {
      windowSelect.append(el("option", { value: windowDays }, windowDays + " days (configured)"));
    }
    windowSelect.value = windowDays;
    const teams = overview && Array.isArray(overview.teams) ? overview.teams : [];
    const services = overview && Array.isArray(overview.services) ? overview.services : [];
    fillSelect($("team"), teams, view.team, "All teams");
    fillSelect($("service"), services, view.service, "All services");
    $("team-filter").hidden = view.repo !== null || (!teams.length && !view.team);
    $("service-filter").hidden = view.repo !== null || (!services.length && !view.service);
    const repos = overview ? overview.repos.filter((m) => m.scope === "repo").map((m) => m.repo) : [];
    fillSelect($("repo"), repos, view.repo, "All repositories");
    // Older gateways send no `environments`: then the filter is hidden rather than guessed.
    const environments = overview && Array.isArray(overview.environments) ? overview.environments : null;
    const environmentFilter = $("environment-filter");
    environmentFilter.hidden = !environments || (environments.length < 2 && !view.environment);
    if (environments) {
      const current = view.environment || PRODUCTION;
      const names = environments.includes(current) ? environments : [...environments, current];
      $("environment").replaceChildren(...names.map((name) => el("option", { value: name },
        name === PRODUCTION ? "production (counted)" : name)));
      $("environment").value = current;
    }
    $("per").value = perOf(view, head.window_days);
  }

  function perOf(view, windowDays) {
    if (view.per === "day" || view.per === "week") return view.per;
    return windowDays > 30 ? "week" : "day";
  }

  function onFilter(event) {
    const view = parseView();
    const target = event.target;
    if (target.id === "repo") {
      const repo = target.value || null;
      // From the overview, a repository opens its page as a new history entry; between repositories
      // the entry is replaced, so the back button returns to the overview.
      const next = repo ? { ...view, repo } : overviewOf(view);
      return go(next, view.repo === null && repo !== null);
    }
    if (target.id === "window") view.window = target.value;
    if (target.id === "team") { view.team = target.value || null; view.service = null; }
    if (target.id === "service") { view.service = target.value || null; view.team = null; }
    if (target.id === "environment") view.environment = target.value === PRODUCTION ? null : target.value;
    if (target.id === "per") view.per = target.value;
    go(view, false);
  }

  // -- tiles -------------------------------------------------------------------------------------------
  function trendNode(key, metric, windowDays) {
    const [text, css, title] = trend(key, metric.trend, windowDays);
    const attrs = { class: "trend " + css, "data-direction": metric.trend ? String(metric.trend.direction) : "null" };
    if (title) attrs.title = title;
    return el("span", attrs, text);
  }

  function levelNode(key, level) {
    return el("span", { class: "level level-" + (level || "none") }, levelText(key, level));
  }

  function renderTiles(head) {
    const tiles = METRICS.map((spec) => {
      const metric = head[spec.key];
      const [text, empty, detail] = describe(spec.key, metric);
      const tile = el("li", { class: "tile", "data-metric": spec.key });
      tile.append(el("h3", {}, spec.title));
      tile.append(el("p", { class: "value" + (empty ? " empty-value" : "") }, text));
      const line = el("p", { class: "badges" });
      line.append(levelNode(spec.key, metric.level), " ", trendNode(spec.key, metric, head.window_days));
      tile.append(line, el("p", { class: "sub" }, detail));
      return tile;
    });
    $("tiles").replaceChildren(...tiles);
  }

  // -- the repositories table ----------------------------------------------------------------------
  const COLUMNS = [{ key: "repo", title: "Repository" }, ...METRICS.map((m) => ({ key: m.key, title: m.title }))];

  function sortValue(metrics, key) {
    if (key === "repo") return metrics.repo;
    return metrics[key][METRIC[key].headline];
  }

  function sortRows(rows, key, order) {
    const sign = order === "desc" ? -1 : 1;
    return rows.slice().sort((a, b) => {
      const x = sortValue(a, key), y = sortValue(b, key);
      if (x === null && y === null) return a.repo < b.repo ? -1 : 1;
      if (x === null) return 1; // no data sorts last either way
      if (y === null) return -1;
      if (x === y) return a.repo < b.repo ? -1 : 1;
      if (key === "repo") return sign * (x < y ? -1 : 1);
      return sign * (x - y);
    });
  }

  function renderHeader(view) {
    const row = $("repos").tHead.rows[0];
    row.replaceChildren(...COLUMNS.map((column) => {
      const th = el("th", { scope: "col", "data-column": column.key });
      const sorted = view.sort === column.key;
      if (sorted) th.setAttribute("aria-sort", view.order === "desc" ? "descending" : "ascending");
      const button = el("button", { type: "button", class: "sort", "data-focus": "sort-" + column.key }, column.title);
      button.append(el("span", { class: "sort-mark", "aria-hidden": "true" }, sorted ? (view.order === "desc" ? " ▼" : " ▲") : " ↕"));
      button.addEventListener("click", () => {
        const current = parseView();
        const order = current.sort === column.key && current.order === "asc" ? "desc" : "asc";
        go({ ...current, sort: column.key, order }, false);
      });
      th.append(button);
      return th;
    }));
  }

  function repoRow(metrics, view, isScope) {
    const row = el("tr", { "data-repo": metrics.repo, "data-scope": metrics.scope });
    const th = el("th", { scope: "row" });
    if (isScope) {
      th.textContent = metrics.scope === "all" ? "ALL (every repository)" : metrics.scope + " " + metrics.repo;
    } else {
      const href = viewHash({ ...view, repo: metrics.repo });
      th.append(el("a", { href, "data-focus": "repo-" + metrics.repo }, metrics.repo));
      row.classList.add("link-row");
    }
    row.append(th);
    for (const spec of METRICS) {
      const metric = metrics[spec.key];
      const [text, empty, detail] = describe(spec.key, metric);
      const raw = metric[spec.headline];
      const td = el("td", { "data-metric": spec.key, "data-value": raw === null ? "" : String(raw) });
      td.append(el("span", { class: "value" + (empty ? " empty-value" : "") }, text));
      td.append(levelNode(spec.key, metric.level));
      td.append(trendNode(spec.key, metric, metrics.window_days));
      td.append(el("span", { class: "sub" }, detail));
      row.append(td);
    }
    return row;
  }

  function renderTable(view, overview) {
    renderHeader(view);
    const [head, ...repos] = overview.repos;
    const table = $("repos");
    table.tBodies[0].replaceChildren(repoRow(head, view, true));
    const rows = view.sort ? sortRows(repos, view.sort, view.order) : repos;
    table.tBodies[1].replaceChildren(...rows.map((metrics) => repoRow(metrics, view, false)));
    $("repos-empty").hidden = repos.length > 0;
  }

  // -- charts ----------------------------------------------------------------------------------------
  function buckets(daily, per) {
    if (per === "day") return daily.map((d) => [d]);
    const out = [];
    for (let end = daily.length; end > 0; end -= 7) out.unshift(daily.slice(Math.max(0, end - 7), end));
    return out;
  }

  // The median of per-day medians weighted by their sample counts: exact for a day, an approximation
  // for a week (the API gives per-day medians, not every sample).
  function weightedMedian(pairs) {
    const items = pairs.filter(([value, weight]) => value !== null && weight > 0).sort((a, b) => a[0] - b[0]);
    const total = items.reduce((sum, [, weight]) => sum + weight, 0);
    if (!total) return null;
    let seen = 0;
    for (let i = 0; i < items.length; i++) {
      seen += items[i][1];
      if (seen * 2 > total) return items[i][0];
      if (seen * 2 === total) return (items[i][0] + items[i + 1][0]) / 2;
    }
    return items[items.length - 1][0];
  }

  function sum(points, field) {
    return points.reduce((total, p) => total + p[field], 0);
  }

  // Per bucket: [value in base units (per day, seconds, 0..1) or null, table cells]
  function bucketValue(key, points) {
    const deploys = sum(points, "deploys");
    switch (key) {
      case "deployment_frequency":
        return [deploys / points.length, [String(deploys), String(sum(points, "failed_deploys"))]];
      case "lead_time": {
        const samples = sum(points, "lead_time_samples");
        return [weightedMedian(points.map((p) => [p.lead_time_median_s, p.lead_time_samples])), [String(samples)]];
      }
      case "change_failure_rate": {
        const failures = sum(points, "change_failures");
        return [deploys ? failures / deploys : null, [String(failures), String(deploys)]];
      }
      case "recovery_time": {
        const samples = sum(points, "recoveries");
        return [weightedMedian(points.map((p) => [p.recovery_time_median_s, p.recoveries])), [String(samples)]];
      }
      default: {
        const rework = sum(points, "rework");
        return [deploys ? rework / deploys : null, [String(rework), String(deploys)]];
      }
    }
  }

  const CHART_COLUMNS = {
    deployment_frequency: ["Deployments per day", "Deployments", "Failed"],
    lead_time: ["Median lead time", "Changes"],
    change_failure_rate: ["Change failure rate", "Change failures", "Deployments"],
    recovery_time: ["Median recovery time", "Recoveries"],
    rework_rate: ["Rework rate", "Rework", "Deployments"],
  };

  // A chart's unit: [label, divisor from base units].
  function unitOf(key, max) {
    if (key === "deployment_frequency") return ["deployments per day", 1];
    if (key === "change_failure_rate" || key === "rework_rate") return ["%", 0.01];
    if (max < 2 * HOUR) return ["minutes", MINUTE];
    if (max < 3 * DAY) return ["hours", HOUR];
    return ["days", DAY];
  }

  // The level bands as [level, low, high] in base units.
  function bandsOf(spec) {
    if (!spec.edges) return [];
    const [a, b, c] = spec.edges;
    if (spec.more) return [["low", 0, c], ["medium", c, b], ["high", b, a], ["elite", a, Infinity]];
    return [["elite", 0, a], ["high", a, b], ["medium", b, c], ["low", c, Infinity]];
  }

  function chartRange(spec, values) {
    const max = Math.max(0, ...values.filter((v) => v !== null));
    let top = max * 1.15;
    // Show the next band edge above the data when it is near, so a level's threshold is visible.
    const next = (spec.edges || []).filter((edge) => edge > max).sort((x, y) => x - y)[0];
    if (next !== undefined && max > 0 && next <= 4 * max) top = Math.max(top, next * 1.1);
    if (!top) top = spec.key === "deployment_frequency" ? 2 : 1;
    return top;
  }

  function drawBands(spec, divisor) {
    const bands = bandsOf(spec);
    return (u) => {
      const ctx = u.ctx, { left, width } = u.bbox;
      const dpr = window.devicePixelRatio || 1;
      ctx.save();
      ctx.font = Math.round(11 * dpr) + "px system-ui, sans-serif";
      ctx.textBaseline = "top";
      for (const [level, low, high] of bands) {
        const yMax = u.scales.y.max, yMin = u.scales.y.min;
        const hi = Math.min(high / divisor, yMax), lo = Math.max(low / divisor, yMin);
        if (hi <= lo) continue;
        const y0 = u.valToPos(hi, "y", true), y1 = u.valToPos(lo, "y", true);
        ctx.fillStyle = BAND_TINTS[level];
        ctx.fillRect(left, y0, width, y1 - y0);
        if (y1 - y0 >= 14 * dpr) {
          ctx.fillStyle = LEVEL_COLORS[level];
          const label = level;
          ctx.fillText(label, left + width - ctx.measureText(label).width - 6 * dpr, y0 + 3 * dpr);
        }
      }
      ctx.restore();
    };
  }

  function chartWidth(node) {
    return Math.max(280, (node.clientWidth || 420));
  }

  // The five figures exist before any chart is drawn, so each chart is sized to its own grid cell.
  function ensureFigures() {
    for (const spec of METRICS) {
      const id = "chart-" + spec.key;
      if ($(id)) continue;
      const figure = el("figure", { id, class: "chart-figure", "data-metric": spec.key });
      const caption = el("figcaption", { id: id + "-title" });
      const empty = el("p", { class: "empty", id: id + "-empty", hidden: "" });
      const plot = el("div", { class: "chart", id: id + "-plot", role: "img", "aria-labelledby": id + "-title" });
      const details = el("details", { id: id + "-details" });
      details.append(el("summary", {}, "As a table"));
      const table = el("table", { id: id + "-table" });
      table.append(el("thead"), el("tbody"));
      details.append(table);
      figure.append(caption, empty, plot, details);
      $("charts").append(figure);
    }
  }

  function renderChart(spec, head, per) {
    const id = "chart-" + spec.key;
    const groups = buckets(head.daily, per);
    const rows = groups.map((points) => [points, ...bucketValue(spec.key, points)]);
    const values = rows.map(([, value]) => value);
    const [unit, divisor] = unitOf(spec.key, Math.max(0, ...values.filter((v) => v !== null)));
    const weekly = per === "week";
    const what = {
      deployment_frequency: weekly ? "Deployments per day, weekly average" : "Deployments per day",
      lead_time: weekly ? "Median lead time per week (of the days' medians)" : "Median lead time per day",
      change_failure_rate: weekly ? "Change failure rate per week" : "Change failure rate per day",
      recovery_time: weekly ? "Median recovery time per week (of the days' medians)" : "Median recovery time per day",
      rework_rate: weekly ? "Rework rate per week" : "Rework rate per day",
    }[spec.key];
    const shownUnit = spec.key === "deployment_frequency" ? "" : " (" + unit + ")";
    $(id + "-title").textContent = what + shownUnit + (spec.edges ? "" : "; DORA publishes no bands");

    const [, empty] = describe(spec.key, head[spec.key]);
    const emptyText = {
      deployment_frequency: "No deployments in this window.",
      lead_time: "No lead-time samples in this window: deployments need commits, or a sha that was pushed before.",
      change_failure_rate: "No deployments in this window.",
      recovery_time: "No failures recovered in this window.",
      rework_rate: "No deployments in this window.",
    }[spec.key];
    const hasPoints = values.some((v) => v !== null && (spec.key !== "deployment_frequency" || v > 0));
    $(id + "-empty").textContent = emptyText;
    $(id + "-empty").hidden = !(empty || !hasPoints);
    const plot = $(id + "-plot");
    plot.hidden = empty || !hasPoints;

    // The table: every bucket with data, with the numbers behind its point.
    const table = $(id + "-table");
    const columns = [weekly ? "Week" : "Day", ...CHART_COLUMNS[spec.key]];
    const headRow = el("tr");
    headRow.append(...columns.map((name) => el("th", { scope: "col" }, name)));
    table.tHead.replaceChildren(headRow);
    const bodyRows = [];
    for (const [points, value, cells] of rows) {
      const counts = cells.map(Number);
      if (value === null && counts.every((n) => !n)) continue;
      if (spec.key === "deployment_frequency" && !counts[0]) continue;
      const first = points[0].day, last = points[points.length - 1].day;
      const tr = el("tr", { "data-day": first });
      tr.append(el("td", {}, weekly ? first + " to " + last : first));
      tr.append(el("td", {}, value === null ? "no data" : spec.key === "deployment_frequency" ? value.toFixed(2)
        : (spec.key === "lead_time" || spec.key === "recovery_time") ? duration(value) : percent(value)));
      for (const cell of cells) tr.append(el("td", {}, cell));
      bodyRows.push(tr);
    }
    table.tBodies[0].replaceChildren(...bodyRows);

    if (state.charts[id]) {
      state.charts[id].destroy();
      delete state.charts[id];
    }
    if (plot.hidden) return;
    const xs = groups.map((points) => Date.parse(points[0].day + "T00:00:00Z") / 1000);
    const ys = values.map((v) => (v === null ? null : v / divisor));
    const top = chartRange(spec, values) / divisor;
    const span = weekly ? 7 * 43200 : 43200;
    const bars = spec.key !== "lead_time" && spec.key !== "recovery_time";
    const color = "#263238";
    const series = bars
      ? { label: CHART_COLUMNS[spec.key][0], stroke: color, fill: "rgba(38, 50, 56, 0.75)", width: 0,
          paths: uPlot.paths.bars({ size: [0.7, weekly ? 40 : 24], align: 0 }), points: { show: false } }
      : { label: CHART_COLUMNS[spec.key][0], stroke: color, width: 2, spanGaps: false,
          points: { show: true, size: 7, fill: color } };
    series.value = (u, v) => (v === null ? "-" : (divisor === 0.01 ? v.toFixed(1) : v.toFixed(2)) + " " + unit);
    const opts = {
      width: chartWidth(plot),
      height: 220,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
      legend: { show: true },
      cursor: { drag: { x: false, y: false } },
      scales: {
        x: { time: true, range: (u, min, max) => [min - span, max + span] },
        y: { range: () => [0, top] },
      },
      axes: [
        { stroke: "#1b1f24", grid: { stroke: "#e3e7eb" } },
        { label: unit, stroke: "#1b1f24", grid: { stroke: "#e3e7eb" }, size: 56 },
      ],
      hooks: { drawClear: [drawBands(spec, divisor)] },
      series: [{ label: weekly ? "Week of" : "Day", value: (u, ts) => (ts === null ? "-" : new Date(ts * 1e3).toISOString().slice(0, 10)) }, series],
    };
    state.charts[id] = new uPlot(opts, [xs, ys], plot);
  }

  function renderCharts(head, per) {
    $("charts-title").textContent = per === "week" ? "Per week" : "Per day";
    ensureFigures();
    for (const spec of METRICS) renderChart(spec, head, per);
  }

  // -- one repository's activity ------------------------------------------------------------------
  function yesNo(flag) {
    return flag ? "yes" : "no";
  }

  function shortSha(sha) {
    return sha ? sha.slice(0, 12) : "";
  }

  function changesCell(changes) {
    const td = el("td", { class: "changes", "data-count": String(changes.length) });
    if (!changes.length) {
      td.textContent = "none";
      return td;
    }
    const item = (change) => el("li", { "data-sha": change.sha }, shortSha(change.sha) + " " + duration(change.lead_time_s));
    const shown = changes.slice(0, 5);
    const list = el("ul", {});
    list.append(...shown.map(item));
    td.append(list);
    if (changes.length > shown.length) {
      const more = el("details", {});
      more.append(el("summary", {}, (changes.length - shown.length) + " more"));
      const rest = el("ul", {});
      rest.append(...changes.slice(shown.length).map(item));
      more.append(rest);
      td.append(more);
    }
    return td;
  }

  // Production: the deployments the API counted; otherwise the one environment's, by normalized name.
  function matchesEnvironment(row, environment) {
    if (!environment) return row.counted;
    return row.environment.trim().toLowerCase() === environment.trim().toLowerCase();
  }

  function renderActivity(view, activity) {
    const environment = view.environment;
    const deployments = activity.deployments.filter((d) => matchesEnvironment(d, environment));
    const hidden = activity.deployments.length - deployments.length;
    const where = environment ? "environment " + environment : "production environments";
    $("deployments-note").textContent = plural(deployments.length, "deployment") + " to " + where +
      " in the last " + activity.window_days + " days" + (hidden ? "; " + hidden + " to other environments not shown" : "") + ".";
    const limit = state.showAll ? deployments.length : Math.min(deployments.length, DEPLOYMENT_ROWS);
    $("more-deployments").hidden = limit >= deployments.length;
    $("more-deployments").textContent = "Show all " + deployments.length + " deployments";
    $("deployments").tBodies[0].replaceChildren(...deployments.slice(0, limit).map((d) => {
      const tr = el("tr", { "data-event-id": d.event_id });
      tr.append(el("td", {}, timeText(d.time)), el("td", {}, d.environment));
      tr.append(el("td", { class: d.outcome === "failure" ? "bad" : "" }, d.outcome));
      tr.append(el("td", { class: "sha" }, shortSha(d.sha)));
      tr.append(changesCell(d.changes));
      tr.append(el("td", { class: d.change_failure ? "bad" : "" }, yesNo(d.change_failure)));
      tr.append(el("td", {}, yesNo(d.rework)));
      return tr;
    }));
    $("deployments").hidden = !deployments.length;
    $("deployments-empty").hidden = deployments.length > 0;

    $("failures-note").textContent = environment
      ? "The API lists production failures only; none are shown for environment " + environment + "."
      : "Production failures that started in the window: failed deployments and incidents, with the time to recover.";
    const shownFailures = environment ? [] : activity.failures;
    $("failures").tBodies[0].replaceChildren(...shownFailures.map((f) => {
      const tr = el("tr", { "data-event-id": f.event_id });
      tr.append(el("td", {}, timeText(f.started)), el("td", {}, f.kind === "deployment" ? "failed deployment" : "incident"));
      tr.append(el("td", {}, f.environment), el("td", {}, f.ended ? timeText(f.ended) : "open"));
      tr.append(el("td", { class: f.recovery_s === null ? "bad" : "" }, f.recovery_s === null ? "not recovered" : duration(f.recovery_s)));
      return tr;
    }));
    $("failures").hidden = !shownFailures.length;
    $("failures-empty").hidden = shownFailures.length > 0;
  }

  // -- levels explained --------------------------------------------------------------------------
  function renderLevels() {
    const body = $("levels-table").tBodies[0];
    if (body.rows.length) return;
    body.append(...METRICS.map((spec) => {
      const tr = el("tr", { "data-metric": spec.key, "data-edges": spec.edges ? JSON.stringify(spec.edges) : "" });
      tr.append(el("th", { scope: "row" }, spec.title));
      if (spec.bands) for (const band of spec.bands) tr.append(el("td", {}, band));
      else tr.append(el("td", { colspan: "4" }, "DORA publishes no bands for rework rate; shown without a level"));
      tr.append(el("td", {}, spec.source));
      return tr;
    }));
  }

  // -- loading and rendering -----------------------------------------------------------------------
  function showLogin(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = null;
    clearInterval(state.timer);
    $("app").hidden = true;
    $("controls").hidden = true;
    $("login").hidden = false;
    $("error").textContent = message || "";
    $("token").value = "";
    $("token").focus();
  }

  function focusKey() {
    const active = document.activeElement;
    return active && active.dataset ? active.dataset.focus || active.id || null : null;
  }

  function restoreFocus(key) {
    if (!key || (document.activeElement && document.activeElement !== document.body)) return;
    const node = document.querySelector('[data-focus="' + CSS.escape(key) + '"]') || $(key);
    if (node) node.focus();
  }

  // cause: "filter" (a control), "history" (a link, back or forward), "refresh" or "start".
  async function load(options) {
    const cause = (options && options.cause) || "start";
    state.token = sessionStorage.getItem(TOKEN_KEY);
    if (!state.token) return showLogin();
    const view = parseView();
    const hash = viewHash(view);
    const ticket = ++state.loading;
    const common = { window: view.window, environment: view.environment };
    let overview, repoMetrics = null, activity = null;
    try {
      if (view.repo) {
        [overview, repoMetrics, activity] = await Promise.all([
          api("/metrics", common).catch(() => null), // only for the filters' lists
          api("/metrics/" + repoPath(view.repo), common),
          api("/deployments/" + repoPath(view.repo), { window: view.window }),
        ]);
      } else {
        overview = await api("/metrics", { ...common, team: view.team, service: view.service });
      }
    } catch (error) {
      if (ticket !== state.loading) return;
      if (error.status === 401) return showLogin("That token was not accepted. Enter the gateway token.");
      $("error").textContent = (view.repo ? "Repository " + view.repo : "The metrics") + ": " + error.message;
      $("content").hidden = true; // no stale numbers under an error
      $("app").hidden = false;
      $("controls").hidden = false;
      $("login").hidden = true;
      document.body.dataset.rendered = hash;
      return;
    }
    if (ticket !== state.loading) return; // a newer view was asked for meanwhile
    const key = focusKey();
    const head = view.repo ? repoMetrics : overview.repos[0];
    $("error").textContent = "";
    $("login").hidden = true;
    $("controls").hidden = false;
    $("app").hidden = false;
    $("content").hidden = false;
    const changedView = state.rendered !== hash;
    syncFilters(view, overview, head);
    const title = view.repo ? view.repo
      : head.scope === "all" ? "All repositories" : (head.scope === "team" ? "Team " : "Service ") + head.repo;
    $("view-title").textContent = title;
    document.title = "DORA metrics: " + title;
    $("crumbs").hidden = !view.repo;
    $("crumb-repo").textContent = view.repo || "";
    $("back").setAttribute("href", viewHash(overviewOf(view)));
    const environment = head.environment || view.environment || PRODUCTION;
    const status = "Window " + head.window_days + " days (" + head.window_start + " to " + head.window_end +
      ", UTC); " + (environment === PRODUCTION ? "production environments" : "environment " + environment) + ".";
    if ($("status").textContent !== status) $("status").textContent = status;
    $("updated").textContent = "Updated " + new Date().toLocaleTimeString() + ".";
    renderTiles(head);
    $("repos-section").hidden = !!view.repo;
    $("activity").hidden = !view.repo;
    if (view.repo && state.activityRepo !== view.repo) state.showAll = false;
    state.activityRepo = view.repo;
    if (view.repo) renderActivity(view, activity);
    else renderTable(view, overview);
    renderCharts(head, perOf(view, head.window_days));
    renderLevels();
    state.rendered = hash;
    // The focus: a filter keeps it; following a link or the back button moves it to the new view's
    // title, or back on the overview to the link of the repository just left.
    if (view.repo) state.lastRepo = view.repo;
    if (changedView && cause === "history") {
      const link = view.repo ? null
        : document.querySelector('[data-focus="' + CSS.escape("repo-" + (state.lastRepo || "")) + '"]');
      (link || $("view-title")).focus();
    } else restoreFocus(key);
    document.body.dataset.loaded = "true";
    document.body.dataset.rendered = hash;
  }

  function start() {
    clearInterval(state.timer);
    state.timer = setInterval(() => load({ cause: "refresh" }), REFRESH_MS);
    return load();
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelector(".skip").addEventListener("click", (event) => {
      event.preventDefault(); // the hash holds the view; the skip link only moves the focus
      $("main").focus();
    });
    $("login").addEventListener("submit", (event) => {
      event.preventDefault();
      const token = $("token").value.trim();
      if (!token) return;
      sessionStorage.setItem(TOKEN_KEY, token);
      start().then(() => { if (!$("app").hidden) $("window").focus(); });
    });
    $("filters").addEventListener("change", onFilter);
    $("filters").addEventListener("submit", (event) => event.preventDefault());
    $("repos").addEventListener("click", (event) => {
      // A click anywhere on a row opens the repository (the name is the keyboard's link).
      const row = event.target.closest("tr.link-row");
      if (!row || event.target.closest("a, button")) return;
      location.hash = viewHash({ ...parseView(), repo: row.dataset.repo });
    });
    $("refresh").addEventListener("click", () => load({ cause: "refresh" }));
    $("more-deployments").addEventListener("click", () => {
      state.showAll = true;
      load({ cause: "refresh" }).then(() => $("deployments-title").focus()); // the button is gone
    });
    $("signout").addEventListener("click", () => showLogin("Token forgotten."));
    window.addEventListener("hashchange", () => {
      const cause = state.nextCause || "history";
      state.nextCause = null;
      if (location.hash === "" || location.hash.startsWith("#/")) load({ cause });
    });
    window.addEventListener("resize", () => {
      for (const [id, chart] of Object.entries(state.charts)) {
        chart.setSize({ width: chartWidth($(id + "-plot")), height: 220 });
      }
    });
    if (sessionStorage.getItem(TOKEN_KEY)) start();
    else showLogin();
  });
})();
