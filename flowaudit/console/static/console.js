/* flowaudit DJ console, version 1: plain JavaScript, no framework, no build step, no CDN.
 *
 * Reads /v1/events/{id}/state, /privacy, /controls and /v1/catalogue once, then follows the
 * one multiplexed stream /v1/events/{id}/stream. The stream is read with fetch() rather than
 * EventSource because EventSource cannot send the Authorization header; the parser below
 * follows the text/event-stream format (event, data, id fields; a blank line ends an event)
 * and resumes with Last-Event-ID after a dropped connection.
 *
 * The API key is asked for once and kept in sessionStorage (this tab only). Everything the
 * page shows is also exposed as data-* attributes, so tests read values, not pixels.
 * No inline handlers, no eval, no inline styles: the page runs under a strict CSP.
 */
(function () {
  "use strict";

  const KEY_NAME = "flowaudit.console.key";
  const MAX_POINTS = 80;
  const SVG_NS = "http://www.w3.org/2000/svg";
  const body = document.body;
  const EVENT_ID = body.dataset.eventId;
  const base = "/v1/events/" + encodeURIComponent(EVENT_ID);
  const $ = (id) => document.getElementById(id);

  const model = {
    points: [],          // {window, at, sentiment, zones}, sorted by window
    flows: [],           // adaptive_flow triggers: {at, sentiment, threshold, track_id}
    zoneOrder: [],       // zone names in first-seen order (stable colours)
    threshold: 40,
    catalogue: [],
    tracks: new Map(),   // id -> track
    controls: new Map(), // id -> control
    stored: [],          // privacy "stored" rows, each with a monotonic deadline
    cursor: null,        // last SSE id seen
    abort: null,
  };

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  // -- the key ---------------------------------------------------------------------------------
  function key() { return sessionStorage.getItem(KEY_NAME); }

  function askForKey(message) {
    if (model.abort) { model.abort.abort(); model.abort = null; }
    sessionStorage.removeItem(KEY_NAME);
    $("console").hidden = true;
    $("forget-key").hidden = true;
    $("key-panel").hidden = false;
    $("key-error").textContent = message || "";
    setStatus("idle", "not connected");
    $("key-input").focus();
  }

  $("forget-key").addEventListener("click", () => askForKey("Key forgotten in this tab."));

  // Enter in the track filter must not submit (and reload) the page
  $("control-form").addEventListener("submit", (ev) => ev.preventDefault());

  $("key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const value = $("key-input").value.trim();
    if (!value) return;
    sessionStorage.setItem(KEY_NAME, value);
    $("key-input").value = "";
    start();
  });

  // -- the API ---------------------------------------------------------------------------------
  async function api(path, options) {
    const init = Object.assign({ headers: {} }, options || {});
    init.headers = Object.assign({ Authorization: "Bearer " + key(), Accept: "application/json" },
      init.headers);
    let response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      throw new ApiError(0, "network", "the console server did not answer; check it is running");
    }
    let data = null;
    try { data = await response.json(); } catch (err) { data = null; }
    if (!response.ok) {
      const e = (data && data.error) || {};
      throw new ApiError(response.status, e.code || "http_" + response.status,
        e.message || "request failed with HTTP " + response.status);
    }
    return data;
  }

  function post(path, payload) {
    return api(path, { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(payload) });
  }

  function authFailed(err) {
    if (err.status === 401) {
      askForKey("Key refused: " + err.message);
      return true;
    }
    return false;
  }

  // -- start -----------------------------------------------------------------------------------
  async function start() {
    $("key-panel").hidden = true;
    $("console").hidden = false;
    $("forget-key").hidden = false;
    setStatus("connecting", "connecting…");
    try {
      const [state, catalogue, privacy, controls] = await Promise.all([
        api(base + "/state"), api("/v1/catalogue"), api(base + "/privacy"),
        api(base + "/controls"),
      ]);
      showEvent(state.event || {});
      if (state.crowd) addPoint(state.crowd);
      if (state.decision) showDecision(state.decision);
      fillCatalogue(catalogue.tracks || []);
      showPrivacy(privacy);
      (controls.controls || state.controls || []).forEach(upsertControl);
    } catch (err) {
      if (!authFailed(err)) setStatus("error", err.message);
      if (err.status !== 0) return;
    }
    follow();
  }

  function showEvent(event) {
    if (event.name) { $("event-name").textContent = event.name; document.title = event.name + " · flowaudit console"; }
    if (event.policy) $("event-policy").textContent = event.policy;
    if (event.artist_control) {
      const mode = $("event-artist-control");
      mode.textContent = event.artist_control;
      mode.dataset.mode = event.artist_control;
    }
    const t = event.adaptive_flow_threshold;
    if (typeof t === "number") setThreshold(t);
  }

  function clockTime(date) {
    return date.toLocaleTimeString([], { hourCycle: "h23" });
  }

  function setStatus(state, text) {
    const el = $("stream-status");
    el.dataset.state = state;
    el.textContent = text;
  }

  // -- the stream ------------------------------------------------------------------------------
  async function follow() {
    let delay = 500;
    while (key()) {
      const controller = new AbortController();
      model.abort = controller;
      const headers = { Authorization: "Bearer " + key(), Accept: "text/event-stream" };
      if (model.cursor !== null) headers["Last-Event-ID"] = model.cursor;
      try {
        const response = await fetch(base + "/stream", { headers, cache: "no-store",
          signal: controller.signal });
        if (response.status === 401) {
          let message = "the key was refused";
          try { message = (await response.json()).error.message; } catch (err) { /* keep */ }
          askForKey("Key refused: " + message);
          return;
        }
        if (!response.ok || !response.body) throw new Error("HTTP " + response.status);
        setStatus("live", "live");
        delay = 500;
        await readEvents(response.body, dispatch);
      } catch (err) {
        if (controller.signal.aborted) return;
      }
      if (!key()) return;
      setStatus("retrying", "reconnecting…");
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 8000);
    }
  }

  /** Parse text/event-stream from a byte stream; call onEvent(type, data, id) per event. */
  async function readEvents(stream, onEvent) {
    const reader = stream.getReader();
    const decoder = new TextDecoder("utf-8");
    let buffer = "";
    let type = "", data = [], id = null;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.search(/\r\n|\r|\n/)) >= 0) {
        const line = buffer.slice(0, cut);
        buffer = buffer.slice(cut + (buffer.startsWith("\r\n", cut) ? 2 : 1));
        if (line === "") {
          if (data.length) onEvent(type || "message", data.join("\n"), id);
          type = ""; data = []; id = null;
          continue;
        }
        if (line.startsWith(":")) continue; // comment / keep-alive
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let text = colon < 0 ? "" : line.slice(colon + 1);
        if (text.startsWith(" ")) text = text.slice(1);
        if (field === "event") type = text;
        else if (field === "data") data.push(text);
        else if (field === "id" && !text.includes("\0")) id = text;
      }
    }
  }

  function dispatch(type, raw, id) {
    if (id !== null) model.cursor = id;
    let data;
    try { data = JSON.parse(raw); } catch (err) { return; }
    if (type === "sentiment") addPoint(data);
    else if (type === "decision") showDecision(data);
    else if (type === "adaptive_flow") addFlow(data);
    else if (type === "privacy") showPrivacy(data);
    else if (type === "control") upsertControl(data);
    setStatus("live", "live · " + clockTime(new Date()));
  }

  // -- the chart -------------------------------------------------------------------------------
  function addPoint(p) {
    if (typeof p.window !== "number") return;
    const i = model.points.findIndex((q) => q.window >= p.window);
    if (i >= 0 && model.points[i].window === p.window) model.points[i] = p;
    else if (i >= 0) model.points.splice(i, 0, p);
    else model.points.push(p);
    while (model.points.length > MAX_POINTS) model.points.shift();
    Object.keys(p.zones || {}).forEach((z) => {
      if (!model.zoneOrder.includes(z)) model.zoneOrder.push(z);
    });
    const last = model.points[model.points.length - 1];
    const now = $("crowd-now");
    now.textContent = last.sentiment == null ? "–" : last.sentiment.toFixed(0);
    now.dataset.value = last.sentiment == null ? "" : String(last.sentiment);
    $("crowd-window").textContent = "window " + last.window +
      (last.wristbands != null ? " · " + last.wristbands + " wristbands" : "");
    drawLegend(last);
    drawChart();
  }

  function addFlow(f) {
    model.flows.push(f);
    if (typeof f.threshold === "number") setThreshold(f.threshold);
    drawChart();
  }

  function setThreshold(t) {
    model.threshold = t;
    drawChart();
  }

  function el(name, attrs, text) {
    const node = document.createElementNS(SVG_NS, name);
    Object.entries(attrs || {}).forEach(([k, v]) => node.setAttribute(k, String(v)));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function drawChart() {
    const svg = $("chart");
    const w = Math.max(svg.clientWidth, 200), h = Math.max(svg.clientHeight, 120);
    svg.setAttribute("viewBox", "0 0 " + w + " " + h);
    svg.replaceChildren();
    const left = 34, right = 12, top = 10, bottom = 10;
    const pts = model.points;
    const lastWindow = pts.length ? pts[pts.length - 1].window : MAX_POINTS - 1;
    const firstWindow = lastWindow - (MAX_POINTS - 1);
    const x = (k) => left + ((k - firstWindow) / (MAX_POINTS - 1)) * (w - left - right);
    const y = (v) => top + (1 - Math.max(0, Math.min(100, v)) / 100) * (h - top - bottom);
    [0, 25, 50, 75, 100].forEach((v) => {
      svg.append(el("line", { class: "grid-line", x1: left, x2: w - right, y1: y(v), y2: y(v) }));
      svg.append(el("text", { class: "axis", x: 4, y: y(v) + 4 }, String(v)));
    });
    const ty = y(model.threshold);
    svg.append(el("line", { class: "threshold", x1: left, x2: w - right, y1: ty, y2: ty }));
    svg.append(el("text", { class: "threshold-label", x: left + 6, y: ty - 6 },
      "Adaptive Flow < " + model.threshold));
    const line = (values, cls) => {
      let d = "", pen = false;
      pts.forEach((p) => {
        const v = values(p);
        if (v == null) { pen = false; return; }
        d += (pen ? "L" : "M") + x(p.window).toFixed(1) + " " + y(v).toFixed(1);
        pen = true;
      });
      if (d) svg.append(el("path", { class: cls, d }));
    };
    model.zoneOrder.forEach((z, i) => {
      line((p) => (p.zones && typeof p.zones[z] === "number" ? p.zones[z] : null), "zone z" + (i % 6));
    });
    line((p) => p.sentiment, "crowd");
    model.flows.forEach((f) => {
      const at = Date.parse(f.at);
      let p = null;
      pts.forEach((q) => { if (Date.parse(q.at) <= at) p = q; });
      if (!p) return;
      const cx = x(p.window), cy = y(f.sentiment != null ? f.sentiment : model.threshold) + 14;
      svg.append(el("path", { class: "flow", d: "M" + cx + " " + (cy - 8) + "L" + (cx + 7) + " " +
        (cy + 5) + "L" + (cx - 7) + " " + (cy + 5) + "Z" }));
    });
    const plotted = pts.filter((p) => p.sentiment != null);
    if (plotted.length) {
      const p = plotted[plotted.length - 1];
      svg.append(el("circle", { class: "latest", cx: x(p.window), cy: y(p.sentiment), r: 5 }));
    }
    svg.dataset.points = String(plotted.length);
    svg.dataset.latest = plotted.length ? String(plotted[plotted.length - 1].sentiment) : "";
    svg.dataset.threshold = String(model.threshold);
    svg.dataset.window = plotted.length ? String(plotted[plotted.length - 1].window) : "";
    svg.dataset.flows = String(model.flows.length);
  }

  function drawLegend(last) {
    const list = $("zones");
    const items = [li("Crowd", "crowd", last.sentiment)];
    model.zoneOrder.forEach((z, i) => items.push(li(z, "z" + (i % 6), (last.zones || {})[z])));
    list.replaceChildren(...items);
    function li(name, cls, value) {
      const item = document.createElement("li");
      const sw = document.createElement("span");
      sw.className = "swatch " + cls;
      sw.setAttribute("aria-hidden", "true");
      item.append(sw, name + " " + (typeof value === "number" ? value.toFixed(0) : "–"));
      item.dataset.zone = name;
      return item;
    }
  }

  let resizeTimer = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(drawChart, 100);
  });

  // -- the suggestion --------------------------------------------------------------------------
  function showDecision(d) {
    const track = model.tracks.get(d.track_id) || {};
    const title = d.title || track.title || d.track_id;
    const artist = d.artist || track.artist || "";
    const live = $("suggestion-live");
    live.dataset.decisionId = String(d.id);
    live.dataset.trackId = d.track_id;
    $("next-title").textContent = title;
    $("next-artist").textContent = artist ? "— " + artist + " (" + d.track_id + ")" : d.track_id;
    $("next-adaptive").hidden = !d.adaptive_flow;
    $("next-override").hidden = !d.artist_override;
    $("next-at").textContent = d.at ? "decided " + clockTime(new Date(d.at)) : "";
    $("next-why").textContent = d.explanation || "";
    const params = d.parameters || {};
    if (typeof params.adaptive_flow_threshold === "number") setThreshold(params.adaptive_flow_threshold);
    const dl = $("next-params");
    dl.replaceChildren();
    Object.entries(params).forEach(([name, value]) => {
      const dt = document.createElement("dt");
      const dd = document.createElement("dd");
      dt.textContent = name;
      dd.textContent = compact(value);
      dl.append(dt, dd);
    });
  }

  function compact(value) {
    if (value === null || typeof value !== "object") return String(value);
    if (Array.isArray(value)) return value.map(compact).join(", ");
    return Object.entries(value).map(([k, v]) =>
      k + " " + (v !== null && typeof v === "object" ? "{" + compact(v) + "}" : String(v))).join(", ");
  }

  // -- controls --------------------------------------------------------------------------------
  function fillCatalogue(tracks) {
    model.catalogue = tracks;
    tracks.forEach((t) => model.tracks.set(t.id, t));
    renderPicker("");
  }

  function renderPicker(filter) {
    const pick = $("track-pick");
    const chosen = pick.value;
    const f = filter.trim().toLowerCase();
    const options = model.catalogue
      .filter((t) => !f || (t.id + " " + t.title + " " + t.artist).toLowerCase().includes(f))
      .map((t) => {
        const o = document.createElement("option");
        o.value = t.id;
        o.textContent = t.title + " — " + t.artist + " · " + t.id + " · energy " +
          Number(t.energy).toFixed(2) + " · " + Math.round(t.bpm) + " bpm" +
          (t.recovery ? " · recovery" : "");
        if (t.id === chosen) o.selected = true;
        return o;
      });
    pick.replaceChildren(...options);
  }

  $("track-filter").addEventListener("input", (ev) => renderPicker(ev.target.value));

  document.querySelectorAll("#control-form button[data-kind]").forEach((button) => {
    button.addEventListener("click", () => sendControl(button.dataset.kind));
  });

  async function sendControl(kind) {
    const result = $("control-result");
    const trackId = $("track-pick").value;
    if (!trackId) {
      result.dataset.status = "error";
      result.textContent = "Choose a track first.";
      return;
    }
    const track = model.tracks.get(trackId) || { title: trackId, artist: "" };
    const path = kind === "veto-artist" ? "veto" : kind;
    const payload = kind === "veto-artist" ? { artist: track.artist } : { track_id: trackId };
    const what = kind === "veto-artist" ? "every track by " + track.artist :
      "'" + track.title + "' (" + trackId + ")";
    result.dataset.status = "pending";
    result.textContent = "Sending " + label(kind) + " of " + what + "…";
    try {
      const control = await post(base + "/controls/" + path, payload);
      upsertControl(control);
      result.dataset.status = control.status || "accepted";
      result.dataset.controlId = String(control.id);
      result.textContent = label(kind) + " " + (control.status || "accepted") + ": " + what +
        (kind === "override" ? " plays at the next decision." : ".");
    } catch (err) {
      if (authFailed(err)) return;
      result.dataset.status = err.status === 403 && err.code.startsWith("artist_control") ?
        "refused" : "error";
      result.dataset.code = err.code;
      result.textContent = (result.dataset.status === "refused" ? "Refused: " : "Failed: ") +
        err.message;
    }
  }

  function label(kind) {
    return { override: "Override", pin: "Pin", veto: "Veto", "veto-artist": "Artist veto" }[kind] || kind;
  }

  function upsertControl(c) {
    if (!c || c.id === undefined) return;
    const known = model.controls.get(String(c.id)) || {};
    // applied is final: a late copy of the stored control (accepted) must not undo it
    const merged = known.status === "applied" && c.status !== "applied" ?
      Object.assign({}, c, { status: "applied", applied_at: known.applied_at }) : c;
    model.controls.set(String(c.id), Object.assign(known, merged));
    const items = [...model.controls.values()].sort((a, b) => String(b.at).localeCompare(String(a.at)))
      .map((k) => {
        const item = document.createElement("li");
        const track = model.tracks.get(k.track_id);
        const target = k.artist ? "artist " + k.artist :
          (track ? track.title + " (" + k.track_id + ")" : k.track_id);
        item.dataset.status = k.status || "";
        item.dataset.controlId = String(k.id);
        item.textContent = k.kind + " " + target + " — " + (k.status || "") +
          (k.by ? " by " + k.by : "") + (k.reason ? ": " + k.reason : "");
        return item;
      });
    $("control-log").replaceChildren(...items);
  }

  // -- privacy ---------------------------------------------------------------------------------
  function showPrivacy(p) {
    if (!p) return;
    const wb = p.wristbands || {};
    $("wb-consenting").textContent = num(wb.consenting);
    $("wb-streaming").textContent = num(wb.streaming);
    $("wb-registered").textContent = num(wb.registered);
    const drops = Object.entries(p.drops || {}).filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]);
    const items = drops.map(([reason, n]) => {
      const item = document.createElement("li");
      const strong = document.createElement("span");
      strong.className = "n";
      strong.textContent = String(n);
      item.dataset.reason = reason;
      item.append(reason.replace(/_/g, " ") + " ", strong);
      return item;
    });
    if (!items.length) {
      const none = document.createElement("li");
      none.textContent = "none";
      items.push(none);
    }
    $("drops").replaceChildren(...items);
    const t0 = performance.now();
    model.stored = (p.stored || []).map((s) => Object.assign({}, s, {
      deadline: typeof s.expires_in_seconds === "number" ? t0 + s.expires_in_seconds * 1000 : null,
    }));
    const rows = model.stored.map((s) => {
      const tr = document.createElement("tr");
      tr.dataset.category = s.category;
      tr.dataset.retention = s.retention;
      const what = document.createElement("th");
      what.scope = "row";
      const count = document.createElement("span");
      count.className = "records";
      count.textContent = num(s.records);
      what.append(s.category.replace(/_/g, " ") + " ", count);
      const kept = document.createElement("td");
      kept.className = "kept";
      kept.textContent = s.retention;
      const left = document.createElement("td");
      left.className = "countdown";
      tr.append(what, kept, left);
      return tr;
    });
    $("stored").tBodies[0].replaceChildren(...rows);
    tick();
  }

  function num(n) { return typeof n === "number" ? n.toLocaleString() : "–"; }

  function tick() {
    const now = performance.now();
    const rows = $("stored").tBodies[0].rows;
    model.stored.forEach((s, i) => {
      const cell = rows[i] && rows[i].cells[2];
      if (!cell) return;
      if (s.deadline === null) {
        cell.textContent = s.retention === "indefinite" ? "never" : "–";
        cell.dataset.seconds = "";
        return;
      }
      const left = Math.max(0, Math.round((s.deadline - now) / 1000));
      cell.dataset.seconds = String(left);
      cell.textContent = left === 0 ? "due now" : duration(left);
    });
  }

  /** "2d 23:59:58", "23:59:58", "4:05": days, then a clock. */
  function duration(s) {
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60), sec = s % 60;
    const two = (n) => String(n).padStart(2, "0");
    const clock = (h || d ? (d ? two(h) : String(h)) + ":" + two(m) : String(m)) + ":" + two(sec);
    return d ? d + "d " + clock : clock;
  }

  setInterval(tick, 1000);

  // -- go --------------------------------------------------------------------------------------
  if (key()) start();
  else askForKey("");
})();
