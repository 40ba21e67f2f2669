/* The flow run pages, live: the runs list updates state badges and inserts new runs that match its filters; a
   run's page updates its state, timeline, task runs, graph and logs. Messages come from live.js; parts that need
   the server's rendering (new rows, the summary with its buttons, the graph) are reloaded as HTML fragments from
   the page's own views, so the markup has one source. */
(function () {
  "use strict";

  var LEVELS = { 10: "DEBUG", 20: "INFO", 30: "WARNING", 40: "ERROR", 50: "CRITICAL" };
  var MAX_LOG_ROWS = 2000;

  function urlsafe(base64) { return base64.replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, ""); }

  function $(root, selector) { return root.querySelector(selector); }

  function cssId(id) { return String(id).replace(/[^0-9a-fA-F-]/g, ""); }

  function shownTime(iso, precise) {
    // The API's times are UTC ISO 8601 ("2026-01-31T17:00:00.123456Z"); the pages show UTC as "2026-01-31 17:00:00".
    if (!iso) { return ""; }
    return String(iso).replace("T", " ").slice(0, precise ? 23 : 19);
  }

  function formatSeconds(seconds) {
    if (seconds < 60) { return seconds.toFixed(1) + " s"; }
    var minutes = Math.floor(seconds / 60), secs = Math.floor(seconds % 60);
    if (minutes < 60) { return minutes + " min " + secs + " s"; }
    return Math.floor(minutes / 60) + " h " + (minutes % 60) + " min";
  }

  function duration(run) {
    if (!run.start_time) { return ""; }
    if (!run.end_time) {
      if (run.state_type !== "RUNNING") { return run.total_run_time ? formatSeconds(run.total_run_time) : ""; }
      return formatSeconds((Date.now() - Date.parse(run.start_time)) / 1000);
    }
    return formatSeconds(run.total_run_time || (Date.parse(run.end_time) - Date.parse(run.start_time)) / 1000);
  }

  function setBadge(badge, stateType, stateName) {
    if (!badge) { return; }
    // Only what changed: observers of the badge (the browser test's) see one mutation per new state.
    if (badge.className !== "state state-" + stateType) { badge.className = "state state-" + stateType; }
    if (badge.textContent !== (stateName || "")) { badge.textContent = stateName || ""; }
    if (badge.hasAttribute("data-type")) { badge.setAttribute("data-type", stateType); }
  }

  function cell(text, className) {
    var td = document.createElement("td");
    if (className) { td.className = className; }
    td.textContent = text;
    return td;
  }

  function badgeCell(stateType, stateName) {
    var td = document.createElement("td"), span = document.createElement("span");
    span.setAttribute("data-role", "state");
    setBadge(span, stateType, stateName);
    td.appendChild(span);
    return td;
  }

  function fetchText(url) {
    return window.fetch(url, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } }).then(function (response) {
      if (!response.ok) { throw new Error(url + " answered " + response.status); }
      return response.text();
    });
  }

  function rowsFrom(html) {
    var body = document.createElement("tbody");
    body.innerHTML = html;
    return Array.prototype.slice.call(body.querySelectorAll("tr"));
  }

  /* Runs a function at most once per `wait` ms, at the end of a burst. */
  function debounced(fn, wait) {
    var timer = null;
    return function () {
      if (timer) { return; }
      timer = window.setTimeout(function () { timer = null; fn(); }, wait);
    };
  }

  function statusSetter(root) {
    var node = $(root, "[data-role=live-status]");
    return function (text) { if (node) { node.textContent = text === "live" ? "● live" : text; } };
  }

  // ------------------------------------------------------------------------------------------------------------
  // The runs list

  function runsList(root) {
    var table = $(root, "#flow-runs-table tbody");
    var rowsUrl = root.getAttribute("data-rows-url");
    var firstPage = root.getAttribute("data-first-page") === "1";
    var waiting = {};

    function insertRows(html, replace) {
      var rows = rowsFrom(html);
      if (replace) { table.innerHTML = ""; }
      for (var i = rows.length - 1; i >= 0; i--) {
        var existing = $(table, 'tr[data-id="' + cssId(rows[i].getAttribute("data-id")) + '"]');
        if (existing) { existing.replaceWith(rows[i]); } else { table.insertBefore(rows[i], table.firstChild); }
      }
      var empty = $(root, ".ui-empty");
      if (empty && table.rows.length) { empty.remove(); }
    }

    var fetchNew = debounced(function () {
      var ids = Object.keys(waiting);
      waiting = {};
      if (!ids.length) { return; }
      // The server says which of the new runs match the page's filters, and renders their rows.
      readRows("&ids=" + ids.join(","), false);
    }, 100);

    // Messages that arrive while rows are being read are applied again over the answer (it may predate them).
    var readsInFlight = 0, runsSinceRead = [];

    function readRows(query, replace) {
      readsInFlight += 1;
      var from = runsSinceRead.length;
      fetchText(rowsUrl + query).then(function (html) {
        insertRows(html, replace);
        runsSinceRead.slice(from).forEach(function (run) { applyRun(run, false); });
      }).catch(function () {}).then(function () {
        readsInFlight -= 1;
        if (!readsInFlight) { runsSinceRead = []; }
      });
    }

    function onFlowRun(run) {
      if (readsInFlight) { runsSinceRead.push(run); }
      applyRun(run, true);
    }

    function applyRun(run, live) {
      var row = $(table, 'tr[data-id="' + cssId(run.id) + '"]');
      if (row) {
        setBadge($(row, "[data-role=state]"), run.state_type, run.state_name);
        var start = $(row, "[data-role=start]");
        if (start && run.start_time) { start.textContent = shownTime(run.start_time); }
        var took = $(row, "[data-role=duration]");
        if (took) { took.textContent = duration(run); }
      } else if (firstPage && live) {
        waiting[run.id] = true;
        fetchNew();
      }
    }

    window.OrchestratorLive.connect(root.getAttribute("data-live-path"), {
      handlers: { flow_run: onFlowRun },
      onOpen: function () {
        if (firstPage) { readRows("", true); }
      },
      onStatus: statusSetter(root)
    });
  }

  // ------------------------------------------------------------------------------------------------------------
  // One run's page

  function runPage(root) {
    var runId = root.getAttribute("data-run-id");
    var partUrl = root.getAttribute("data-part-url");
    var level = parseInt(root.getAttribute("data-log-level") || "0", 10);
    var liveLogs = root.getAttribute("data-live-logs") === "1";
    var taskCursor = root.getAttribute("data-task-cursor") || "";

    function url(part, query) { return partUrl.replace("PART", part) + (query ? "?" + query : ""); }

    function replacePart(name, html) {
      var section = $(root, '[data-part="' + name + '"]');
      if (section) { section.innerHTML = html; }
    }

    // Task run messages that arrive while a part is being read are applied again over the part's answer: the
    // answer may have been read before their change, and the last message of a task run may be its last one.
    var partsInFlight = 0, taskRunsSinceRead = [];

    function reload(name, query) {
      partsInFlight += 1;
      var from = taskRunsSinceRead.length;
      return fetchText(url(name, query)).then(function (html) {
        replacePart(name, html);
        taskRunsSinceRead.slice(from).forEach(function (taskRun) { applyTaskRun(taskRun, false); });
      }).catch(function () {}).then(function () {
        partsInFlight -= 1;
        if (!partsInFlight) { taskRunsSinceRead = []; }
      });
    }

    function lastStateId(node) {
      var items = node.querySelectorAll("[data-testid=run-timeline] li");
      return items.length ? items[items.length - 1].getAttribute("data-id") : null;
    }

    // The newest state a message announced, and the newest state the server rendered the summary with.
    var latestStateId = null, staleReads = 0, renderedStateId = lastStateId(root);

    function applySummary(html) {
      var fresh = document.createElement("div");
      fresh.innerHTML = html;
      if (lastStateId(fresh) !== null && fresh.querySelectorAll("[data-testid=run-timeline] li").length < root.querySelectorAll("[data-testid=run-timeline] li").length) { return; }  // an answer older than what is shown (two reads answered out of order)
      // A summary rendered before the newest announced state is stale: read it again rather than step back.
      if (latestStateId && staleReads < 20 && !$(fresh, '[data-testid=run-timeline] li[data-id="' + cssId(latestStateId) + '"]')) {
        staleReads += 1;
        reloadSummary();
        return;
      }
      staleReads = 0;
      var section = $(root, '[data-part="summary"]');
      // The same state with a resume form: keep the form the user may be filling in (or reading errors on).
      if ($(section, "[data-testid=resume-form]") && lastStateId(fresh) === renderedStateId) { return; }
      renderedStateId = lastStateId(fresh);
      // Keep the badge element itself (scripts and observers watching it stay attached); copy the new state.
      var badge = $(root, "[data-testid=run-state]"), newBadge = $(fresh, "[data-testid=run-state]");
      if (badge && newBadge) {
        setBadge(badge, newBadge.getAttribute("data-type"), newBadge.textContent);
        newBadge.replaceWith(badge);
      }
      section.replaceChildren.apply(section, Array.prototype.slice.call(fresh.childNodes));
    }

    var reloadSummary = debounced(function () {
      fetchText(url("summary")).then(applySummary).catch(function () {});
    }, 150);
    var reloadGraph = debounced(function () { reload("graph"); }, 1000);

    // "Why is this run waiting?": re-read on each state change of the run, and every few seconds while the run
    // waits (a pool resumed or a slot freed elsewhere changes the answer without a message for this run).
    var waitingSection = $(root, '[data-part="waiting"]');
    var waitingRefreshMs = parseInt((waitingSection && waitingSection.getAttribute("data-refresh-ms")) || "3000", 10);
    var waitingTimer = null, waitingAsked = 0, waitingShown = 0, waitingHtml = null;

    function scheduleWaiting() {
      if (waitingTimer) { window.clearTimeout(waitingTimer); }
      waitingTimer = null;
      if (waitingSection && $(waitingSection, '[data-waiting="1"]')) {
        waitingTimer = window.setTimeout(reloadWaiting, waitingRefreshMs);
      }
    }

    var reloadWaiting = debounced(function () {
      if (!waitingSection) { return; }
      var asked = ++waitingAsked;
      fetchText(url("waiting")).then(function (html) {
        if (asked < waitingShown) { return; }  // an older answer than the one shown (two reads out of order)
        waitingShown = asked;
        if (html !== waitingHtml) { waitingSection.innerHTML = html; waitingHtml = html; }
      }).catch(function () {}).then(function () { if (asked === waitingAsked) { scheduleWaiting(); } });
    }, 150);
    scheduleWaiting();

    function onFlowRun(run) {
      if (String(run.id) !== runId || !run.state) { return; }
      var timeline = $(root, "[data-testid=run-timeline]");
      if (timeline && $(timeline, 'li[data-id="' + cssId(run.state.id) + '"]')) { return; }  // already shown
      latestStateId = run.state.id;
      setBadge($(root, "[data-testid=run-state]"), run.state_type, run.state_name);
      if (timeline) {
        var item = document.createElement("li"), time = document.createElement("time"), badge = document.createElement("span");
        item.setAttribute("data-id", run.state.id);
        time.setAttribute("datetime", run.state.timestamp);
        time.textContent = shownTime(run.state.timestamp, true);
        setBadge(badge, run.state.type, run.state.name);
        item.appendChild(time);
        item.appendChild(document.createTextNode(" "));
        item.appendChild(badge);
        if (run.state.message) {
          var message = document.createElement("span");
          message.className = "ui-state-message";
          message.textContent = " " + run.state.message;
          item.appendChild(message);
        }
        timeline.appendChild(item);
      }
      reloadSummary();  // the buttons, times and result follow the new state
      reloadWaiting();
    }

    function onTaskRun(taskRun) {
      if (partsInFlight) { taskRunsSinceRead.push(taskRun); }
      applyTaskRun(taskRun, true);
    }

    function applyTaskRun(taskRun, live) {
      var table = $(root, "[data-testid=task-runs]");
      if (table) {
        var row = $(table, 'tbody tr[data-id="' + cssId(taskRun.id) + '"]');
        if (row) {
          setBadge($(row, "[data-role=state]"), taskRun.state_type, taskRun.state_name);
          var brief = $(row, "[data-role=waiting]");
          if (brief && taskRun.state_type !== "PENDING" && taskRun.state_type !== "SCHEDULED") { brief.remove(); }
          $(row, "[data-role=start]").textContent = shownTime(taskRun.start_time);
          $(row, "[data-role=duration]").textContent = duration(taskRun);
          $(row, "[data-role=retries]").textContent = Math.max((taskRun.run_count || 0) - 1, 0);
        } else if (table.getAttribute("data-last-page") === "1") {
          row = document.createElement("tr");
          row.setAttribute("data-id", taskRun.id);
          row.setAttribute("data-created", taskRun.created);
          row.appendChild(cell(taskRun.name));
          row.appendChild(badgeCell(taskRun.state_type, taskRun.state_name));
          row.appendChild(cell(shownTime(taskRun.start_time))).setAttribute("data-role", "start");
          row.appendChild(cell(duration(taskRun))).setAttribute("data-role", "duration");
          row.appendChild(cell(String(Math.max((taskRun.run_count || 0) - 1, 0)))).setAttribute("data-role", "retries");
          insertByCreation($(table, "tbody"), row, taskRun.created);
          var empty = $(table.parentNode, ".ui-empty");
          if (empty) { empty.remove(); }
        }
      }
      var node = $(root, '[data-testid=run-graph] g.node[data-id="' + cssId(taskRun.id) + '"]');
      if (node) {
        node.setAttribute("class", "node state-" + taskRun.state_type + (/\bsubflow\b/.test(node.getAttribute("class")) ? " subflow" : ""));
      } else if (live && !$(root, "[data-testid=run-graph][data-truncated]")) {
        reloadGraph();  // a new task run: the layout changes (a capped graph draws no more)
      }
    }

    function insertByCreation(body, row, created) {
      // Messages come in commit order, one per task run per batch: a task run created earlier may arrive later.
      var when = Date.parse(created), rows = body.rows;
      for (var i = rows.length - 1; i >= 0; i--) {
        if (Date.parse(rows[i].getAttribute("data-created")) <= when) {
          rows[i].after(row);
          return;
        }
      }
      body.insertBefore(row, body.firstChild);
    }

    function logsBody() { return $(root, "[data-testid=run-logs] tbody"); }

    function appendLogRows(rows) {
      var body = logsBody();
      rows.forEach(function (row) {
        if (!$(body, 'tr[data-id="' + cssId(row.getAttribute("data-id")) + '"]')) { body.appendChild(row); }
      });
      var empty = $(root, "[data-role=no-logs]");
      if (empty && body.rows.length) { empty.remove(); }
      trimLogs(body);
    }

    function trimLogs(body) {
      // A long live run keeps the newest MAX_LOG_ROWS lines in the page; the Earlier link reads the rest.
      if (body.rows.length <= MAX_LOG_ROWS) { return; }
      while (body.rows.length > MAX_LOG_ROWS) { body.deleteRow(0); }
      var earlier = $(root, "[data-role=logs-earlier]"), cursor = body.rows[0].getAttribute("data-cursor");
      if (!earlier || !cursor) { return; }
      var raw = window.atob(cursor.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((cursor.length + 3) % 4));
      var back = urlsafe(window.btoa("p" + raw.slice(1)));  // the same row, read backward: the lines before it
      var query = root.getAttribute("data-log-query");
      earlier.setAttribute("href", "?" + (query ? query + "&" : "") + "log_cursor=" + back + "#logs");
      earlier.hidden = false;
    }

    function onLog(line) {
      if (!liveLogs || line.level < level) { return; }
      var row = document.createElement("tr");
      var levelName = LEVELS[line.level] || "Level " + line.level;
      row.setAttribute("data-id", line.id);
      row.setAttribute("data-cursor", urlsafe(window.btoa("n|" + line.timestamp + "|" + line.id)));
      row.className = "log-" + levelName;
      var time = document.createElement("time");
      time.setAttribute("datetime", line.timestamp);
      time.textContent = shownTime(line.timestamp, true);
      var timeCell = cell("", "ui-nowrap");
      timeCell.appendChild(time);
      row.appendChild(timeCell);
      row.appendChild(cell(levelName));
      row.appendChild(cell(line.task_run ? (line.task_run_name || "") : "flow"));
      row.appendChild(cell(line.message, "ui-log-message"));
      appendLogRows([row]);
    }

    function catchUpLogs() {
      if (!liveLogs) { return; }
      var rows = logsBody().rows, last = rows.length ? rows[rows.length - 1].getAttribute("data-cursor") : "";
      var query = "log_level=" + level + (last ? "&after=" + encodeURIComponent(last) : "");
      fetchText(url("logs", query)).then(function (html) { appendLogRows(rowsFrom(html)); }).catch(function () {});
    }

    window.OrchestratorLive.connect(root.getAttribute("data-live-path"), {
      handlers: { flow_run: onFlowRun, task_run: onTaskRun, log: onLog },
      onOpen: function () {
        reloadSummary();
        reloadWaiting();
        reload("task-runs", taskCursor ? "task_cursor=" + encodeURIComponent(taskCursor) : "");
        reload("graph");
        catchUpLogs();
      },
      onStatus: statusSetter(root)
    });
  }

  function start() {
    if (!window.OrchestratorLive) { return; }
    var list = document.getElementById("flow-runs-live");
    if (list) { runsList(list); }
    var run = document.getElementById("flow-run-live");
    if (run) { runPage(run); }
  }

  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
})();
