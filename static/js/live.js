// bctrl live view: the browser's picture from the runtime host's screencast, its tabs,
// and, with control, the viewer's clicks, scrolling and typing sent back to it.
//
// The websocket (data-ws-url; protocol in runtimes/liveview.py) sends binary frames (a
// 4-byte header length, a JSON header, a JPEG) and JSON messages (hello, tabs, control,
// error, ended, closed). Each frame is acked once painted: the server sends the next
// one only then, so a slow viewer gets fewer frames instead of a growing backlog.
// Pointer positions are sent as fractions of the picture; the server maps them to the
// page. Nothing is sent as input unless this viewer holds control. A paste goes out as
// several `text` messages when it is longer than one message may be (hello's limits).
(function () {
  "use strict";

  const root = document.querySelector("[data-live-view]");
  if (!root || !window.WebSocket) return;
  const canvas = root.querySelector("[data-live-canvas]");
  const context = canvas.getContext("2d");
  const waiting = root.querySelector("[data-live-waiting]");
  const stateText = root.querySelector("[data-live-state-text]");
  const holderText = root.querySelector("[data-live-holder]");
  const controlButton = root.querySelector("[data-live-control]");
  const tabStrip = root.querySelector("[data-live-tabs]");
  const urlBar = root.querySelector("[data-live-url]");
  const help = root.querySelector("[data-live-help]");
  const endedBox = root.querySelector("[data-live-ended]");
  const replayLink = root.querySelector("[data-live-replay]");
  const handoffBox = root.querySelector("[data-live-handoff]");
  const handoffForm = root.querySelector("[data-live-handoff-form]");
  const chooserBox = root.querySelector("[data-live-chooser]");
  const chooserInput = root.querySelector("[data-live-chooser-input]");
  const chooserStatus = root.querySelector("[data-live-chooser-status]");
  const decoder = new TextDecoder();
  const encoder = new TextEncoder();
  // A paste is typed text (a recovery code, an address), not a file: longer is refused.
  const MAX_PASTE = 100000;
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const url = scheme + "//" + location.host + root.dataset.wsUrl;

  let socket = null;
  let finished = false; // ended or closed for good: no reconnect
  let retries = 0;
  let you = false;
  let mayControl = root.dataset.mayControl === "true";
  let replayUrl = "";
  let maxMessageBytes = 4096; // the server's limits, from its hello
  let maxText = 1000;
  let tabs = [];
  let active = null;
  let watching = null;
  let pinned = null;
  let frames = 0;
  let painting = Promise.resolve();
  let choosers = {}; // tab id → its open file chooser (server's `fileChooser`)
  let sent = ""; // what the person last sent, said for a moment after it went
  let sentTimer = null;

  function setState(state, text) {
    root.dataset.state = state;
    stateText.textContent = text;
  }

  // The page's own status pill (the dashboard's header, [data-run-status]), once the run
  // has ended: the same markup as templates/dashboard/_status.html.
  function showRunStatus(status) {
    const holder = document.querySelector("[data-run-status]");
    if (!holder) return;
    const name = String(status).replace(/[^a-z_-]/g, "");
    const pill = document.createElement("span");
    pill.className = "pill pill-" + name;
    const dot = document.createElement("span");
    dot.className = "dot";
    dot.setAttribute("aria-hidden", "true");
    const text = document.createElement("span");
    text.textContent = name;
    pill.append(dot, text);
    holder.replaceChildren(pill);
  }

  function send(message) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
  }

  // Frames ---------------------------------------------------------------------------

  function paint(buffer) {
    const view = new DataView(buffer);
    const length = view.getUint32(0);
    const header = JSON.parse(decoder.decode(new Uint8Array(buffer, 4, length)));
    const image = new Blob([new Uint8Array(buffer, 4 + length)], { type: "image/jpeg" });
    return createImageBitmap(image)
      .then(function (bitmap) {
        if (canvas.width !== bitmap.width || canvas.height !== bitmap.height) {
          canvas.width = bitmap.width;
          canvas.height = bitmap.height;
        }
        context.drawImage(bitmap, 0, 0);
        bitmap.close();
        frames += 1;
        root.dataset.frames = String(frames);
        root.dataset.target = header.target || "";
        waiting.hidden = true;
      })
      .catch(function () {})
      .then(function () {
        send({ type: "ack" });
      });
  }

  // Messages -------------------------------------------------------------------------

  function showControl(holder) {
    root.dataset.control = you ? "you" : holder ? "other" : "free";
    holderText.textContent = you
      ? "You are in control."
      : holder
        ? holder + " is in control."
        : mayControl
          ? ""
          : "View only.";
    help.hidden = !you;
    if (controlButton) {
      controlButton.hidden = finished; // nothing left to control
      controlButton.disabled = finished || (!!holder && !you);
      controlButton.textContent = you ? "Hand back control" : "Take control";
    }
    if (you) canvas.focus();
  }

  // A handoff: the automation asks a person to do a step (server's `handoff`, or null).
  function showHandoff(handoff) {
    handoffBox.hidden = !handoff || finished;
    root.dataset.handoff = handoff ? handoff.id : "";
    if (!handoff) return;
    handoffBox.querySelector("[data-live-handoff-text]").textContent = handoff.instructions;
    const due = new Date(handoff.expiresAt);
    handoffBox.querySelector("[data-live-handoff-due]").textContent =
      (handoff.requestedBy ? "Asked by " + handoff.requestedBy + ". " : "") +
      "Open until " + due.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) + ".";
  }

  // A file chooser the page opened: the newest open one, on whichever tab.
  function showChooser() {
    const open = Object.values(choosers);
    const chooser = open[open.length - 1];
    chooserBox.hidden = finished || (!chooser && !sent);
    if (!chooser) return;
    const tab = tabs.find(function (t) {
      return t.id === chooser.tabId;
    });
    chooserBox.querySelector("[data-live-chooser-ask]").textContent =
      (tab && tabs.length > 1 ? "“" + tabLabel(tab) + "” asks" : "The page asks") +
      (chooser.multiple ? " for files." : " for a file.");
    chooserBox.querySelector("[data-live-chooser-how]").textContent = !mayControl
      ? "A person with control can choose it."
      : you
        ? "Pick it on your computer; it goes to the page as if chosen in its dialog."
        : "Take control, then pick it on your computer.";
    if (chooserInput) {
      chooserInput.multiple = chooser.multiple;
      chooserInput.disabled = !you;
    }
  }

  function sendFiles(files) {
    const open = Object.values(choosers);
    const chooser = open[open.length - 1];
    if (!chooser || !chooser.upload || !files.length) return;
    const body = new FormData();
    body.append("ticket", chooser.upload.ticket);
    Array.from(files).forEach(function (file) {
      body.append("file", file, file.name);
    });
    const names = Array.from(files, function (file) {
      return file.name;
    }).join(", ");
    chooserStatus.textContent = "Sending " + names + "…";
    fetch(chooser.upload.url, { method: "POST", body: body, credentials: "omit" })
      .then(function (response) {
        return response.json().then(function (answer) {
          if (!response.ok) throw new Error(answer.message || "The files were not sent.");
          // Said for a moment, whether the chooser's closing came before this or after.
          sent = names;
          chooserStatus.textContent = "Sent " + names + " to the page.";
          clearTimeout(sentTimer);
          sentTimer = setTimeout(function () {
            sent = "";
            showChooser();
          }, 4000);
          showChooser();
        });
      })
      .catch(function (error) {
        chooserStatus.textContent = error.message || "The files were not sent.";
      });
  }

  function tabLabel(tab) {
    return tab.title || tab.url || "New tab";
  }

  function showTabs() {
    tabStrip.textContent = "";
    tabs.forEach(function (tab) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "live-tab";
      button.dataset.tabId = tab.id;
      button.title = tab.url;
      button.textContent = tabLabel(tab);
      if (tab.id === watching) button.setAttribute("aria-current", "true");
      if (tab.id === active) {
        const badge = document.createElement("span");
        badge.className = "live-tab-badge";
        badge.textContent = "automation";
        button.append(" ", badge);
      }
      button.addEventListener("click", function () {
        pinned = tab.id === active ? null : tab.id;
        send({ type: "tab", target: pinned });
      });
      tabStrip.append(button);
    });
    if (pinned) {
      const follow = document.createElement("button");
      follow.type = "button";
      follow.className = "live-tab live-follow";
      follow.textContent = "Follow the automation";
      follow.addEventListener("click", function () {
        pinned = null;
        send({ type: "tab", target: null });
      });
      tabStrip.append(follow);
    }
    const shown = tabs.find(function (tab) {
      return tab.id === watching;
    });
    urlBar.textContent = shown ? shown.url : "\u00a0";
  }

  function onMessage(message) {
    switch (message.type) {
      case "hello":
        mayControl = message.mayControl;
        replayUrl = message.replayUrl;
        maxMessageBytes = message.maxMessageBytes || maxMessageBytes;
        maxText = message.maxText || maxText;
        showControl(message.holder);
        showHandoff(message.handoff);
        break;
      case "handoff":
        showHandoff(message.handoff);
        break;
      case "tabs":
        tabs = message.tabs || [];
        active = message.active;
        watching = message.watching;
        showTabs();
        break;
      case "control":
        you = !!message.you;
        showControl(message.holder);
        showChooser();
        break;
      case "fileChooser":
        if (message.open) {
          choosers[message.tabId] = message;
          sent = "";
          chooserStatus.textContent = "";
        } else {
          delete choosers[message.tabId];
        }
        showChooser();
        break;
      case "error":
        root.dataset.lastError = message.code;
        if (message.code !== "control.not_holder") holderText.textContent = message.message;
        break;
      case "ended":
        finished = true;
        you = false;
        replayLink.href = message.replayUrl || replayUrl;
        endedBox.hidden = false;
        setState("ended", "Run ended");
        showControl(null);
        showHandoff(null);
        choosers = {};
        showChooser();
        showRunStatus(message.status || "completed");
        break;
      case "closed":
        finished = true;
        setState("closed", message.reason || "This live view has closed.");
        break;
    }
  }

  // Connection -----------------------------------------------------------------------

  function connect() {
    setState("connecting", retries ? "Reconnecting…" : "Connecting…");
    socket = new WebSocket(url);
    socket.binaryType = "arraybuffer";
    socket.addEventListener("open", function () {
      retries = 0;
      setState("live", "Live");
      if (pinned) send({ type: "tab", target: pinned });
    });
    socket.addEventListener("message", function (event) {
      if (typeof event.data === "string") {
        onMessage(JSON.parse(event.data));
      } else {
        const buffer = event.data;
        painting = painting.then(function () {
          return paint(buffer);
        });
      }
    });
    socket.addEventListener("close", function (event) {
      you = false;
      showControl(null);
      if (finished) return;
      if (event.code >= 4400 && event.code < 4500) {
        finished = true;
        setState(
          "closed",
          event.code === 4410
            ? "This viewer link has expired."
            : event.code === 4413 || event.code === 4400
              ? "The live view refused a message from this page; reload to reconnect."
              : "This live view is not available.",
        );
        return;
      }
      retries += 1;
      // 4503: the server lost its channel layer (Redis) and closed the view to start afresh.
      setState(
        "connecting",
        event.code === 4503 ? "Live view interrupted; reconnecting…" : "Connection lost; reconnecting…",
      );
      setTimeout(connect, Math.min(5000, 250 * 2 ** retries));
    });
  }

  // Input ----------------------------------------------------------------------------

  function modifiers(event) {
    return (event.altKey ? 1 : 0) | (event.ctrlKey ? 2 : 0) | (event.metaKey ? 4 : 0) | (event.shiftKey ? 8 : 0);
  }

  function position(event) {
    const box = canvas.getBoundingClientRect();
    const clamp = function (value) {
      return Math.min(1, Math.max(0, value));
    };
    return { x: clamp((event.clientX - box.left) / box.width), y: clamp((event.clientY - box.top) / box.height) };
  }

  const BUTTONS = ["left", "middle", "right"];

  function mouse(action) {
    return function (event) {
      if (!you) return;
      event.preventDefault();
      if (action === "down") canvas.focus();
      const at = position(event);
      send({
        type: "mouse",
        action: action,
        x: at.x,
        y: at.y,
        button: action === "move" ? (event.buttons & 1 ? "left" : "none") : BUTTONS[event.button] || "left",
        clickCount: action === "move" ? 0 : Math.min(3, Math.max(1, event.detail || 1)),
        modifiers: modifiers(event),
      });
    };
  }

  let moveQueued = null;
  canvas.addEventListener("mousedown", mouse("down"));
  canvas.addEventListener("mouseup", mouse("up"));
  canvas.addEventListener("mousemove", function (event) {
    if (!you) return;
    if (moveQueued === null) {
      requestAnimationFrame(function () {
        mouse("move")(moveQueued);
        moveQueued = null;
      });
    }
    moveQueued = event;
  });
  canvas.addEventListener("contextmenu", function (event) {
    if (you) event.preventDefault();
  });
  canvas.addEventListener(
    "wheel",
    function (event) {
      if (!you) return;
      event.preventDefault();
      const at = position(event);
      send({ type: "wheel", x: at.x, y: at.y, deltaX: event.deltaX, deltaY: event.deltaY, modifiers: modifiers(event) });
    },
    { passive: false },
  );
  function key(action) {
    return function (event) {
      if (!you) return;
      if (action === "down" && (event.ctrlKey || event.metaKey) && event.key === "v") return; // paste
      event.preventDefault();
      send({
        type: "key",
        action: action,
        key: event.key.slice(0, 32),
        code: event.code.slice(0, 32),
        text: action === "down" && event.key.length === 1 && !event.ctrlKey && !event.metaKey ? event.key : "",
        modifiers: modifiers(event),
      });
    };
  }
  canvas.addEventListener("keydown", key("down"));
  canvas.addEventListener("keyup", key("up"));
  // The `text` messages of a paste, in order, each of at most maxText characters (code
  // points, as the server counts them) and maxMessageBytes bytes of JSON.
  function textMessages(text) {
    const messages = [];
    const empty = encoder.encode(JSON.stringify({ type: "text", text: "" })).length;
    let chars = [];
    let bytes = empty;
    for (const char of text) {
      const size = encoder.encode(JSON.stringify(char)).length - 2; // escaped, unquoted
      if (chars.length && (chars.length >= maxText || bytes + size > maxMessageBytes)) {
        messages.push({ type: "text", text: chars.join("") });
        chars = [];
        bytes = empty;
      }
      chars.push(char);
      bytes += size;
    }
    if (chars.length) messages.push({ type: "text", text: chars.join("") });
    return messages;
  }

  document.addEventListener("paste", function (event) {
    if (!you || document.activeElement !== canvas) return;
    event.preventDefault();
    let text = (event.clipboardData && event.clipboardData.getData("text")) || "";
    if (text.toWellFormed) text = text.toWellFormed(); // a lone surrogate is not JSON the server reads
    if (text.length > MAX_PASTE) {
      root.dataset.lastError = "paste.too_long";
      holderText.textContent = "That paste is too long to type (at most 100,000 characters).";
      return;
    }
    textMessages(text).forEach(send);
  });

  if (controlButton) {
    controlButton.addEventListener("click", function () {
      send({ type: "control", action: you ? "release" : "request" });
    });
  }

  if (chooserInput) {
    chooserInput.addEventListener("change", function () {
      sendFiles(chooserInput.files);
      chooserInput.value = "";
    });
  }

  if (handoffForm) {
    handoffForm.addEventListener("submit", function (event) {
      event.preventDefault();
      const note = handoffForm.querySelector("[data-live-handoff-note]");
      send({ type: "handoff.done", note: note.value.trim() });
      note.value = "";
    });
  }

  if (root.dataset.state === "ended") {
    finished = true;
    showControl(null);
  } else {
    connect();
  }
})();
