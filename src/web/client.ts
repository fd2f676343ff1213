// The dashboard's browser script, sent inline (with a CSP nonce) so the page loads nothing from
// anywhere. It draws SVG charts from the JSON embedded in the page and refreshes it every minute.
// Plain ES2017 in a string: the project has no browser build, and this stays small on purpose.
// Text is only ever set with textContent/attributes, never parsed as HTML.
export const CLIENT_SCRIPT = `(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var COLORS = { ok: "#1a7f37", failed: "#cf222e", aborted: "#bf8700", killed: "#8250df", running: "#0969da" };
  var LEVEL_CLASS = { OK: "ok", WARNING: "warn", CRITICAL: "crit", UNKNOWN: "unknown" };
  var W = 640, H = 240, M = { l: 64, r: 16, t: 14, b: 34 };

  function $(id) { return document.getElementById(id); }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function sv(tag, attrs, text) {
    var e = document.createElementNS(NS, tag);
    for (var k in attrs || {}) e.setAttribute(k, String(attrs[k]));
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function fmtBytes(n) {
    if (n === null || n === undefined) return "-";
    var u = ["B", "KiB", "MiB", "GiB", "TiB"], i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n : n.toFixed(n < 10 ? 2 : 1)) + " " + u[i];
  }
  function fmtSecs(s) {
    if (s === null || s === undefined) return "-";
    if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + " s";
    if (s < 3600) return (s / 60).toFixed(1) + " min";
    return (s / 3600).toFixed(1) + " h";
  }
  function pad(n) { return n < 10 ? "0" + n : String(n); }
  function fmtTime(ms) {
    var d = new Date(ms);
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " + pad(d.getHours()) + ":" + pad(d.getMinutes());
  }
  function fmtTick(ms, span) {
    var d = new Date(ms);
    if (span < 2 * 86400000) return pad(d.getHours()) + ":" + pad(d.getMinutes()) + (span < 600000 ? ":" + pad(d.getSeconds()) : "");
    return pad(d.getMonth() + 1) + "-" + pad(d.getDate());
  }
  function ago(seconds) {
    if (seconds < 90) return Math.round(seconds) + " s ago";
    if (seconds < 5400) return Math.round(seconds / 60) + " min ago";
    if (seconds < 172800) return Math.round(seconds / 3600) + " h ago";
    return Math.round(seconds / 86400) + " d ago";
  }
  function timeRange(ts) {
    var x0 = Math.min.apply(null, ts), x1 = Math.max.apply(null, ts);
    var padMs = Math.max((x1 - x0) * 0.04, 2000);
    return [x0 - padMs, x1 + padMs];
  }
  function xScale(range, left, width) {
    return function (t) { return left + ((t - range[0]) / (range[1] - range[0])) * (width - left - M.r); };
  }
  function xAxis(svg, range, bottom, left, width) {
    var x = xScale(range, left, width), span = range[1] - range[0];
    svg.appendChild(sv("line", { x1: left, x2: width - M.r, y1: bottom, y2: bottom, stroke: "#8c959f" }));
    for (var i = 0; i <= 4; i++) {
      var t = range[0] + (span * i) / 4;
      svg.appendChild(sv("line", { x1: x(t), x2: x(t), y1: bottom, y2: bottom + 4, stroke: "#8c959f" }));
      svg.appendChild(sv("text", { x: x(t), y: bottom + 18, "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle", class: "tick" }, fmtTick(t, span)));
    }
  }
  function empty(svg, text, width, height) {
    svg.appendChild(sv("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "empty" }, text));
  }

  function lineChart(svg, points, fmt, color, none) {
    clear(svg);
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    if (points.length === 0) return empty(svg, none || "no successful backups yet", W, H);
    var range = timeRange(points.map(function (p) { return p.t; }));
    var yMax = Math.max.apply(null, points.map(function (p) { return p.v; })) * 1.15 || 1;
    var x = xScale(range, M.l, W);
    var y = function (v) { return H - M.b - (v / yMax) * (H - M.t - M.b); };
    for (var i = 0; i <= 4; i++) {
      var v = (yMax * i) / 4;
      svg.appendChild(sv("line", { x1: M.l, x2: W - M.r, y1: y(v), y2: y(v), stroke: "#d0d7de", "stroke-dasharray": i ? "3 3" : "" }));
      svg.appendChild(sv("text", { x: M.l - 6, y: y(v) + 4, "text-anchor": "end", class: "tick" }, fmt(v)));
    }
    xAxis(svg, range, H - M.b, M.l, W);
    svg.appendChild(sv("polyline", {
      points: points.map(function (p) { return x(p.t).toFixed(1) + "," + y(p.v).toFixed(1); }).join(" "),
      fill: "none", stroke: color, "stroke-width": 2,
    }));
    points.forEach(function (p) {
      var c = sv("circle", { class: "point", cx: x(p.t).toFixed(1), cy: y(p.v).toFixed(1), r: p.kind === "full" ? 5 : 3.5, fill: color, "data-run-id": p.id, "data-value": p.v });
      c.appendChild(sv("title", {}, p.label));
      svg.appendChild(c);
    });
  }

  function timeline(svg, runs) {
    clear(svg);
    var rows = ["backup", "verify", "restore-test", "restore", "copy", "prune", "key-rotate", "binlog-archive"];
    runs.forEach(function (r) { if (rows.indexOf(r.command) < 0) rows.push(r.command); });
    var TW = 1280, rowH = 24, h = M.t + rows.length * rowH + M.b, left = 96;
    svg.setAttribute("viewBox", "0 0 " + TW + " " + h);
    if (runs.length === 0) return empty(svg, "no runs recorded yet", TW, h);
    var range = timeRange(runs.map(function (r) { return r.startedAt; }));
    var x = xScale(range, left, TW);
    rows.forEach(function (name, i) {
      var cy = M.t + i * rowH + rowH / 2;
      svg.appendChild(sv("text", { x: left - 8, y: cy + 4, "text-anchor": "end", class: "tick" }, name));
      svg.appendChild(sv("line", { x1: left, x2: TW - M.r, y1: cy, y2: cy, stroke: "#eaeef2" }));
    });
    runs.forEach(function (r) {
      var cy = M.t + rows.indexOf(r.command) * rowH + rowH / 2;
      var c = sv("circle", { class: "tl-run", cx: x(r.startedAt).toFixed(1), cy: cy, r: r.kind === "full" ? 6 : 4.5, fill: COLORS[r.result] || "#57606a", "data-run-id": r.id, "data-result": r.result });
      c.appendChild(sv("title", {}, r.command + (r.kind ? " " + r.kind : "") + " " + r.result + " at " + fmtTime(r.startedAt) + (r.durationMs !== null ? ", " + fmtSecs(r.durationMs / 1000) : "") + (r.error ? ": " + r.error : "")));
      svg.appendChild(c);
    });
    xAxis(svg, range, M.t + rows.length * rowH + 4, left, TW);
  }

  function statusPanel(status) {
    var badge = $("overall");
    badge.textContent = status.level;
    badge.className = "badge " + (LEVEL_CLASS[status.level] || "unknown");
    $("summary").textContent = status.summary;
    var body = $("checks-body");
    clear(body);
    status.repositories.forEach(function (repo) {
      Object.keys(repo.checks).forEach(function (name) {
        var c = repo.checks[name], last = c.lastRun, ok = c.lastSuccess;
        var tr = el("tr");
        tr.appendChild(el("td", {}, repo.repository));
        tr.appendChild(el("td", {}, name));
        var lv = el("td", {}, c.level);
        lv.className = "lv " + (LEVEL_CLASS[c.level] || "unknown");
        tr.appendChild(lv);
        tr.appendChild(el("td", {}, last ? last.result + " " + ago(last.ageSeconds) : "never"));
        tr.appendChild(el("td", {}, ok ? ago(ok.ageSeconds) : "never"));
        tr.appendChild(el("td", {}, c.problems.join("; ")));
        body.appendChild(tr);
      });
      (repo.otherRuns || []).forEach(function (r) {
        var tr = el("tr", { class: "other-run", "data-command": r.command });
        tr.appendChild(el("td", {}, repo.repository));
        tr.appendChild(el("td", {}, r.command));
        var lv = el("td", {}, r.result === "ok" ? "OK" : r.result.toUpperCase());
        lv.className = "lv " + (r.result === "ok" ? "ok" : "warn");
        tr.appendChild(lv);
        tr.appendChild(el("td", {}, r.result + " " + ago(r.ageSeconds)));
        tr.appendChild(el("td", {}, "-"));
        tr.appendChild(el("td", {}, r.error || ""));
        body.appendChild(tr);
      });
    });
  }

  function incidentsPanel(incidents) {
    var list = $("incidents");
    clear(list);
    var open = incidents.filter(function (i) { return i.closedAt === null; });
    $("incident-count").textContent = String(open.length);
    if (open.length === 0) list.appendChild(el("li", { class: "none" }, "no open alerts"));
    open.forEach(function (i) {
      var li = el("li", { class: "incident " + i.severity });
      li.appendChild(el("strong", {}, i.severity.toUpperCase() + " "));
      li.appendChild(document.createTextNode(i.repository + " " + i.subject + ": " + i.message + " (since " + fmtTime(i.openedAt) + ")"));
      list.appendChild(li);
    });
  }

  function recordPanel(runs) {
    var body = $("record-body");
    clear(body);
    var checks = runs.filter(function (r) { return r.command === "verify" || r.command === "restore-test"; }).reverse().slice(0, 50);
    if (checks.length === 0) {
      var tr0 = el("tr");
      tr0.appendChild(el("td", { colspan: "7" }, "no verify or restore-test recorded yet"));
      body.appendChild(tr0);
    }
    checks.forEach(function (r) {
      var tr = el("tr", { class: "check-run", "data-result": r.result, "data-repository": r.repository });
      tr.appendChild(el("td", {}, fmtTime(r.startedAt)));
      tr.appendChild(el("td", { class: "repo" }, r.repository));
      tr.appendChild(el("td", {}, r.command + (r.kind ? " (" + r.kind + ")" : "")));
      var res = el("td", {}, r.result === "ok" ? "PASS" : r.result === "running" ? "running" : "FAIL");
      res.className = r.result === "ok" ? "lv ok" : r.result === "running" ? "lv" : "lv crit";
      tr.appendChild(res);
      tr.appendChild(el("td", {}, r.durationMs === null ? "-" : fmtSecs(r.durationMs / 1000)));
      var rto = r.details && typeof r.details.rtoSeconds === "number" ? fmtSecs(r.details.rtoSeconds) : "-";
      tr.appendChild(el("td", {}, rto));
      tr.appendChild(el("td", {}, r.error || (r.details && r.details.backupId) || ""));
      body.appendChild(tr);
    });
  }

  function pitrPanel(status) {
    var body = $("pitr-body");
    clear(body);
    var any = false;
    status.repositories.forEach(function (repo) {
      var p = repo.pitr;
      if (!p) return;
      any = true;
      var tr = el("tr", { class: "pitr", "data-repository": repo.repository });
      tr.appendChild(el("td", {}, repo.repository));
      tr.appendChild(el("td", { class: "window" }, p.window ? fmtTime(Date.parse(p.window.from)) + " .. " + fmtTime(Date.parse(p.window.to)) : "none"));
      tr.appendChild(el("td", { class: "lag" }, p.lagSeconds === null ? "-" : fmtSecs(p.lagSeconds)));
      var g = el("td", { class: "gaps" }, String(p.openGaps.length));
      if (p.openGaps.length) g.className = "gaps lv crit";
      tr.appendChild(g);
      tr.appendChild(el("td", {}, p.lastPass.result + " " + ago(p.lastPass.ageSeconds)));
      body.appendChild(tr);
    });
    if (!any) {
      var tr0 = el("tr");
      tr0.appendChild(el("td", { colspan: "5" }, "no binlog archive passes recorded"));
      body.appendChild(tr0);
    }
  }

  function render(d) {
    statusPanel(d.status);
    incidentsPanel(d.incidents);
    $("generated").textContent = "updated " + fmtTime(Date.parse(d.generatedAt));
    $("catalog-error").textContent = d.error ? "run history unreadable: " + d.error : "";
    timeline($("timeline"), d.runs);
    var backups = d.runs.filter(function (r) { return r.command === "backup" && r.result === "ok"; });
    var label = function (r, text) { return (r.kind || "backup") + " " + fmtTime(r.startedAt) + ": " + text; };
    lineChart($("chart-duration"), backups.filter(function (r) { return r.durationMs !== null; }).map(function (r) {
      return { t: r.startedAt, v: r.durationMs / 1000, id: r.id, kind: r.kind, label: label(r, fmtSecs(r.durationMs / 1000)) };
    }), fmtSecs, "#0969da");
    lineChart($("chart-size"), backups.filter(function (r) { return r.bytes !== null; }).map(function (r) {
      return { t: r.startedAt, v: r.bytes, id: r.id, kind: r.kind, label: label(r, fmtBytes(r.bytes)) };
    }), fmtBytes, "#8250df");
    var tests = d.runs.filter(function (r) { return r.command === "restore-test" && r.result === "ok" && r.details && typeof r.details.rtoSeconds === "number"; });
    lineChart($("chart-rto"), tests.map(function (r) {
      return { t: r.startedAt, v: r.details.rtoSeconds, id: r.id, kind: "full", label: r.repository + " " + fmtTime(r.startedAt) + ": RTO " + fmtSecs(r.details.rtoSeconds) };
    }), fmtSecs, "#1a7f37", "no passing restore-test yet");
    pitrPanel(d.status);
    recordPanel(d.runs);
    document.body.setAttribute("data-rendered", "true");
  }

  render(JSON.parse($("dashboard-data").textContent));
  setInterval(function () {
    fetch("api/dashboard", { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (d) { if (d) render(d); })
      .catch(function () {});
  }, 60000);
})();
`;
