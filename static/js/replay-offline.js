// The self-contained replay file (recordings/exports.py, GET /v1/runs/{id}/replay.html):
// replay.js runs unchanged and fetches its manifest, inspector and chunk ranges from
// `bctrl-offline:` URLs, which this answers from what the file holds (JSON in
// <script type="application/json"> and each tab's chunk file in base64). Anything else
// it refuses: the file never goes to the network.
(function () {
  "use strict";
  const PREFIX = "bctrl-offline:";
  const files = new Map();

  function text(id) {
    const el = document.getElementById(id);
    return el ? el.textContent : "null";
  }

  function bytesOf(target) {
    if (!files.has(target)) {
      let encoded = "";
      for (const el of document.querySelectorAll("script[data-offline-chunks]")) {
        if (el.dataset.offlineChunks === target) encoded = el.textContent.replace(/\s+/g, "");
      }
      const raw = atob(encoded);
      const bytes = new Uint8Array(raw.length);
      for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
      files.set(target, bytes);
    }
    return files.get(target);
  }

  function rangeOf(init) {
    const headers = new Headers((init && init.headers) || {});
    return /^bytes=(\d+)-(\d+)$/.exec(headers.get("Range") || "");
  }

  window.fetch = function (input, init) {
    const url = typeof input === "string" ? input : input.url;
    if (!url.startsWith(PREFIX)) {
      return Promise.reject(new TypeError("This replay file works offline and fetches nothing."));
    }
    const what = url.slice(PREFIX.length);
    const json = { "Content-Type": "application/json" };
    if (what === "manifest") return Promise.resolve(new Response(text("bctrl-offline-manifest"), { headers: json }));
    if (what === "inspector") return Promise.resolve(new Response(text("bctrl-offline-inspector"), { headers: json }));
    if (what.startsWith("chunks/")) {
      const bytes = bytesOf(decodeURIComponent(what.slice("chunks/".length)));
      const range = rangeOf(init);
      if (!range) return Promise.resolve(new Response(bytes, { status: 200 }));
      return Promise.resolve(new Response(bytes.slice(Number(range[1]), Number(range[2]) + 1), { status: 206 }));
    }
    return Promise.resolve(new Response("", { status: 404 }));
  };
})();
