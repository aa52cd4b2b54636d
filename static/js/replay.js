// bctrl replay player: rrweb's Replayer driven chunk by chunk.
//
// Chunked mode (a processed recording): the manifest gives each target's index
// (recordings/rrweb.py, ChunkIndex: chunks, markers, inactivity, pages; read by the
// "Recording format" functions below); nothing else is fetched up front. The page keeps its own clock (time T in rrweb epoch ms) across the
// whole target; one Replayer renders the chunk whose start <= T (binary search), built
// from that chunk alone: every chunk begins with Meta + FullSnapshot. A chunk is one
// Range request of the chunk file (or, for the first chunk on the replay page, the
// page's preload of it), inflated with DecompressionStream. As T nears the
// next chunk (PREFETCH_LEAD_MS of wall time) that chunk is prefetched; when T reaches
// it the Replayer is swapped. Seeking anywhere loads the chunk that starts before the
// target time and plays from the offset inside it. At most MAX_CHUNKS_HELD decoded
// chunks are kept (least recently used go first), so memory follows chunk size, not
// recording length. Skip inactivity jumps over the index's inactivity periods and
// gaps between chunks.
//
// Live mode (the recording has only batches): the live endpoint is polled every
// second for batches after the last seq; events since the latest Meta feed a
// live-mode Replayer (startLive + addEvent). When processing has made the recording
// ready, the page reloads its manifest into chunked mode.
//
// Embeds (templates/embed/replay.html, data-post-playhead): the playhead is posted to
// the parent window as {type: "bctrl.replay.time", timeMs (from the tab's start),
// playing, target (the tab's id), epochMs} about four times a second while playing and
// at once on seek, pause, end and tab change. Target origin "*": the message carries the
// playhead only, never a URL, token or recorded content (see viewers/embeds.py).
//
// Inspector (the panel beside the player): tabs Activity, Network, Console and Commands
// whose rows seek the replay and follow the playhead; see its section below. The run's
// tabs are named by the page at the playhead (the index's pages).
//
// Video (a target with `video` in the manifest: its MP4, recordings.video): the View
// toggle shows the video in place of the DOM replay. The page's clock stays the one
// clock: the Replayer keeps going underneath, so the inspector and the markers follow as
// before, and the <video> follows the clock (played at the same speed, its time put
// back when it drifts more than VIDEO_DRIFT_S, set on every seek and pause).
//
// Safety: the Replayer renders into rrweb's sandboxed iframe (allow-same-origin only,
// no scripts); UNSAFE_replayCanvas stays false and no plugins or style rules are given.
(function () {
  "use strict";

  // Recording format ---------------------------------------------------------------
  //
  // What the player reads of bctrl's recording format (recordings/rrweb.py): rrweb's
  // event types, and a target's chunk index as processing wrote it (ChunkIndex). Only
  // these functions read an index; they touch neither the page nor the network, so
  // tests/test_recording_contract.py runs them in Node (globalThis.bctrlRecordingFormat)
  // on an index and a chunk file that recordings/processing.py wrote.

  const EventType = Object.freeze({ FullSnapshot: 2, Meta: 4 }); // rrweb.EventType

  function chunksOf(target) {
    return (target && target.index && target.index.chunks) || [];
  }

  function markersOf(target) {
    return (target && target.index && target.index.markers) || [];
  }

  function inactivityOf(target) {
    return (target && target.index && target.index.inactivity) || [];
  }

  function pagesOf(target) {
    return (target && target.index && target.index.pages) || [];
  }

  // The position of the chunk that shows time t: the last one that starts at or before
  // it (the first one for a time before the first start).
  function chunkAt(chunks, t) {
    let lo = 0;
    let hi = chunks.length - 1;
    let found = 0;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (chunks[mid].start <= t) {
        found = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    return found;
  }

  // A chunk's bytes in the target's chunk file, first and last included (one gzip member).
  function byteRange(chunk) {
    return { first: chunk.offset, last: chunk.offset + chunk.length - 1 };
  }

  // A chunk's events from its bytes: the JSON array of its gzip member.
  async function inflate(blob) {
    const stream = blob.stream().pipeThrough(new DecompressionStream("gzip"));
    return new Response(stream).json();
  }

  globalThis.bctrlRecordingFormat = Object.freeze({
    EventType,
    chunksOf,
    markersOf,
    inactivityOf,
    pagesOf,
    chunkAt,
    byteRange,
    inflate,
  });

  const root = document.querySelector("[data-replay]");
  if (!root) return;
  // User Timing marks of the way to the first frame (read by benchmarks/recording_replay.py).
  const mark = (name) => performance.mark && performance.mark(`bctrl-replay:${name}`);
  mark("start");

  const MAX_CHUNKS_HELD = 3;
  const PREFETCH_LEAD_MS = 8000;
  const LIVE_POLL_MS = 1000;
  const MANIFEST_POLL_MS = 4000;
  const SKIP_MIN_GAP_MS = 2000;
  const LIVE_STATUSES = ["recording", "preparing", "processing"];
  const VIDEO_DRIFT_S = 0.3;

  const $ = (sel) => root.querySelector(sel);
  const els = {
    tabs: $("[data-target-tabs]"),
    liveBadge: $("[data-live-badge]"),
    stage: $("[data-stage]"),
    viewport: $("[data-viewport]"),
    video: $("[data-video]"),
    view: $("[data-view-toggle]"),
    message: $("[data-stage-message]"),
    messageText: $("[data-stage-text]"),
    bigPlay: $("[data-big-play]"),
    scrubber: $("[data-scrubber]"),
    progress: $("[data-progress]"),
    handle: $("[data-handle]"),
    markers: $("[data-markers]"),
    inactivity: $("[data-inactivity]"),
    tip: $("[data-scrub-tip]"),
    play: $("[data-play]"),
    time: $("[data-clock]"),
    skip: $("[data-skip]"),
    speed: $("[data-speed]"),
    fullscreen: $("[data-fullscreen]"),
    recordingStatus: document.querySelector("[data-recording-status]"),
  };

  const state = {
    manifest: null,
    mode: "none",
    target: null,
    skipPeriods: [],
    clock: { anchorT: 0, anchorWall: 0, playing: false, speed: 1 },
    replayer: null,
    replayerKey: null,
    replayerStart: 0,
    dims: null,
    cache: new Map(), // key -> {promise, events}
    token: 0,
    busy: false,
    liveHrefs: {}, // target id -> the URL of its latest Meta, in live mode
    decorationToken: 0,
    live: null,
    manifestTimer: null,
    dragging: false,
    lastDataUpdate: 0,
    lastPost: 0,
    view: "dom", // or "video", for the tabs that have one
  };
  const POST_EVERY_MS = 250;
  const postPlayhead = "postPlayhead" in root.dataset && window.parent && window.parent !== window;

  if (!window.rrweb || !window.rrweb.Replayer) {
    showMessage("The player could not load.", false);
    return;
  }

  // Formatting -------------------------------------------------------------------

  function clockText(ms) {
    const total = Math.max(0, Math.floor(ms / 1000));
    const h = Math.floor(total / 3600);
    const m = Math.floor((total % 3600) / 60);
    const s = String(total % 60).padStart(2, "0");
    return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
  }

  // "0:12 / 1:30"; a tab shorter than a second counts tenths ("0:00.2 / 0:00.6"), and
  // one that holds a single frame says so, never "0:00 / 0:00".
  function clockPair(elapsed, duration) {
    if (duration <= 0) return "A single frame";
    if (duration >= 1000) return `${clockText(elapsed)} / ${clockText(duration)}`;
    const tenths = (ms) => `0:00.${Math.min(9, Math.floor(Math.max(0, ms) / 100))}`;
    return `${tenths(elapsed)} / ${tenths(Math.max(100, duration))}`;
  }

  function showMessage(text, spinning) {
    els.messageText.textContent = text;
    els.message.classList.toggle("is-spinning", !!spinning);
    els.message.hidden = false;
  }

  function hideMessage() {
    els.message.hidden = true;
  }

  function setState(name) {
    root.dataset.state = name;
    const playing = name === "playing";
    els.play.classList.toggle("is-playing", playing);
    els.play.setAttribute("aria-label", playing ? "Pause" : "Play");
    els.bigPlay.hidden = !(name === "paused" || name === "ended");
  }

  // Clock ------------------------------------------------------------------------

  function now() {
    return performance.now();
  }

  function currentT() {
    const c = state.clock;
    return c.playing ? c.anchorT + (now() - c.anchorWall) * c.speed : c.anchorT;
  }

  function setClock(t, playing) {
    state.clock.anchorT = t;
    state.clock.anchorWall = now();
    state.clock.playing = playing;
  }

  function clampT(t) {
    const target = state.target;
    if (!target) return t;
    return Math.min(Math.max(t, target.start), target.end);
  }

  // Chunks -----------------------------------------------------------------------

  function chunkIndexAt(t) {
    return chunkAt(chunksOf(state.target), t);
  }

  function chunkKey(target, i) {
    return `${target.id}#${i}`;
  }

  // The page may preload a chunk (templates/replay/page.html: <link rel="preload"
  // data-replay-chunk> of `chunksUrl?chunk=<i>`, which answers that chunk alone, since a
  // preload sends no Range header): fetching the same URL takes the preloaded response.
  function takePreloadedChunk(target, i) {
    for (const link of document.querySelectorAll("link[rel=preload][data-replay-chunk]")) {
      if (link.dataset.target === target.id && link.dataset.chunk === String(i) && !link.dataset.taken) {
        link.dataset.taken = "1";
        return link.href;
      }
    }
    return null;
  }

  function chunkBytes(target, chunk, i) {
    const { first, last } = byteRange(chunk);
    const byRange = () =>
      fetch(target.chunksUrl, {
        headers: { Range: `bytes=${first}-${last}` },
        credentials: "same-origin",
      }).then((response) => {
        if (response.status !== 206 && response.status !== 200) {
          throw new Error(`chunk ${i}: HTTP ${response.status}`);
        }
        return response.blob().then((blob) =>
          response.status === 200 ? blob.slice(first, last + 1) : blob
        );
      });
    const preloaded = takePreloadedChunk(target, i);
    if (!preloaded) return byRange();
    // Anything unexpected (an error, another size than the index says): by Range instead.
    return fetch(preloaded, { credentials: "same-origin" })
      .then((response) => (response.status === 200 ? response.blob() : null))
      .then((blob) => (blob && blob.size === chunk.length ? blob : byRange()), byRange);
  }

  function fetchChunk(target, i) {
    const key = chunkKey(target, i);
    const held = state.cache.get(key);
    if (held) {
      state.cache.delete(key); // most recently used last
      state.cache.set(key, held);
      return held.promise;
    }
    const chunk = chunksOf(target)[i];
    const entry = { events: null, promise: null };
    entry.promise = chunkBytes(target, chunk, i)
      .then(inflate)
      .then((events) => {
        entry.events = events;
        if (!state.replayer) mark("first-chunk");
        return events;
      })
      .catch((error) => {
        state.cache.delete(key);
        throw error;
      });
    state.cache.set(key, entry);
    evict();
    return entry.promise;
  }

  function evict() {
    for (const key of state.cache.keys()) {
      if (state.cache.size <= MAX_CHUNKS_HELD) break;
      if (key !== state.replayerKey) state.cache.delete(key);
    }
    root.dataset.chunksHeld = String(state.cache.size);
  }

  // Replayer ---------------------------------------------------------------------

  function destroyReplayer() {
    if (state.replayer) {
      try {
        state.replayer.destroy();
      } catch (error) {
        /* already gone */
      }
    }
    state.replayer = null;
    state.replayerKey = null;
    els.viewport.textContent = "";
  }

  function mountReplayer(events, key, options) {
    destroyReplayer();
    const meta = events.find((e) => e.type === EventType.Meta);
    state.dims = meta ? { width: meta.data.width, height: meta.data.height } : null;
    const replayer = new window.rrweb.Replayer(events, {
      root: els.viewport,
      speed: state.clock.speed,
      skipInactive: false,
      showWarning: false,
      showDebug: false,
      triggerFocus: false,
      pauseAnimation: true,
      mouseTail: false,
      UNSAFE_replayCanvas: false,
      liveMode: !!(options && options.live),
    });
    replayer.on("resize", (dims) => {
      state.dims = { width: dims.width, height: dims.height };
      fit();
    });
    state.replayer = replayer;
    state.replayerKey = key;
    state.replayerStart = events.length ? events[0].timestamp : 0;
    fit();
    mark("mounted");
    return replayer;
  }

  function fit() {
    const wrapper = els.viewport.querySelector(".replayer-wrapper");
    if (!wrapper || !state.dims || !state.dims.width) return;
    const box = els.stage.getBoundingClientRect();
    const scale = Math.min(box.width / state.dims.width, box.height / state.dims.height);
    const x = (box.width - state.dims.width * scale) / 2;
    const y = (box.height - state.dims.height * scale) / 2;
    wrapper.style.transform = `translate(${x}px, ${y}px) scale(${scale})`;
  }

  // Seek / play: shows time t, loading the chunk that contains it when needed.
  async function seek(t, play) {
    const target = state.target;
    if (!target || state.mode !== "chunks" || !target.playable) return;
    t = clampT(t);
    const token = ++state.token;
    const i = chunkIndexAt(t);
    const key = chunkKey(target, i);
    setClock(t, false);
    render(t);
    let events;
    const held = state.cache.get(key);
    if (held && held.events) {
      events = held.events;
      fetchChunk(target, i); // touch
    } else {
      setState("buffering");
      showMessage("Loading…", true);
      try {
        events = await fetchChunk(target, i);
      } catch (error) {
        if (token === state.token) showMessage("This part of the recording could not be loaded.", false);
        return;
      }
      if (token !== state.token) return;
    }
    hideMessage();
    if (state.replayerKey !== key) mountReplayer(events, key);
    const offset = Math.max(0, t - state.replayerStart);
    state.replayer.setConfig({ speed: state.clock.speed });
    if (play && t < target.end) {
      state.replayer.play(offset);
      setClock(t, true);
      setState("playing");
    } else {
      state.replayer.pause(offset);
      setClock(t, false);
      setState(t >= target.end ? "ended" : "paused");
    }
    root.dataset.currentChunk = String(i);
    render(t);
    announce(t, true);
  }

  function play() {
    if (state.mode !== "chunks" || !state.target) return;
    let t = currentT();
    if (t >= state.target.end) t = state.target.start;
    seek(t, true);
  }

  function pause() {
    if (state.mode !== "chunks") return;
    const t = currentT();
    state.token++;
    setClock(t, false);
    if (state.replayer) state.replayer.pause();
    setState("paused");
    render(t);
    announce(t, true);
  }

  function togglePlay() {
    if (state.clock.playing || root.dataset.state === "buffering") pause();
    else play();
  }

  function setSpeed(speed) {
    const t = currentT();
    state.clock.speed = speed;
    setClock(t, state.clock.playing);
    if (state.replayer && state.mode === "chunks") state.replayer.setConfig({ speed });
    els.speed.querySelectorAll("button").forEach((button) => {
      const on = Number(button.dataset.speedValue) === speed;
      button.classList.toggle("active", on);
      button.setAttribute("aria-pressed", on ? "true" : "false");
    });
  }

  function skipPeriodAt(t) {
    for (const period of state.skipPeriods) {
      if (period.start <= t && t < period.end - 250) return period;
    }
    return null;
  }

  function computeSkipPeriods(target) {
    const periods = inactivityOf(target).map((p) => ({
      start: p.start,
      end: p.end,
    }));
    const chunks = chunksOf(target);
    for (let i = 0; i + 1 < chunks.length; i++) {
      if (chunks[i + 1].start - chunks[i].end > SKIP_MIN_GAP_MS) {
        periods.push({ start: chunks[i].end, end: chunks[i + 1].start });
      }
    }
    periods.sort((a, b) => a.start - b.start);
    const merged = [];
    for (const period of periods) {
      const last = merged[merged.length - 1];
      if (last && period.start <= last.end) last.end = Math.max(last.end, period.end);
      else merged.push(period);
    }
    return merged;
  }

  function tick() {
    if (state.mode === "chunks" && state.target && state.clock.playing) {
      const target = state.target;
      let t = currentT();
      if (t >= target.end) {
        t = target.end;
        setClock(t, false);
        if (state.replayer) state.replayer.pause();
        setState("ended");
        announce(t, true);
      } else {
        const skip = els.skip.checked && skipPeriodAt(t);
        const i = chunkIndexAt(t);
        if (skip) {
          seek(skip.end, true);
        } else if (chunkKey(target, i) !== state.replayerKey) {
          seek(t, true); // crossed into the next chunk: swap Replayers
        } else {
          const chunks = chunksOf(target);
          const next = chunks[i + 1];
          if (next && (next.start - t) / state.clock.speed < PREFETCH_LEAD_MS) {
            fetchChunk(target, i + 1).catch(() => {});
          }
        }
      }
      render(t);
    } else if (state.mode === "live" && state.live) {
      render(state.live.lastTimestamp || 0);
    }
    requestAnimationFrame(tick);
  }

  // Rendering of controls --------------------------------------------------------

  function fraction(t) {
    const target = state.target;
    if (!target || !(target.end > target.start)) return 0;
    return Math.min(1, Math.max(0, (t - target.start) / (target.end - target.start)));
  }

  function render(t) {
    const target = state.target;
    if (!target) return;
    const live = state.mode === "live";
    const f = live ? 1 : fraction(t);
    if (!state.dragging) {
      els.progress.style.width = `${f * 100}%`;
      els.handle.style.left = `${f * 100}%`;
    }
    const elapsed = Math.max(0, t - target.start);
    const duration = Math.max(0, target.end - target.start);
    els.time.textContent = live ? `${clockText(elapsed)} · live` : clockPair(elapsed, duration);
    els.scrubber.setAttribute("aria-valuenow", String(Math.round(elapsed / 1000)));
    els.scrubber.setAttribute("aria-valuetext", els.time.textContent);
    highlight(t);
    syncVideo(t, false);
    const wall = now();
    if (wall - state.lastDataUpdate > 200) {
      state.lastDataUpdate = wall;
      root.dataset.time = String(Math.round(t));
      refreshTabName();
    }
    if (state.clock.playing) announce(t, false);
  }

  // Tells the parent window (an embed's host page) where the playhead is.
  function announce(t, force) {
    const target = state.target;
    if (!postPlayhead || !target || state.mode !== "chunks") return;
    const wall = now();
    if (!force && wall - state.lastPost < POST_EVERY_MS) return;
    state.lastPost = wall;
    try {
      window.parent.postMessage(
        {
          type: "bctrl.replay.time",
          timeMs: Math.max(0, Math.round(t - target.start)),
          playing: !!state.clock.playing,
          target: target.id,
          epochMs: Math.round(t),
        },
        "*"
      );
    } catch (error) {
      /* a parent that went away */
    }
  }

  function renderScrubber() {
    const target = state.target;
    els.markers.textContent = "";
    els.inactivity.textContent = "";
    if (!target || state.mode !== "chunks") return;
    const span = target.end - target.start;
    els.scrubber.setAttribute("aria-valuemax", String(Math.round(span / 1000)));
    if (!(span > 0)) return;
    const pct = (t) => `${(Math.min(1, Math.max(0, (t - target.start) / span)) * 100).toFixed(3)}%`;
    // Built off-document and inserted once: one style and layout pass for all ticks.
    const bands = document.createDocumentFragment();
    for (const period of state.skipPeriods) {
      const band = document.createElement("div");
      band.className = "scrub-inactive";
      band.style.left = pct(period.start);
      band.style.width = `${(((period.end - period.start) / span) * 100).toFixed(3)}%`;
      band.title = `Inactive for ${clockText(period.end - period.start)}`;
      bands.appendChild(band);
    }
    // A person's takeover in the live view, and what an automation asked a person to do
    // (runs.activity's control.takeover and handoff items).
    for (const item of (state.manifest && state.manifest.activity) || []) {
      const drawn = item.type === "control.takeover" || item.type === "handoff";
      if (!drawn || typeof item.timeMs !== "number") continue;
      const from = Math.max(item.timeMs, target.start);
      const to = Math.min(target.end, item.timeMs + (item.durationMs || target.end - item.timeMs));
      if (!(to > from)) continue;
      const band = document.createElement("div");
      band.className = item.type === "handoff" ? "scrub-takeover scrub-handoff" : "scrub-takeover";
      band.dataset[item.type === "handoff" ? "handoff" : "takeover"] = "";
      band.style.left = pct(from);
      band.style.width = `${(((to - from) / span) * 100).toFixed(3)}%`;
      band.title = item.message;
      bands.appendChild(band);
    }
    els.inactivity.appendChild(bands);
    const ticks = document.createDocumentFragment();
    for (const marker of markersOf(target)) {
      const tick = document.createElement("div");
      tick.className = `scrub-marker kind-${kindClass(marker.kind)}`;
      tick.style.left = pct(marker.time);
      tick.title = `${clockText(marker.time - target.start)} · ${marker.label || marker.kind}`;
      ticks.appendChild(tick);
    }
    els.markers.appendChild(ticks);
  }

  function kindClass(kind) {
    return String(kind || "custom").replace(/[^a-z0-9]+/gi, "-").toLowerCase();
  }

  // Inspector --------------------------------------------------------------------
  //
  // Tabs beside the player (templates/embed/_replay_player.html, the ones the page or the
  // lease grants): Activity (the manifest's activity and the tab's recording markers),
  // Network, Console and Commands (the inspector endpoint's rows, recordings/inspector.py,
  // fetched once the first frame shows). Every tab lists its rows in time order, filters
  // them (its search box and its select), highlights the last row at or before the
  // playhead and scrolls to keep it in view (unless the person scrolled the list in the
  // last few seconds); a click on a row seeks the replay to the row's time (on the row's
  // own tab of the run when it belongs to another one) and shows its details.

  const SEVERE_MARKERS = ["console.error", "network.failed"];
  const FOLLOW_PAUSE_MS = 4000;
  const panels = new Map();
  const inspector = {
    el: root.querySelector("[data-inspector]"),
    url: "",
    data: null,
    active: null,
    selected: null,
    loading: false,
  };
  if (inspector.el) {
    inspector.url = inspector.el.dataset.inspectorUrl || "";
    inspector.detail = inspector.el.querySelector("[data-inspector-detail]");
    inspector.detailTitle = inspector.el.querySelector("[data-detail-title]");
    inspector.detailBody = inspector.el.querySelector("[data-detail-body]");
    for (const section of inspector.el.querySelectorAll("[data-inspector-panel]")) {
      const name = section.dataset.inspectorPanel;
      panels.set(name, {
        name,
        section,
        tab: inspector.el.querySelector(`[data-inspector-tab="${name}"]`),
        list: section.querySelector("[data-rows]"),
        search: section.querySelector("[data-inspector-search]"),
        filter: section.querySelector("[data-inspector-filter]"),
        count: inspector.el.querySelector(`[data-count="${name}"]`),
        empty: section.querySelector("[data-empty]"),
        items: [],
        visible: [],
        current: -1,
        userScrolledAt: 0,
      });
      if (!inspector.active) inspector.active = name;
    }
  }

  function formatBytes(bytes) {
    if (typeof bytes !== "number") return "";
    if (bytes < 1024) return `${bytes} B`;
    if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} kB`;
    return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
  }

  function formatDuration(ms) {
    if (typeof ms !== "number") return "";
    return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
  }

  // A URL as a row shows it: path and query, with the host when it is another page's.
  function shortUrl(raw, pageUrl) {
    try {
      const url = new URL(raw);
      if (url.protocol !== "http:" && url.protocol !== "https:") return raw;
      const sameHost = pageUrl && new URL(pageUrl, url).host === url.host;
      const path = `${url.pathname}${url.search}`;
      return sameHost ? path : `${url.host}${path}`;
    } catch (error) {
      return raw;
    }
  }

  function pageUrlOf(pageId) {
    const target = ((state.manifest && state.manifest.targets) || []).find((t) => t.id === pageId);
    const pages = pagesOf(target);
    return pages.length ? pages[0].url : "";
  }

  function activityItems() {
    const target = state.target;
    const items = [];
    for (const item of (state.manifest && state.manifest.activity) || []) {
      if (typeof item.timeMs !== "number") continue;
      items.push({
        time: item.timeMs,
        pageId: item.pageId || "",
        kind: item.type,
        label: item.message,
        sub: item.type,
        severity: item.severity || "info",
        source: "activity",
        record: item,
      });
    }
    for (const marker of markersOf(target)) {
      items.push({
        time: marker.time,
        pageId: target.id,
        kind: marker.kind,
        label: marker.label || marker.kind,
        sub: `${marker.kind} · recording`,
        severity: SEVERE_MARKERS.includes(marker.kind) ? "error" : "info",
        source: "marker",
        record: marker,
      });
    }
    return items;
  }

  function networkItems(rows) {
    return rows.map((row) => {
      const unanswered = state.manifest && state.manifest.run.status === "running" ? "pending" : "no answer";
      const status = row.blocked ? "blocked" : row.failed ? row.errorText || "failed" : row.status === null ? unanswered : String(row.status);
      const severity = row.failed || row.status >= 500 ? "error" : row.status >= 400 ? "warning" : "info";
      const type = (row.resourceType || "Other").toLowerCase();
      const parts = [status, type, formatBytes(row.sizeBytes), formatDuration(row.durationMs)].filter(Boolean);
      return {
        time: row.timeMs,
        pageId: row.pageId,
        kind: type,
        label: `${row.method} ${shortUrl(row.url, pageUrlOf(row.pageId))}`,
        sub: parts.join(" · "),
        severity,
        source: "network",
        record: row,
        search: `${row.method} ${row.url} ${status} ${type}`,
      };
    });
  }

  function consoleItems(rows) {
    return rows.map((row) => ({
      time: row.timeMs,
      pageId: row.pageId,
      kind: row.level,
      label: row.text.split("\n", 1)[0] || "(empty message)",
      sub: row.pageError ? "page error" : row.level,
      severity: row.level === "error" ? "error" : row.level === "warning" ? "warning" : "info",
      source: "console",
      record: row,
      search: `${row.text} ${row.stack || ""} ${row.level}`,
    }));
  }

  function paramsSummary(params) {
    const text = JSON.stringify(params || {});
    return text === "{}" ? "" : text.length > 90 ? `${text.slice(0, 90)}…` : text;
  }

  function commandItems(rows) {
    return rows.map((row) => ({
      time: row.timeMs,
      pageId: row.pageId,
      kind: row.internal ? "cdp.internal" : row.method,
      label: row.method,
      sub: [row.status, formatDuration(row.durationMs), row.error || paramsSummary(row.params)].filter(Boolean).join(" · "),
      severity: row.status === "failed" ? "error" : "info",
      source: "command",
      record: row,
      search: `${row.method} ${row.status} ${row.error || ""} ${JSON.stringify(row.params || {})}`,
    }));
  }

  const NETWORK_FILTERS = {
    fetch: ["fetch", "xhr", "eventsource", "websocket"],
    document: ["document"],
    script: ["script"],
    stylesheet: ["stylesheet", "font"],
    image: ["image", "media"],
  };

  function passesFilter(panel, item) {
    const filter = panel.filter ? panel.filter.value : "all";
    if (filter === "all") return true;
    const record = item.record;
    switch (panel.name) {
      case "activity":
        return filter === "steps" ? item.source === "activity" : item.severity !== "info";
      case "network":
        return filter === "failed" ? item.severity !== "info" : (NETWORK_FILTERS[filter] || []).includes(item.kind);
      case "console":
        return filter === "info" ? !["error", "warning"].includes(record.level) : record.level === filter;
      case "commands":
        return filter === "failed" ? record.status === "failed" : !record.internal;
      default:
        return true;
    }
  }

  function itemsOf(name) {
    const data = inspector.data || {};
    if (name === "activity") return activityItems();
    if (name === "network") return networkItems(data.network || []);
    if (name === "console") return consoleItems(data.console || []);
    if (name === "commands") return commandItems(data.commands || []);
    return [];
  }

  // Offset from the tab's first frame. Rows from before it (the run's start, a request
  // sent before the recorder's first snapshot) read "0:00", marked as before the
  // recording; rows far from it (clock skew) read the time of day.
  function itemTimeText(time, start) {
    if (Math.abs(time - start) > 6 * 3600 * 1000) {
      const date = new Date(time);
      return `${String(date.getHours()).padStart(2, "0")}:${String(date.getMinutes()).padStart(2, "0")}`;
    }
    return clockText(Math.max(0, time - start));
  }

  function rowElement(item, index, start) {
    const li = document.createElement("li");
    li.className = `rt-item sev-${item.severity} src-${item.source} is-future`;
    li.dataset.index = String(index);
    li.dataset.time = String(item.time);
    li.dataset.kind = item.kind;
    const otherTab = state.target && item.pageId && item.pageId !== state.target.id;
    if (otherTab) li.classList.add("other-tab");
    if (inspector.selected === item.record) li.classList.add("is-selected");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "rt-row";
    const when = document.createElement("span");
    when.className = "rt-time mono";
    when.textContent = itemTimeText(item.time, start);
    when.title = new Date(item.time).toLocaleString();
    if (item.time < start) {
      li.classList.add("before-start");
      when.title = `${when.title} · before the tab's first frame`;
    }
    const dot = document.createElement("span");
    dot.className = "rt-dot";
    dot.setAttribute("aria-hidden", "true");
    const body = document.createElement("span");
    body.className = "rt-body";
    const label = document.createElement("span");
    label.className = "rt-label";
    label.textContent = item.label;
    const kind = document.createElement("span");
    kind.className = "rt-kind mono";
    kind.textContent = otherTab ? `${item.sub} · ${tabNameOf(item.pageId, item.time)}` : item.sub;
    body.append(label, kind);
    button.append(when, dot, body);
    li.appendChild(button);
    return li;
  }

  function buildPanel(panel) {
    panel.items = itemsOf(panel.name).sort((a, b) => a.time - b.time);
    renderPanel(panel);
  }

  // Rows are built off-document and inserted at once (one layout for 1,000+ rows, not
  // one per row); one click listener on each list serves all its rows.
  function renderPanel(panel) {
    const query = panel.search ? panel.search.value.trim().toLowerCase() : "";
    panel.visible = panel.items.filter(
      (item) =>
        passesFilter(panel, item) &&
        (!query || `${item.label} ${item.sub} ${item.search || ""}`.toLowerCase().includes(query))
    );
    panel.current = -1;
    const scrolled = panel.list.scrollTop;
    panel.list.textContent = "";
    const target = state.target;
    const start = target ? target.start : panel.visible.length ? panel.visible[0].time : 0;
    const rows = document.createDocumentFragment();
    panel.visible.forEach((item, index) => rows.appendChild(rowElement(item, index, start)));
    panel.list.appendChild(rows);
    panel.list.scrollTop = scrolled; // a refresh of a running run's rows keeps the place
    if (panel.count) panel.count.textContent = String(panel.items.length);
    if (panel.empty) {
      panel.empty.hidden = panel.visible.length > 0;
      if (panel.items.length && !panel.visible.length) panel.empty.textContent = "No row matches the filter.";
      else panel.empty.textContent = panel.empty.dataset.text || panel.empty.textContent;
    }
    panel.section.dataset.rows = String(panel.visible.length);
    if (state.target && (state.mode === "chunks" || state.mode === "live")) highlightPanel(panel, currentT(), true);
  }

  function buildInspector() {
    for (const panel of panels.values()) buildPanel(panel);
  }

  function clearInspector() {
    for (const panel of panels.values()) {
      panel.items = [];
      panel.visible = [];
      panel.current = -1;
      panel.list.textContent = "";
    }
  }

  async function loadInspector() {
    if (!inspector.url || inspector.loading) return;
    inspector.loading = true;
    try {
      const response = await fetch(inspector.url, { credentials: "same-origin" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      inspector.data = await response.json();
      for (const name of ["network", "console", "commands"]) {
        const panel = panels.get(name);
        if (panel) buildPanel(panel);
      }
      if (inspector.el) inspector.el.dataset.inspector = "ready";
    } catch (error) {
      if (inspector.el) inspector.el.dataset.inspector = "failed";
    } finally {
      inspector.loading = false;
    }
  }

  function highlight(t) {
    const panel = panels.get(inspector.active);
    if (panel) highlightPanel(panel, t, false);
  }

  function highlightPanel(panel, t, force) {
    const items = panel.visible;
    let lo = 0;
    let hi = items.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (items[mid].time <= t + 1) {
        found = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    // Among rows of the same time, the one the person clicked is the current one.
    const pinned = inspector.selected;
    for (let i = found; pinned && i >= 0 && items[i].time === items[found].time; i--) {
      if (items[i].record === pinned) {
        found = i;
        break;
      }
    }
    if (found === panel.current && !force) return;
    const rows = panel.list.children;
    const previous = force ? -1 : panel.current;
    const from = force ? 0 : Math.min(found, previous) + 1;
    const to = force ? rows.length - 1 : Math.max(found, previous);
    for (let i = Math.max(0, from); i <= to && i < rows.length; i++) {
      rows[i].classList.toggle("is-future", i > found);
      if (force) rows[i].classList.remove("is-current");
    }
    if (previous >= 0 && rows[previous]) rows[previous].classList.remove("is-current");
    panel.current = found;
    const row = found >= 0 ? rows[found] : null;
    if (!row) return;
    row.classList.add("is-current");
    if (panel.section.hidden || now() - panel.userScrolledAt < FOLLOW_PAUSE_MS) return;
    // Followed at once, not smoothly: at 4x or 8x a row can turn current every few frames,
    // and a smooth scroll restarted that often trails behind.
    const list = panel.list;
    const top = row.getBoundingClientRect().top - list.getBoundingClientRect().top + list.scrollTop;
    if (top < list.scrollTop || top + row.offsetHeight > list.scrollTop + list.clientHeight) {
      list.scrollTop = Math.max(0, top - list.clientHeight / 3);
    }
  }

  function showPanel(name) {
    if (!panels.has(name)) return;
    inspector.active = name;
    for (const panel of panels.values()) {
      const on = panel.name === name;
      panel.section.hidden = !on;
      if (panel.tab) {
        panel.tab.classList.toggle("active", on);
        panel.tab.setAttribute("aria-selected", on ? "true" : "false");
        panel.tab.tabIndex = on ? 0 : -1;
      }
    }
    const panel = panels.get(name);
    if (state.target) highlightPanel(panel, state.mode === "live" && state.live ? state.live.lastTimestamp : currentT(), true);
  }

  // Seeks to a row: on its own tab of the run when it has one that plays, else on this one.
  function onItemClick(item) {
    selectRecord(item);
    if (state.mode !== "chunks" || !state.target) return;
    const targets = (state.manifest && state.manifest.targets) || [];
    const own = targets.find((t) => t.id === item.pageId && t.playable);
    if (own && own.id !== state.target.id && item.time >= own.start - 1000 && item.time <= own.end) {
      selectTarget(own.id, false, item.time);
      return;
    }
    seek(clampT(item.time), state.clock.playing);
  }

  function definitionList(pairs) {
    const dl = document.createElement("dl");
    dl.className = "detail-pairs";
    for (const [name, value] of pairs) {
      if (value === "" || value === null || value === undefined) continue;
      const dt = document.createElement("dt");
      dt.textContent = name;
      const dd = document.createElement("dd");
      dd.textContent = String(value);
      dl.append(dt, dd);
    }
    return dl;
  }

  function headerBlock(title, headers) {
    const block = document.createElement("div");
    block.className = "detail-block";
    const heading = document.createElement("h3");
    heading.textContent = title;
    block.appendChild(heading);
    const names = Object.keys(headers || {}).sort();
    if (!names.length) {
      const none = document.createElement("p");
      none.className = "muted";
      none.textContent = "None recorded.";
      block.appendChild(none);
    } else {
      const dl = definitionList(names.map((name) => [name, headers[name]]));
      dl.classList.add("mono", "detail-headers");
      dl.querySelectorAll("dd").forEach((dd) => {
        if (dd.textContent === "[redacted]") dd.classList.add("redacted");
      });
      block.appendChild(dl);
    }
    return block;
  }

  function preBlock(title, text) {
    const block = document.createElement("div");
    block.className = "detail-block";
    const heading = document.createElement("h3");
    heading.textContent = title;
    const pre = document.createElement("pre");
    pre.className = "mono";
    pre.textContent = text;
    block.append(heading, pre);
    return block;
  }

  function selectRecord(item) {
    if (!inspector.detail) return;
    inspector.selected = item.record;
    for (const panel of panels.values()) {
      panel.list.querySelectorAll(".is-selected").forEach((row) => row.classList.remove("is-selected"));
    }
    const panel = panels.get(inspector.active);
    const position = panel ? panel.visible.indexOf(item) : -1;
    if (position >= 0 && panel.list.children[position]) panel.list.children[position].classList.add("is-selected");
    const record = item.record;
    const body = inspector.detailBody;
    body.textContent = "";
    inspector.detailTitle.textContent = item.label;
    inspector.detailTitle.title = item.label;
    const when = definitionList([
      ["Time", state.target ? itemTimeText(item.time, state.target.start) : ""],
      ["Tab", item.pageId ? tabNameOf(item.pageId, item.time) : ""],
    ]);
    if (item.source === "network") {
      body.appendChild(
        definitionList([
          ["URL", record.url],
          ["Method", record.method],
          ["Status", record.blocked ? `Blocked: ${record.blocked}` : record.failed ? record.errorText || "Failed" : record.status === null ? "No answer recorded" : record.status],
          ["Type", record.resourceType],
          ["MIME type", record.mimeType],
          ["Size", formatBytes(record.sizeBytes)],
          ["Time taken", formatDuration(record.durationMs)],
        ])
      );
      body.appendChild(headerBlock("Request headers", record.requestHeaders));
      body.appendChild(headerBlock("Response headers", record.responseHeaders));
    } else if (item.source === "console") {
      body.appendChild(definitionList([["Level", record.level], ["Source", record.pageError ? "Uncaught error in the page" : "console"]]));
      body.appendChild(preBlock("Message", record.text));
      if (record.stack) body.appendChild(preBlock("Stack", record.stack));
    } else if (item.source === "command") {
      body.appendChild(definitionList([["Status", record.status], ["Time taken", formatDuration(record.durationMs)]]));
      if (record.error) body.appendChild(preBlock("Error", record.error));
      body.appendChild(preBlock("Parameters", JSON.stringify(record.params || {}, null, 2)));
    } else {
      body.appendChild(definitionList([["Type", item.kind], ["Duration", formatDuration(record.durationMs)]]));
      const children = record.children || [];
      if (children.length) {
        const list = document.createElement("ol");
        list.className = "detail-children";
        for (const child of children) {
          const li = document.createElement("li");
          li.textContent = child.message;
          if (child.severity && child.severity !== "info") li.className = `sev-${child.severity}`;
          list.appendChild(li);
        }
        const block = document.createElement("div");
        block.className = "detail-block";
        const heading = document.createElement("h3");
        heading.textContent = `Steps inside (${children.length})`;
        block.append(heading, list);
        body.appendChild(block);
      }
    }
    body.prepend(when);
    inspector.detail.hidden = false;
    // The list just got shorter: its current row back in view.
    if (panel && state.target) highlightPanel(panel, currentT(), true);
  }

  function closeDetail() {
    if (!inspector.detail) return;
    inspector.detail.hidden = true;
    inspector.selected = null;
    for (const panel of panels.values()) {
      panel.list.querySelectorAll(".is-selected").forEach((row) => row.classList.remove("is-selected"));
    }
  }

  for (const panel of panels.values()) {
    if (panel.empty) panel.empty.dataset.text = panel.empty.textContent;
    panel.list.addEventListener("click", (event) => {
      const row = event.target.closest && event.target.closest(".rt-item");
      if (!row || !panel.list.contains(row)) return;
      const item = panel.visible[Number(row.dataset.index)];
      if (item) onItemClick(item);
    });
    const paused = () => { panel.userScrolledAt = now(); };
    panel.list.addEventListener("wheel", paused, { passive: true });
    panel.list.addEventListener("touchmove", paused, { passive: true });
    if (panel.search) {
      let typing = null;
      panel.search.addEventListener("input", () => {
        clearTimeout(typing);
        // Thousands of rows: rebuilt once the typing pauses, not on every key.
        if (panel.items.length > 2000) typing = setTimeout(() => renderPanel(panel), 200);
        else renderPanel(panel);
      });
    }
    if (panel.filter) panel.filter.addEventListener("change", () => renderPanel(panel));
    if (panel.tab) {
      panel.tab.addEventListener("click", () => showPanel(panel.name));
      panel.tab.addEventListener("keydown", (event) => {
        if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
        const names = Array.from(panels.keys());
        const next = names[(names.indexOf(panel.name) + (event.key === "ArrowRight" ? 1 : names.length - 1)) % names.length];
        showPanel(next);
        panels.get(next).tab.focus();
      });
    }
  }
  if (inspector.el) {
    const close = inspector.el.querySelector("[data-detail-close]");
    if (close) close.addEventListener("click", closeDetail);
  }

  // The scrubber's markers and the inspector's rows of the target, drawn after its first
  // frame (they are not needed to show it, and 1,000+ rows and ticks cost more style and
  // layout than the frame itself), when the browser is idle.
  function clearDecorations() {
    els.markers.textContent = "";
    els.inactivity.textContent = "";
    clearInspector();
    root.dataset.decorations = "pending";
  }

  function decorate(token) {
    const run = () => {
      if (token !== state.decorationToken) return;
      renderScrubber();
      buildInspector();
      root.dataset.decorations = "ready";
      if (state.target && state.mode === "chunks") highlight(currentT());
      if (!inspector.data) loadInspector();
    };
    if (window.requestIdleCallback) window.requestIdleCallback(run, { timeout: 300 });
    else setTimeout(run, 0);
  }

  // Targets ----------------------------------------------------------------------
  //
  // A tab of the run is named by its page: the title of the page at the playhead for the
  // tab shown (processing's index.pages), the first one for the others, else its URL
  // (a live recording's latest Meta), else "Tab N". Its favicon shows when the page's
  // icon can be shown without reaching another site (a data: image, or this server's).

  function pageAt(target, t) {
    const pages = pagesOf(target);
    let found = pages.length ? pages[0] : null;
    for (const page of pages) {
      if (page.time <= t) found = page;
      else break;
    }
    if (!found && state.liveHrefs[target.id]) found = { url: state.liveHrefs[target.id], title: "", icon: "" };
    return found;
  }

  function iconOf(page) {
    if (!page || !page.icon) return "";
    try {
      const url = new URL(page.icon, page.url || undefined);
      if (url.protocol === "data:" && /^data:image\//i.test(page.icon)) return page.icon;
      if (url.origin === window.location.origin) return url.href;
    } catch (error) {
      /* not a URL */
    }
    return "";
  }

  function tabPage(target) {
    const selected = state.target && state.target.id === target.id;
    return pageAt(target, selected ? currentT() : target.start);
  }

  function nameOfPage(page, fallback) {
    if (page && page.title) return page.title;
    if (page && page.url && page.url !== "about:blank") return shortUrl(page.url, "");
    if (page && page.url === "about:blank") return "Blank page";
    return fallback;
  }

  // The name of tab `id` (at time `t`, when given).
  function tabNameOf(id, t) {
    const targets = (state.manifest && state.manifest.targets) || [];
    const index = targets.findIndex((target) => target.id === id);
    if (index < 0) return "another tab";
    const page = typeof t === "number" ? pageAt(targets[index], t) : tabPage(targets[index]);
    return nameOfPage(page, `Tab ${index + 1}`);
  }

  function fillTab(button, target, index) {
    const page = tabPage(target);
    const name = nameOfPage(page, `Tab ${index + 1}`);
    const icon = iconOf(page);
    const key = `${name}\n${icon}`;
    if (button.dataset.key === key) return;
    button.dataset.key = key;
    button.textContent = "";
    if (icon) {
      const img = document.createElement("img");
      img.className = "tab-icon";
      img.src = icon;
      img.alt = "";
      img.width = 16;
      img.height = 16;
      img.addEventListener("error", () => img.remove());
      button.appendChild(img);
    }
    const label = document.createElement("span");
    label.className = "tab-name";
    label.textContent = name;
    button.appendChild(label);
    const where = page && page.url ? `\n${page.url}` : "";
    button.title = target.problem ? `${name}: ${target.problem}` : `${name}${where}`;
  }

  function renderTabs() {
    const targets = (state.manifest && state.manifest.targets) || [];
    els.tabs.textContent = "";
    targets.forEach((target, index) => {
      const button = document.createElement("button");
      button.type = "button";
      button.setAttribute("role", "tab");
      button.className = "target-tab";
      button.dataset.target = target.id;
      const on = state.target && state.target.id === target.id;
      button.classList.toggle("active", !!on);
      button.setAttribute("aria-selected", on ? "true" : "false");
      fillTab(button, target, index);
      if (!target.playable) button.classList.add("unplayable");
      button.addEventListener("click", () => selectTarget(target.id));
      els.tabs.appendChild(button);
    });
    els.tabs.hidden = targets.length === 0;
  }

  // The shown tab's name follows the page at the playhead.
  function refreshTabName() {
    if (!state.target) return;
    const targets = (state.manifest && state.manifest.targets) || [];
    const index = targets.findIndex((t) => t.id === state.target.id);
    const button = els.tabs.querySelector(`[data-target="${CSS.escape(state.target.id)}"]`);
    if (button && index >= 0) fillTab(button, state.target, index);
  }

  function selectTarget(id, keepTime, atTime) {
    const targets = (state.manifest && state.manifest.targets) || [];
    const target = targets.find((t) => t.id === id) || targets[0];
    if (!target) return;
    const previousT = state.target ? currentT() : null;
    const wasPlaying = state.clock.playing;
    state.token++;
    stopLive();
    destroyReplayer();
    state.target = target;
    applyView();
    state.skipPeriods = state.mode === "chunks" ? computeSkipPeriods(target) : [];
    root.dataset.target = target.id;
    renderTabs();
    clearDecorations();
    const decorationToken = ++state.decorationToken;
    if (!target.playable) {
      decorate(decorationToken);
      setState("unplayable");
      els.time.textContent = "";
      showMessage(target.problem || "This tab cannot be played.", false);
      els.play.disabled = true;
      return;
    }
    if (state.mode === "live") {
      decorate(decorationToken);
      startLive(target);
      return;
    }
    els.play.disabled = false;
    let t = target.start;
    if (typeof atTime === "number") t = Math.min(Math.max(atTime, target.start), target.end);
    else if (keepTime && previousT !== null && previousT >= target.start && previousT <= target.end) t = previousT;
    // The first chunk first: its fetch starts now, the markers and timeline once it shows.
    const shown = seek(t, keepTime ? wasPlaying : false);
    Promise.resolve(shown).finally(() => decorate(decorationToken));
  }

  // Video ------------------------------------------------------------------------

  function videoOf(target) {
    return state.mode === "chunks" && target && target.playable && target.video ? target.video : null;
  }

  // Shows the toggle when the tab has a video, and the view chosen (DOM without one).
  function applyView() {
    const video = videoOf(state.target);
    els.view.hidden = !video;
    const on = !!video && state.view === "video";
    root.dataset.view = on ? "video" : "dom";
    els.video.hidden = !on;
    els.view.querySelectorAll("button").forEach((button) => {
      const active = button.dataset.viewValue === (on ? "video" : "dom");
      button.classList.toggle("active", active);
      button.setAttribute("aria-pressed", active ? "true" : "false");
    });
    if (!on) {
      if (!els.video.paused) els.video.pause();
      return;
    }
    if (els.video.dataset.src !== video.url) {
      els.video.dataset.src = video.url;
      els.video.src = video.url;
    }
    syncVideo(currentT(), true);
  }

  function syncVideo(t, force) {
    const video = state.view === "video" ? videoOf(state.target) : null;
    if (!video || els.video.hidden) return;
    const player = els.video;
    const wanted = Math.min(Math.max((t - video.start) / 1000, 0), video.durationMs / 1000);
    if (state.clock.playing) {
      player.playbackRate = state.clock.speed;
      if (player.paused) player.play().catch(() => {});
      if (Math.abs(player.currentTime - wanted) > VIDEO_DRIFT_S) player.currentTime = wanted;
    } else {
      if (!player.paused) player.pause();
      if (force || Math.abs(player.currentTime - wanted) > 0.04) player.currentTime = wanted;
    }
  }

  // Live mode --------------------------------------------------------------------

  function stopLive() {
    if (state.live) {
      clearTimeout(state.live.timer);
      state.live.stopped = true;
    }
    state.live = null;
  }

  function startLive(target) {
    const live = { target, seq: -1, pending: [], replayer: null, lastTimestamp: target.end, timer: null, stopped: false };
    state.live = live;
    setState("live");
    els.play.disabled = true;
    els.liveBadge.hidden = false;
    showMessage("Waiting for the first frame…", true);
    pollLive(live);
  }

  function startOfLastSnapshot(events) {
    for (let i = events.length - 1; i >= 0; i--) {
      const meta = events[i].type === EventType.Meta;
      if (meta && events.slice(i + 1).some((e) => e.type === EventType.FullSnapshot)) return i;
    }
    return -1;
  }

  async function pollLive(live) {
    if (live.stopped) return;
    let data = null;
    try {
      const response = await fetch(`${live.target.liveUrl}?after=${live.seq}`, { credentials: "same-origin" });
      if (response.ok) data = await response.json();
    } catch (error) {
      data = null;
    }
    if (live.stopped) return;
    if (data) {
      live.seq = data.seq;
      feedLive(live, data.events || []);
      if (!LIVE_STATUSES.includes(data.status)) {
        reloadManifest(true);
        return;
      }
    }
    live.timer = setTimeout(() => pollLive(live), data && data.more ? 0 : LIVE_POLL_MS);
  }

  function feedLive(live, events) {
    if (!events.length) return;
    for (const event of events) {
      if (event.type === EventType.Meta && event.data && event.data.href) state.liveHrefs[live.target.id] = event.data.href;
    }
    live.lastTimestamp = Math.max(live.lastTimestamp || 0, events[events.length - 1].timestamp);
    if (!live.replayer) {
      live.pending = live.pending.concat(events);
      const first = startOfLastSnapshot(live.pending);
      if (first < 0) {
        // Keep only what a later snapshot cannot make useless: events since the last Meta.
        const meta = live.pending.map((e) => e.type).lastIndexOf(4);
        if (meta > 0) live.pending = live.pending.slice(meta);
        return;
      }
      const initial = live.pending.slice(first);
      live.pending = [];
      const replayer = mountReplayer([], `live:${live.target.id}`, { live: true });
      live.replayer = replayer;
      replayer.startLive(live.lastTimestamp - 500);
      initial.forEach((event) => replayer.addEvent(event));
      hideMessage();
      return;
    }
    events.forEach((event) => live.replayer.addEvent(event));
    if (state.target) state.target.end = Math.max(state.target.end, live.lastTimestamp);
  }

  // Manifest ---------------------------------------------------------------------

  function describeStatus(manifest) {
    const recording = manifest.recording;
    if (!els.recordingStatus) return;
    if (!recording) {
      els.recordingStatus.hidden = true;
      return;
    }
    els.recordingStatus.hidden = false;
    els.recordingStatus.dataset.status = recording.status;
    const words = {
      recording: "Recording in progress",
      preparing: "Preparing replay",
      processing: "Processing replay",
      ready: "Recording ready",
      archived: "Recording archived",
      failed: "Recording failed",
    };
    els.recordingStatus.textContent = words[recording.status] || `Recording ${recording.status}`;
  }

  function applyManifest(manifest, fresh) {
    const previousActivity = state.manifest ? JSON.stringify(state.manifest.activity) : "";
    const previousMode = state.mode;
    const previousTarget = state.target ? state.target.id : null;
    state.manifest = manifest;
    state.mode = manifest.mode;
    describeStatus(manifest);
    root.dataset.mode = manifest.mode;
    els.liveBadge.hidden = manifest.mode !== "live";
    els.scrubber.classList.toggle("is-live", manifest.mode === "live");
    els.speed.querySelectorAll("button").forEach((b) => { b.disabled = manifest.mode !== "chunks"; });
    els.skip.disabled = manifest.mode !== "chunks";

    if (!manifest.targets.length) {
      stopLive();
      destroyReplayer();
      state.target = null;
      applyView();
      renderTabs();
      buildInspector();
      els.time.textContent = "";
      const recording = manifest.recording;
      let text = "This run has no recording.";
      if (recording && LIVE_STATUSES.includes(recording.status)) text = "Waiting for the first recorded page…";
      else if (recording && recording.status === "failed") text = `The recording could not be processed. ${recording.failureReason || ""}`;
      else if (recording) text = "This recording has no playable tabs.";
      showMessage(text, !!(recording && LIVE_STATUSES.includes(recording.status)));
      setState("empty");
      return;
    }
    const sameTarget = manifest.targets.find((t) => t.id === previousTarget);
    if (fresh || previousMode !== manifest.mode || !sameTarget) {
      selectTarget(sameTarget ? sameTarget.id : manifest.targets[0].id, previousMode === manifest.mode);
    } else {
      // Same mode and tab: refresh the tabs and the activity without touching playback.
      if (state.mode === "live") {
        state.target.start = sameTarget.start;
      }
      renderTabs();
      if (JSON.stringify(manifest.activity) !== previousActivity) {
        const activity = panels.get("activity");
        if (activity) buildPanel(activity);
        render(state.mode === "live" && state.live ? state.live.lastTimestamp : currentT());
      }
      // A run still going: its requests, messages and commands grow with it.
      if (manifest.run.status === "running" && inspector.data) loadInspector();
    }
  }

  function scheduleManifestPoll() {
    clearTimeout(state.manifestTimer);
    const recording = state.manifest && state.manifest.recording;
    const waiting = state.mode !== "chunks" && (!state.manifest || !recording || LIVE_STATUSES.includes(recording.status));
    const runActive = state.manifest && state.manifest.run.status === "running";
    if (waiting || runActive) state.manifestTimer = setTimeout(() => reloadManifest(false), MANIFEST_POLL_MS);
  }

  async function reloadManifest(fresh) {
    try {
      const response = await fetch(root.dataset.manifestUrl, { credentials: "same-origin" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const manifest = await response.json();
      if (fresh) mark("manifest");
      applyManifest(manifest, fresh);
    } catch (error) {
      if (!state.manifest) showMessage("The recording could not be loaded.", false);
    }
    scheduleManifestPoll();
  }

  // Scrubber input ---------------------------------------------------------------

  function timeAtPointer(event) {
    const box = els.scrubber.getBoundingClientRect();
    const f = Math.min(1, Math.max(0, (event.clientX - box.left) / box.width));
    return state.target.start + f * (state.target.end - state.target.start);
  }

  function showTip(event, t) {
    const box = els.scrubber.getBoundingClientRect();
    els.tip.hidden = false;
    els.tip.textContent = clockText(t - state.target.start);
    els.tip.style.left = `${Math.min(box.width, Math.max(0, event.clientX - box.left))}px`;
  }

  els.scrubber.addEventListener("pointerdown", (event) => {
    if (state.mode !== "chunks" || !state.target) return;
    state.dragging = true;
    els.scrubber.setPointerCapture(event.pointerId);
    const t = timeAtPointer(event);
    els.progress.style.width = `${fraction(t) * 100}%`;
    els.handle.style.left = `${fraction(t) * 100}%`;
    showTip(event, t);
  });
  els.scrubber.addEventListener("pointermove", (event) => {
    if (state.mode !== "chunks" || !state.target) return;
    const t = timeAtPointer(event);
    showTip(event, t);
    if (state.dragging) {
      els.progress.style.width = `${fraction(t) * 100}%`;
      els.handle.style.left = `${fraction(t) * 100}%`;
    }
  });
  els.scrubber.addEventListener("pointerup", (event) => {
    if (!state.dragging) return;
    state.dragging = false;
    seek(timeAtPointer(event), state.clock.playing);
  });
  els.scrubber.addEventListener("pointerleave", () => {
    if (!state.dragging) els.tip.hidden = true;
  });
  els.scrubber.addEventListener("keydown", (event) => {
    if (state.mode !== "chunks") return;
    const step = event.shiftKey ? 30000 : 5000;
    if (event.key === "ArrowLeft" || event.key === "ArrowRight") {
      event.preventDefault();
      seek(currentT() + (event.key === "ArrowLeft" ? -step : step), state.clock.playing);
    } else if (event.key === "Home" || event.key === "End") {
      event.preventDefault();
      seek(event.key === "Home" ? state.target.start : state.target.end, false);
    }
  });

  // Controls ---------------------------------------------------------------------

  els.play.addEventListener("click", togglePlay);
  els.bigPlay.addEventListener("click", togglePlay);
  els.speed.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-speed-value]");
    if (button) setSpeed(Number(button.dataset.speedValue));
  });
  els.view.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-view-value]");
    if (!button) return;
    state.view = button.dataset.viewValue === "video" ? "video" : "dom";
    applyView();
  });
  els.skip.addEventListener("change", () => {
    root.dataset.skip = els.skip.checked ? "on" : "off";
  });
  els.fullscreen.addEventListener("click", () => {
    const player = root.querySelector("[data-player]");
    if (document.fullscreenElement) document.exitFullscreen();
    else if (player.requestFullscreen) player.requestFullscreen().catch(() => {});
  });
  document.addEventListener("fullscreenchange", () => requestAnimationFrame(fit));
  document.addEventListener("keydown", (event) => {
    const tag = (event.target && event.target.tagName) || "";
    if (["INPUT", "SELECT", "TEXTAREA", "BUTTON"].includes(tag) || event.metaKey || event.ctrlKey || event.altKey) return;
    if (event.key === " " || event.key === "k") {
      event.preventDefault();
      togglePlay();
    } else if (event.key === "f") {
      els.fullscreen.click();
    }
  });
  if (window.ResizeObserver) new ResizeObserver(() => fit()).observe(els.stage);
  else window.addEventListener("resize", fit);

  // Test and debugging hook: what the player holds, never the events themselves.
  window.bctrlReplay = {
    chunksHeld: () => Array.from(state.cache.keys()),
    time: () => currentT(),
    view: () => root.dataset.view || "dom",
    videoTime: () => (els.video.hidden ? null : els.video.currentTime),
    seek: (t) => seek(t, false),
  };

  reloadManifest(true);
  requestAnimationFrame(tick);
})();
