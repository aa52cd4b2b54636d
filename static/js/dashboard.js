// bctrl dashboard: small progressive enhancements. Pages work without it.
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  const pad = (n, w) => String(n).padStart(w || 2, "0");
  const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

  function localText(date) {
    return `${MONTHS[date.getMonth()]} ${date.getDate()}, ${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
  }

  function utcText(date) {
    return date.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
  }

  // Absolute times arrive as UTC text; show them in the reader's zone, UTC in the tooltip.
  function localizeTime(el) {
    const date = new Date(el.getAttribute("datetime"));
    if (Number.isNaN(date.getTime())) return;
    el.textContent = localText(date);
    el.title = utcText(date);
  }

  function timeElement(iso) {
    const el = document.createElement("time");
    el.setAttribute("datetime", iso);
    el.dataset.abs = "";
    const date = new Date(iso);
    el.textContent = Number.isNaN(date.getTime()) ? iso : utcText(date);
    localizeTime(el);
    return el;
  }

  function autosubmit() {
    document.querySelectorAll("form[data-autosubmit] select").forEach((select) => {
      select.addEventListener("change", () => {
        const form = select.form;
        if (form.requestSubmit) form.requestSubmit();
        else form.submit();
      });
    });
  }

  function copyButtons() {
    document.querySelectorAll("[data-copy]").forEach((button) => {
      button.addEventListener("click", () => {
        const code = button.closest(".code-block").querySelector("code");
        if (!code || !navigator.clipboard) return;
        navigator.clipboard.writeText(code.textContent).then(() => {
          button.textContent = "Copied";
          setTimeout(() => { button.textContent = "Copy"; }, 1500);
        });
      });
    });
  }

  // Forms that end something ask first (revoking a viewer link closes open viewers).
  function confirmForms() {
    document.querySelectorAll("form[data-confirm]").forEach((form) => {
      form.addEventListener("submit", (e) => {
        if (!window.confirm(form.dataset.confirm)) e.preventDefault();
      });
    });
  }

  // Tabs: every section is rendered; with JS only the chosen one shows.
  function tabs() {
    const nav = document.querySelector("[data-tabs]");
    if (!nav) return;
    const links = Array.from(nav.querySelectorAll("a[href^='#']"));
    const names = links.map((a) => a.getAttribute("href").slice(1));
    document.body.classList.add("js-tabs");

    function show(name, push) {
      if (!names.includes(name)) return;
      links.forEach((a) => {
        const on = a.getAttribute("href") === `#${name}`;
        a.classList.toggle("active", on);
        a.setAttribute("aria-selected", on ? "true" : "false");
      });
      names.forEach((n) => {
        const panel = document.getElementById(n);
        if (panel) panel.classList.toggle("active", n === name);
      });
      if (push) history.replaceState(null, "", `${location.pathname}${location.search}#tab-${name}`);
    }

    links.forEach((a) => {
      a.addEventListener("click", (e) => {
        e.preventDefault();
        show(a.getAttribute("href").slice(1), true);
      });
    });
    const hash = location.hash.replace(/^#(tab-)?/, "");
    const activity = document.querySelector("#activity .tl-item");
    show(names.includes(hash) ? hash : activity ? "activity" : "events", false);
  }

  // Same look as the server's preview: {"a": 1, "b": [2, 3]}. JSON strings hold no raw
  // newlines, so every newline of the indented form is structure.
  function jsonPreview(value) {
    let text = JSON.stringify(value, null, 1);
    if (text === undefined) text = "null";
    text = text.replace(/([[{])\n\s*/g, "$1").replace(/\n\s*([\]}])/g, "$1").replace(/\n\s*/g, " ");
    return text.length <= 90 ? text : `${text.slice(0, 89)}…`;
  }

  function eventRow(event) {
    const tr = document.createElement("tr");
    tr.dataset.seq = String(event.seq);
    tr.className = "is-new";
    const cell = (className) => {
      const td = document.createElement("td");
      if (className) td.className = className;
      tr.appendChild(td);
      return td;
    };
    cell("num mono").textContent = String(event.seq);
    cell("nowrap").appendChild(timeElement(event.time));
    const tag = document.createElement("span");
    tag.className = "tag tag-type";
    tag.textContent = event.type;
    cell().appendChild(tag);
    cell("col-page mono small").textContent = event.pageId || "—";
    const details = document.createElement("details");
    const summary = document.createElement("summary");
    summary.className = "mono";
    summary.textContent = jsonPreview(event.data);
    const pre = document.createElement("pre");
    pre.className = "code";
    pre.textContent = JSON.stringify(event.data, null, 2);
    details.append(summary, pre);
    cell("col-data").appendChild(details);
    return tr;
  }

  // Live events: follow the run's SSE stream and append what arrives.
  function liveEvents() {
    const table = document.querySelector("table[data-live-events]");
    const indicator = document.querySelector("[data-live-indicator]");
    if (!table || !window.EventSource) return;
    const tbody = table.tBodies[0];
    const empty = document.querySelector("[data-events-empty]");
    const counters = document.querySelectorAll("[data-event-count]");
    const total = document.querySelector("[data-total-events]");
    let lastSeq = parseInt(table.dataset.after, 10) || 0;

    const setState = (state, text) => {
      if (!indicator) return;
      indicator.dataset.state = state;
      indicator.textContent = text;
    };

    const url = new URL(table.dataset.streamUrl, location.href);
    url.searchParams.set("after", String(lastSeq));
    if (table.dataset.type) url.searchParams.set("type", table.dataset.type);
    const source = new EventSource(url.toString());

    source.addEventListener("open", () => setState("live", "Live"));
    source.addEventListener("event", (message) => {
      let event;
      try { event = JSON.parse(message.data); } catch (e) { return; }
      if (typeof event.seq !== "number" || event.seq <= lastSeq) return;
      lastSeq = event.seq;
      tbody.appendChild(eventRow(event));
      if (empty) empty.hidden = true;
      counters.forEach((el) => { el.textContent = String((parseInt(el.textContent, 10) || 0) + 1); });
      if (total && event.seq > (parseInt(total.textContent, 10) || 0)) total.textContent = String(event.seq);
    });
    source.addEventListener("end", (message) => {
      source.close();
      setState("ended", "Run ended");
      let info = {};
      try { info = JSON.parse(message.data || "{}"); } catch (e) { /* keep the pill */ }
      const pill = document.querySelector("[data-run-status] .pill");
      if (pill && typeof info.status === "string" && /^[a-z_]+$/.test(info.status)) {
        pill.className = `pill pill-${info.status}`;
        pill.lastChild.textContent = info.status;
      }
    });
    source.addEventListener("error", () => {
      if (indicator && indicator.dataset.state === "ended") return;
      if (source.readyState === EventSource.CLOSED) setState("offline", "Offline");
      else setState("connecting", "Reconnecting…");
    });
    window.addEventListener("pagehide", () => source.close());
  }

  function init() {
    document.querySelectorAll("time[data-abs]").forEach(localizeTime);
    autosubmit();
    copyButtons();
    confirmForms();
    tabs();
    liveEvents();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
