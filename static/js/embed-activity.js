// bctrl activity embed: the run's activity items from the lease's SSE stream.
//
// The stream (data-stream-url) sends every item first (`activity`), then new ones and
// those whose content changed (`activity.updated`, same id), and ends with `end`:
// {status} when the run has ended and everything was sent, or {reason, message} when
// the lease stopped opening it (revoked, expired): the page then says so and closes
// the stream, so the browser does not reconnect. A connect that is refused (the link
// was never valid, or no longer is) fails the EventSource; the page says so.
(function () {
  "use strict";

  const root = document.querySelector("[data-embed-activity]");
  if (!root || !window.EventSource) return;
  const list = root.querySelector("[data-activity-list]");
  const status = root.querySelector("[data-activity-status]");
  const count = root.querySelector("[data-activity-count]");
  const rows = new Map(); // item id -> <li>
  // The live views list newest first, so that what happens now is in sight.
  const newestFirst = root.hasAttribute("data-newest-first");
  let finished = false;

  function say(text, state) {
    status.textContent = text;
    if (state) root.dataset.state = state;
  }

  function durationText(ms) {
    if (typeof ms !== "number" || ms < 0) return "";
    if (ms < 1000) return `${ms} ms`;
    const s = ms / 1000;
    if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
    return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  }

  function element(tag, className, text) {
    const el = document.createElement(tag);
    if (className) el.className = className;
    if (text !== undefined) el.textContent = text;
    return el;
  }

  function itemRow(item, depth) {
    const severity = ["info", "warning", "error"].includes(item.severity) ? item.severity : "info";
    const li = element("li", `tl-item sev-${severity}`);
    li.dataset.id = String(item.id || "");
    li.dataset.type = String(item.type || "");
    li.appendChild(element("span", "tl-dot")).setAttribute("aria-hidden", "true");
    const body = li.appendChild(element("div", "tl-body"));
    const line = body.appendChild(element("div", "tl-line"));
    line.appendChild(element("span", "tl-message", String(item.message || item.type || "")));
    if (item.status) {
      const pill = String(item.status).replace(/[^a-z0-9_-]/gi, "");
      line.appendChild(element("span", `pill pill-${pill}`, String(item.status)));
    }
    const duration = durationText(item.durationMs);
    if (duration) line.appendChild(element("span", "tl-duration", duration));
    if (item.time) {
      const when = new Date(item.time);
      if (!Number.isNaN(when.getTime())) {
        const time = line.appendChild(element("time", "tl-time", when.toLocaleTimeString()));
        time.dateTime = when.toISOString();
      }
    }
    body.appendChild(element("div", "tl-type mono small muted", String(item.type || "")));
    const children = Array.isArray(item.children) ? item.children : [];
    if (children.length && depth < 5) {
      const details = body.appendChild(element("details", "tl-children"));
      details.appendChild(element("summary", "", `${children.length} detail${children.length === 1 ? "" : "s"}`));
      const nested = details.appendChild(element("ol", "timeline nested"));
      children.forEach((child) => nested.appendChild(itemRow(child, depth + 1)));
    }
    return li;
  }

  function show(item) {
    const row = itemRow(item, 0);
    const previous = rows.get(row.dataset.id);
    if (previous) {
      const open = previous.querySelector("details");
      if (open && open.open && row.querySelector("details")) row.querySelector("details").open = true;
      previous.replaceWith(row);
    } else if (newestFirst) {
      list.prepend(row);
    } else {
      list.appendChild(row);
    }
    rows.set(row.dataset.id, row);
    count.textContent = String(rows.size);
  }

  function parse(event) {
    try {
      return JSON.parse(event.data);
    } catch (error) {
      return null;
    }
  }

  const source = new EventSource(root.dataset.streamUrl);
  source.addEventListener("open", () => {
    if (root.dataset.state === "connecting") say("", "open");
  });
  source.addEventListener("activity", (event) => {
    const item = parse(event);
    if (item) show(item);
  });
  source.addEventListener("activity.updated", (event) => {
    const item = parse(event);
    if (item) show(item);
  });
  source.addEventListener("end", (event) => {
    const data = parse(event) || {};
    finished = true;
    source.close();
    if (data.reason) {
      say(data.message || "This viewer link no longer opens this view.", "refused");
    } else {
      say("The run has ended.", "ended");
    }
    if (!rows.size && !data.reason) say("The run has ended. It has no activity.", "ended");
  });
  source.addEventListener("error", () => {
    if (finished) return;
    if (source.readyState === EventSource.CLOSED) {
      // A refused connect: the link is no longer valid (the status is not readable here).
      say("This viewer link no longer opens this view.", "refused");
    } else {
      say("Reconnecting…");
    }
  });
})();
