// stagger dashboard: refresh the live part, and the admin controls. No build step.
// The admin token is asked for once, kept in sessionStorage (gone when the tab closes) and
// sent as `Authorization: Bearer` to the admin API; every act asks for confirmation and is
// recorded in history as `operator:NAME`.
(function () {
  "use strict";
  var TOKEN = "stagger.token", NAME = "stagger.name";
  var live = document.getElementById("live");
  var form = document.getElementById("filters");
  var message = document.getElementById("message");
  var bar = document.getElementById("adminbar");
  var who = document.getElementById("admin-who");
  var enter = document.getElementById("admin-enter");
  var leave = document.getElementById("admin-leave");
  var seconds = parseInt(live.getAttribute("data-refresh"), 10) || 5;
  var busy = false, again = false, againFresh = false;

  function token() { return sessionStorage.getItem(TOKEN); }
  function name() { return sessionStorage.getItem(NAME) || ""; }
  function auth() { var t = token(); return t ? { "Authorization": "Bearer " + t } : {}; }
  function say(text, bad) { message.textContent = text; message.className = bad ? "message error" : "message"; }

  function query() {
    var params = new URLSearchParams();
    new FormData(form).forEach(function (value, key) { if (value) { params.set(key, value); } });
    return params.toString();
  }

  function showAdminBar() {
    bar.hidden = false;
    var on = !!token();
    enter.hidden = on;
    leave.hidden = !on;
    var fragment = live.querySelector(".live");
    var refused = fragment && fragment.getAttribute("data-refused");
    if (on && refused) {
      who.textContent = "token refused: " + refused;
    } else {
      who.textContent = on ? "admin mode as operator:" + name() : "";
    }
  }

  // The live part in view carries its ETag: a refresh sends it back and a 304 (nothing
  // changed) keeps what is shown. Its "ago" times tick here, from the server's `now` at
  // rendering plus the time since it arrived, so a kept part stays true to the second.
  var received = performance.now();

  function current() { return live.querySelector(".live"); }

  function span(seconds) {
    var sign = seconds < 0 ? "-" : "", s = Math.floor(Math.abs(seconds)), parts = [];
    [["d", 86400], ["h", 3600], ["m", 60], ["s", 1]].forEach(function (u) {
      if (s >= u[1] || (u[0] === "s" && !parts.length)) { parts.push(Math.floor(s / u[1]) + u[0]); s %= u[1]; }
    });
    return sign + parts.slice(0, 2).join("");
  }

  function tick() {
    var fragment = current();
    var base = fragment && Date.parse(fragment.getAttribute("data-now"));
    if (!base) { return; }
    var now = base + (performance.now() - received);
    live.querySelectorAll(".ago").forEach(function (el) {
      var t = el.getAttribute("data-t"), u = el.getAttribute("data-until");
      var ms = t ? now - Date.parse(t) : Date.parse(u) - now;
      if (!isNaN(ms)) { el.textContent = span(ms / 1000); }
    });
  }

  // `fresh`: right after an act, so the server reads the store now even when it keeps a big
  // fleet's board for a few seconds (docs/dashboard.md, "What a refresh costs").
  function refresh(fresh) {
    if (busy) {  // once this one is back
      again = true;
      againFresh = againFresh || fresh === true;
      return Promise.resolve();
    }
    busy = true;
    var q = query();
    var headers = auth();
    if (fresh === true) { headers["Cache-Control"] = "no-cache"; }
    var fragment = current();
    var etag = fragment && fragment.getAttribute("data-etag");
    if (etag) { headers["If-None-Match"] = etag; }
    return fetch("dashboard/live" + (q ? "?" + q : ""), { headers: headers, cache: "no-store" })
      .then(function (r) {
        if (r.status === 304) { return null; }
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r.text();
      })
      .then(function (html) {
        if (html !== null) {
          live.innerHTML = html;
          received = performance.now();
          showAdminBar();
        }
        tick();
        if (message.className === "message error" && message.dataset.stale) { say(""); }
      })
      .catch(function (err) {
        say("could not refresh (" + err.message + "); showing what was last read", true);
        message.dataset.stale = "1";
      })
      .finally(function () {
        busy = false;
        if (again) {
          var f = againFresh;
          again = againFresh = false;
          refresh(f);
        }
      });
  }

  // Links to another page, filter or order (they work without JavaScript too): set the form
  // from the link and fetch only the live part.
  function follow(link) {
    var params = new URL(link.href, location.href).searchParams;
    ["group", "state", "q", "sort", "page"].forEach(function (key) {
      var field = form.elements[key];
      if (!field) { return; }
      var value = params.get(key) || "";
      if (field.tagName === "SELECT" && value && !field.querySelector("option[value='" + CSS.escape(value) + "']")) {
        var option = document.createElement("option");
        option.value = option.textContent = value;
        field.appendChild(option);
      }
      field.value = value;
    });
    navigate();
  }

  function navigate() {
    var q = query();
    history.replaceState(null, "", q ? "?" + q : location.pathname);
    return refresh();
  }

  function api(method, path, body) {
    var headers = auth();
    if (body !== undefined) { headers["Content-Type"] = "application/json"; }
    return fetch(path, {
      method: method, headers: headers,
      body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (doc) {
        if (!r.ok) { throw new Error(doc.value || ("HTTP " + r.status)); }
        return doc;
      });
    });
  }

  function by() { return "operator:" + name(); }

  var actions = {
    "pause": function (b) {
      var g = b.getAttribute("data-group");
      var reason = window.prompt("Pause reboots in group " + g + ". Reason (shown to everyone):");
      if (!reason || !reason.trim()) { return null; }
      if (!window.confirm("Pause group " + g + " as " + by() + "?\nReason: " + reason)) { return null; }
      return api("POST", "v1/groups/" + encodeURIComponent(g) + "/pause", { reason: reason, by: by() })
        .then(function () { return "paused group " + g; });
    },
    "resume": function (b) {
      var g = b.getAttribute("data-group");
      if (!window.confirm("Resume reboots in group " + g + " as " + by() + "?")) { return null; }
      return api("POST", "v1/groups/" + encodeURIComponent(g) + "/resume", { by: by() })
        .then(function () { return "resumed group " + g; });
    },
    "pause-all": function () {
      var reason = window.prompt("Pause reboots in EVERY group. Reason (shown to everyone):");
      if (!reason || !reason.trim()) { return null; }
      if (!window.confirm("Pause every group as " + by() + "?\nReason: " + reason)) { return null; }
      return api("POST", "v1/pause", { reason: reason, by: by() })
        .then(function () { return "paused every group"; });
    },
    "resume-all": function () {
      if (!window.confirm("Lift the fleet-wide pause as " + by() + "?")) { return null; }
      return api("POST", "v1/resume", { by: by() }).then(function () { return "resumed every group"; });
    },
    "pause-node": function (b) {
      var id = b.getAttribute("data-id");
      var reason = window.prompt("Pause reboots of node " + id + " (its slot, if any, stays). Reason:");
      if (!reason || !reason.trim()) { return null; }
      if (!window.confirm("Pause node " + id + " as " + by() + "?\nReason: " + reason)) { return null; }
      return api("POST", "v1/nodes/" + encodeURIComponent(id) + "/pause", { reason: reason, by: by() })
        .then(function () { return "paused node " + id; });
    },
    "resume-node": function (b) {
      var id = b.getAttribute("data-id");
      if (!window.confirm("Resume reboots of node " + id + " as " + by() + "?")) { return null; }
      return api("POST", "v1/nodes/" + encodeURIComponent(id) + "/resume", { by: by() })
        .then(function () { return "resumed node " + id; });
    },
    "reboot-now": function (b) {
      var id = b.getAttribute("data-id");
      var reason = window.prompt("Emergency reboot of " + id + ": it skips its window (not a " +
                                 "blackout, never a pause) and still takes a slot. Reason:");
      if (!reason || !reason.trim()) { return null; }
      if (!window.confirm("Ask " + id + " to reboot now as " + by() + "?\nReason: " + reason)) { return null; }
      return api("POST", "v1/nodes/" + encodeURIComponent(id) + "/reboot", { reason: reason, by: by() })
        .then(function () { return "asked " + id + " for an emergency reboot"; });
    },
    "cancel-reboot": function (b) {
      var id = b.getAttribute("data-id");
      if (!window.confirm("Take back the emergency reboot asked for " + id + "?")) { return null; }
      return api("DELETE", "v1/nodes/" + encodeURIComponent(id) + "/reboot")
        .then(function () { return "took back the emergency reboot of " + id; });
    },
    "set-max": function (b) {
      var g = b.getAttribute("data-group");
      var text = window.prompt("New max (slots) for group " + g + ":", b.getAttribute("data-max"));
      if (text === null) { return null; }
      var n = Number(text);
      if (!/^\d+$/.test(text.trim())) { say("max must be a whole number, like 2", true); return null; }
      if (!window.confirm("Set max of group " + g + " to " + n + " as " + by() + "?")) { return null; }
      return api("PUT", "v1/groups/" + encodeURIComponent(g) + "/max", { max: n, by: by() })
        .then(function (doc) { return "group " + g + ": max " + doc.max; });
    },
    "release": function (b) {
      var g = b.getAttribute("data-group"), id = b.getAttribute("data-id");
      if (!window.confirm("Release " + id + "'s slot in group " + g + " as " + by() + "?\n" +
                          "Only do this when the node is known to be back, or gone.")) { return null; }
      return api("DELETE", "v1/groups/" + encodeURIComponent(g) + "/holds/" +
                 encodeURIComponent(id) + "?by=" + encodeURIComponent(by()))
        .then(function (doc) {
          return doc.released ? "released " + id + "'s slot in group " + g
                              : id + " held no slot in group " + g + ": nothing changed";
        });
    }
  };

  live.addEventListener("click", function (ev) {
    var link = ev.target.closest("a[data-page-link]");
    if (link && !ev.ctrlKey && !ev.metaKey && !ev.shiftKey && ev.button === 0) {
      ev.preventDefault();
      follow(link);
      return;
    }
    var b = ev.target.closest("button[data-action]");
    if (!b || !actions[b.getAttribute("data-action")]) { return; }
    var done = actions[b.getAttribute("data-action")](b);
    if (!done) { return; }
    done.then(function (text) { say(text); return refresh(true); })
        .catch(function (err) { say("refused: " + err.message, true); });
  });

  enter.addEventListener("click", function () {
    var t = window.prompt("Admin token (kept in this tab only):");
    if (!t) { return; }
    var n = window.prompt("Your name, recorded in history as operator:NAME:", name());
    if (!n || !n.trim()) { return; }
    sessionStorage.setItem(TOKEN, t.trim());
    sessionStorage.setItem(NAME, n.trim());
    refresh();
  });

  leave.addEventListener("click", function () {
    sessionStorage.removeItem(TOKEN);
    refresh();
  });

  form.addEventListener("change", function () {
    form.elements.page.value = "";  // a new filter starts at its first page
    navigate();
  });
  form.addEventListener("submit", function (ev) { ev.preventDefault(); form.dispatchEvent(new Event("change")); });

  showAdminBar();
  if (token()) { refresh(); }
  setInterval(function () { refresh(false); }, seconds * 1000);
  setInterval(tick, 1000);
})();
