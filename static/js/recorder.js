// In-page recorder glue of the runtime host (runtime_host/recorder.py prepends the rrweb
// record UMD bundle). It runs in the isolated world "bctrl", so its globals are hidden
// from the page and from clients, and sends rrweb events in batches through the
// __bctrlRecord binding, which the host exposes to that world only.
(function () {
  "use strict";
  var G = globalThis;
  // Same-origin child frames are recorded inside their parent's snapshot; a recorder
  // there (rrweb's own helper iframe too) would restart rrweb without end.
  if (window !== window.top && window.frameElement) return;
  if (G.__bctrl) {
    G.__bctrl.ensure();
    return;
  }
  var FLUSH_MS = 100;
  var state = { buffer: [], stop: null, doc: null, enabled: true, timer: null };

  function flush() {
    if (state.timer) {
      clearTimeout(state.timer);
      state.timer = null;
    }
    if (!state.buffer.length) return;
    var batch = state.buffer;
    state.buffer = [];
    try {
      G.__bctrlRecord(JSON.stringify(batch));
    } catch (e) {
      /* the binding is gone (page closing): nothing to do */
    }
  }

  function isClick(event) {
    // IncrementalSnapshot (3) / MouseInteraction (2) / Click (2) or DblClick (4).
    return (
      event.type === 3 &&
      event.data &&
      event.data.source === 2 &&
      (event.data.type === 2 || event.data.type === 4)
    );
  }

  function emit(event) {
    state.buffer.push(event);
    if (event.type === 2 || isClick(event)) {
      flush();
    } else if (!state.timer) {
      state.timer = setTimeout(flush, FLUSH_MS);
    }
  }

  function recordable() {
    var protocol = location.protocol;
    return protocol === "http:" || protocol === "https:" || protocol === "file:";
  }

  function start() {
    if (!state.enabled || state.stop || !recordable()) return;
    state.doc = document;
    try {
      state.stop =
        rrwebRecord.record({
          emit: emit,
          maskAllInputs: true,
          recordAfter: "DOMContentLoaded",
          checkoutEveryNms: 10000,
          recordCanvas: false,
          collectFonts: false,
          inlineImages: false,
        }) || null;
    } catch (e) {
      state.stop = null;
    }
  }

  function halt() {
    if (state.stop) {
      try {
        state.stop();
      } catch (e) {
        /* already stopped */
      }
    }
    state.stop = null;
    flush();
  }

  function ensure() {
    // A same-origin popup keeps this world while its first real document replaces
    // about:blank: start again on the new document.
    if (state.stop && state.doc !== document) {
      state.stop = null;
    }
    start();
  }

  function end() {
    // The run stops: a last event marks the time, so a page that stood still until
    // now spans its whole time in the replay (recordings.chunking.END_TAG).
    if (state.stop && state.doc === document) {
      try {
        rrwebRecord.record.addCustomEvent("bctrl.end", {});
      } catch (e) {
        /* not recording */
      }
    }
    flush();
  }

  G.__bctrl = {
    ensure: ensure,
    flush: flush,
    end: end,
    running: function () {
      return !!state.stop && state.doc === document;
    },
    setEnabled: function (enabled) {
      state.enabled = !!enabled;
      if (state.enabled) start();
      else halt();
      return state.enabled;
    },
  };
  window.addEventListener("beforeunload", flush, true);
  window.addEventListener("pagehide", flush, true);
  document.addEventListener(
    "visibilitychange",
    function () {
      if (document.visibilityState === "hidden") flush();
    },
    true
  );
  setInterval(ensure, 250);
  start();
})();
