// Input capture of the runtime host (runtime_host/recorder.py, input_source): runs in the
// isolated world "bctrl" of every frame, whoever drives the page (a Playwright script,
// an agent sending raw CDP Input.* commands, a person in the live view), and tells the
// host what each input touched, at the moment it happened, through the __bctrlInput
// binding. The host names the element from Chromium's accessibility tree (it takes the
// element back with __bctrlInputs.take(mark)); the name and role computed here are what
// it falls back on when the document is already gone.
//
// Never sent: what was typed, the value of any field. Sent: the element's role and name
// (a password field's label is kept, its value never), the option chosen in a list, the
// state of a checkbox, the names of uploaded files, the page's title.
(function () {
  "use strict";
  var G = globalThis;
  if (G.__bctrlInputs) return;
  var MAX_NAME = 120;
  var TYPING_GAP_MS = 1500;
  var MAX_MARKS = 50;
  var marks = {};
  var order = [];
  var nextMark = 1;
  var typing = { element: null, at: 0 };
  var INTERACTIVE =
    "a[href],button,input,select,textarea,summary,option,label,[role=button],[role=link]," +
    "[role=checkbox],[role=radio],[role=switch],[role=tab],[role=menuitem],[role=option]," +
    "[role=combobox],[role=textbox],[contenteditable=''],[contenteditable=true],[onclick]";

  function clean(text) {
    text = String(text || "")
      .replace(/\s+/g, " ")
      .trim();
    return text.length > MAX_NAME ? text.slice(0, MAX_NAME - 1) + "…" : text;
  }

  function textOf(element) {
    if (!element) return "";
    return clean(element.innerText !== undefined ? element.innerText : element.textContent);
  }

  function roleOf(element) {
    var explicit = element.getAttribute && element.getAttribute("role");
    if (explicit) return explicit.split(" ")[0];
    var tag = element.localName;
    if (tag === "a" && element.hasAttribute("href")) return "link";
    if (tag === "button" || tag === "summary") return "button";
    if (tag === "select") return element.multiple || element.size > 1 ? "listbox" : "combobox";
    if (tag === "textarea") return "textbox";
    if (tag === "option") return "option";
    if (tag === "img") return "img";
    if (tag === "input") {
      var type = (element.type || "text").toLowerCase();
      if (type === "button" || type === "submit" || type === "reset" || type === "image")
        return "button";
      if (type === "checkbox" || type === "radio") return type;
      if (type === "range") return "slider";
      if (type === "search") return "searchbox";
      if (type === "number") return "spinbutton";
      if (type === "file") return "button";
      return "textbox";
    }
    if (element.isContentEditable) return "textbox";
    return "";
  }

  function labelled(element) {
    var ids = element.getAttribute && element.getAttribute("aria-labelledby");
    if (ids) {
      var parts = ids.split(/\s+/).map(function (id) {
        return textOf(document.getElementById(id));
      });
      var joined = clean(parts.join(" "));
      if (joined) return joined;
    }
    var aria = element.getAttribute && element.getAttribute("aria-label");
    if (aria && clean(aria)) return clean(aria);
    if (element.labels && element.labels.length) {
      var label = textOf(element.labels[0]);
      if (label) return label;
    }
    return "";
  }

  // The accessible name, as far as a page script can tell: aria-labelledby, aria-label,
  // the field's label, a button's text or value, an image's alt, a placeholder, a title.
  function nameOf(element) {
    var name = labelled(element);
    if (name) return name;
    var tag = element.localName;
    var role = roleOf(element);
    if (tag === "input") {
      var type = (element.type || "").toLowerCase();
      if (type === "button" || type === "submit" || type === "reset")
        return clean(element.value) || (type === "submit" ? "Submit" : "");
      if (type === "image") return clean(element.alt);
    } else if (tag === "img") {
      return clean(element.alt);
    } else if (role !== "textbox" && tag !== "select" && tag !== "textarea") {
      var text = textOf(element);
      if (text) return text;
    }
    return clean(element.getAttribute("placeholder") || element.getAttribute("title") || "");
  }

  function interactive(element) {
    var found = element && element.closest ? element.closest(INTERACTIVE) : null;
    if (found && found.localName === "label" && found.control) return found.control;
    if (found && found.localName === "option") return found.closest("select") || found;
    return found || element;
  }

  function focused() {
    var element = document.activeElement;
    while (element && element.shadowRoot && element.shadowRoot.activeElement) {
      element = element.shadowRoot.activeElement;
    }
    return element && element !== document.body ? element : null;
  }

  function describe(element) {
    var masked =
      element.localName === "input" && (element.type || "").toLowerCase() === "password";
    return {
      role: roleOf(element),
      name: nameOf(element),
      masked: masked,
      frame: window !== window.top,
    };
  }

  function send(record, element) {
    if (element) {
      var mark = nextMark++;
      marks[mark] = element;
      order.push(mark);
      while (order.length > MAX_MARKS) delete marks[order.shift()];
      record.mark = mark;
    }
    try {
      G.__bctrlInput(JSON.stringify(record));
    } catch (e) {
      /* the binding is gone (the page is closing): nothing to tell */
    }
  }

  function withElement(kind, element, extra) {
    var record = describe(element);
    record.kind = kind;
    for (var key in extra) record[key] = extra[key];
    send(record, element);
  }

  function target(event) {
    var path = event.composedPath ? event.composedPath() : [];
    return path.length && path[0].nodeType === 1 ? path[0] : event.target;
  }

  function pressed(event) {
    if (!event.isTrusted) return;
    var element = interactive(target(event));
    if (!element || element.nodeType !== 1) return;
    var button = ["left", "middle", "right"][event.button] || "left";
    withElement("click", element, {
      x: Math.round(event.clientX),
      y: Math.round(event.clientY),
      button: button,
      clickCount: event.detail || 1,
    });
  }

  // Wheel scrolling, told once it has stopped: how far, not where to.
  var SCROLL_QUIET_MS = 400;
  var wheel = { dx: 0, dy: 0, timer: null };
  function wheeled(event) {
    if (!event.isTrusted) return;
    var scale = event.deltaMode === 1 ? 40 : event.deltaMode === 2 ? window.innerHeight : 1;
    wheel.dx += event.deltaX * scale;
    wheel.dy += event.deltaY * scale;
    if (wheel.timer) clearTimeout(wheel.timer);
    wheel.timer = setTimeout(function () {
      var record = { kind: "scroll", dx: Math.round(wheel.dx), dy: Math.round(wheel.dy) };
      wheel = { dx: 0, dy: 0, timer: null };
      if (record.dx || record.dy) send(record, null);
    }, SCROLL_QUIET_MS);
  }

  function editable(element) {
    if (element.isContentEditable || element.localName === "textarea") return true;
    if (element.localName !== "input") return false;
    var type = (element.type || "text").toLowerCase();
    return !/^(checkbox|radio|file|button|submit|reset|image|range|color)$/.test(type);
  }

  function typed(event) {
    if (!event.isTrusted) return;
    var element = focused() || target(event);
    if (!element || element.nodeType !== 1) return;
    // A checkbox or a list fires "input" too: that is a choice, told on "change".
    if (event.type === "input" && !editable(element)) return;
    var now = Date.now();
    // A named key (Enter, Tab, Escape…) is told each time: it may be a step of its own.
    var named = event.type === "keydown" && event.key && event.key.length > 1;
    if (named && /^(Shift|Control|Alt|Meta|CapsLock|AltGraph)$/.test(event.key)) return;
    if (!named && typing.element === element && now - typing.at < TYPING_GAP_MS) {
      typing.at = now;
      return;
    }
    typing = { element: element, at: now };
    withElement("type", element, {});
  }
  function changed(event) {
    var element = target(event);
    if (!element || element.nodeType !== 1) return;
    var tag = element.localName;
    var type = (element.type || "").toLowerCase();
    if (tag === "select") {
      var chosen = Array.prototype.filter
        .call(element.options, function (option) {
          return option.selected;
        })
        .map(function (option) {
          return clean(option.label || option.text);
        })
        .slice(0, 10);
      withElement("select", element, { options: chosen });
    } else if (tag === "input" && (type === "checkbox" || type === "radio")) {
      withElement("check", element, { checked: !!element.checked });
    } else if (tag === "input" && type === "file") {
      var files = Array.prototype.map
        .call(element.files || [], function (file) {
          return clean(file.name);
        })
        .slice(0, 10);
      withElement("upload", element, { files: files, fileCount: (element.files || []).length });
    }
  }

  // The page's title, once per document (a same-origin pop-up keeps this window, and its
  // listeners, from about:blank to its first real document).
  var titledDocument = null;
  function titled() {
    if (window !== window.top || titledDocument === document) return;
    if (!/^(https?|file):$/.test(location.protocol)) return;
    titledDocument = document;
    send({ kind: "page", title: clean(document.title), url: location.href }, null);
  }
  // document.open() (Playwright's setContent, a page writing itself anew) erases every
  // listener of the window, this world's too: a canary event that nobody else listens
  // for says when they are gone, and they are added again.
  var canary = "bctrl-inputs-" + Math.random().toString(36).slice(2);
  var alive = false;
  function arm() {
    window.addEventListener(canary, function () {
      alive = true;
    });
    window.addEventListener("pointerdown", pressed, true);
    window.addEventListener("wheel", wheeled, { capture: true, passive: true });
    window.addEventListener("keydown", typed, true);
    window.addEventListener("input", typed, true);
    window.addEventListener("change", changed, true);
    window.addEventListener("DOMContentLoaded", titled, true);
    window.addEventListener("load", titled, true);
  }
  arm();
  setInterval(function () {
    alive = false;
    window.dispatchEvent(new Event(canary));
    if (!alive) {
      arm();
      titledDocument = null;
      titled();
    }
  }, 250);
  if (document.readyState !== "loading") titled();

  G.__bctrlInputs = {
    take: function (mark) {
      var element = marks[mark] || null;
      delete marks[mark];
      return element && element.isConnected ? element : null;
    },
  };
})();
