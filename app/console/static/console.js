// Hookstream console: fills the server-rendered pages from the REST API (/v1/...).
// The API key lives in sessionStorage (this tab only; never in a URL or a cookie) and goes
// out only in the Authorization header. Text from the API is always set with textContent,
// never as HTML.
"use strict";

const KEY = "hookstream.apiKey";
const TAIL_MS = 2000;
const TAIL_ROWS = 200;
const body = document.body;
const ROOT = body.dataset.root || "";
const PREFIX = body.dataset.prefix || "/console";

// ---- helpers -----------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message, field) {
    super(message);
    this.status = status;
    this.field = field;
  }
}

function apiKey() {
  return sessionStorage.getItem(KEY);
}

function signOut(reason) {
  sessionStorage.removeItem(KEY);
  const next = location.pathname + location.search;
  const params = new URLSearchParams({ next });
  if (reason) params.set("reason", reason);
  location.assign(`${PREFIX}/signin?${params}`);
}

async function api(method, path, payload, key = apiKey()) {
  const headers = { Authorization: `Bearer ${key}`, Accept: "application/json" };
  const init = { method, headers, credentials: "omit", cache: "no-store" };
  if (payload !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(payload);
  }
  let response;
  try {
    response = await fetch(ROOT + path, init);
  } catch (err) {
    throw new ApiError(0, "The API did not answer (network error).", null);
  }
  if (response.status === 204) return null;
  let data = null;
  try {
    data = await response.json();
  } catch (err) {
    data = null;
  }
  if (!response.ok) {
    const error = (data && data.error) || {};
    throw new ApiError(response.status, error.message || `HTTP ${response.status}`, error.field || null);
  }
  return data;
}

// Runs an API call on behalf of a page; a refused key sends the person to sign in again.
async function guarded(promise) {
  try {
    return await promise;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      signOut("expired");
      return new Promise(() => {}); // navigation under way
    }
    throw err;
  }
}

function $(selector, root = document) {
  return root.querySelector(selector);
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name === "className") node.className = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function flash(message, kind = "info") {
  const box = $("#flash");
  box.replaceChildren(el("p", { className: `flash ${kind}`, text: message }));
}

function showError(target, err) {
  const node = typeof target === "string" ? $(target) : target;
  node.textContent = err instanceof Error ? err.message : String(err);
}

function when(value) {
  if (!value) return "—";
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return date.toLocaleString(undefined, {
    year: "numeric", month: "short", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
}

function timeEl(value) {
  return value ? el("time", { datetime: value, text: when(value) }) : "—";
}

function statusBadge(status) {
  return el("span", { className: `badge ${status}`, text: status });
}

function link(path, text) {
  return el("a", { href: PREFIX + path, text });
}

// datetime-local values are local wall-clock times; the API wants RFC 3339.
function isoFromLocal(value) {
  if (!value) return null;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}

// The other way round: an RFC 3339 instant as a datetime-local value (local wall clock).
function localInput(iso) {
  const date = new Date(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

function splitPatterns(text) {
  return text.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);
}

// Health as webhook reads carry it (`health` on GET of one webhook, `disabled_reason` on
// every read): shown when present, so the console also works against an API without it.
function percent(rate) {
  return `${(rate * 100).toFixed(rate === 1 || rate === 0 ? 0 : 1)}%`;
}

function healthParts(webhook) {
  const parts = [];
  const health = webhook.health || {};
  if (typeof health.success_rate === "number") parts.push(`${percent(health.success_rate)} success`);
  const last = [health.last_success_at, health.last_failure_at].filter(Boolean).sort().pop();
  if (last) parts.push(`last attempt ${when(last)}`);
  if (webhook.disabled_reason) parts.push(`disabled: ${webhook.disabled_reason}`);
  return parts;
}

function healthPairs(webhook) {
  const pairs = [];
  if (webhook.disabled_reason) {
    pairs.push(["Disabled", `${webhook.disabled_reason}${webhook.disabled_at ? ` (since ${when(webhook.disabled_at)})` : ""}`]);
  }
  const h = webhook.health;
  if (!h) return pairs;
  const rate = typeof h.success_rate === "number"
    ? `${percent(h.success_rate)} of ${h.recent_attempts} recent attempts (${h.recent_failures} failed)`
    : "no recent attempts";
  pairs.push(["Success rate", rate]);
  if (h.consecutive_failures) {
    pairs.push(["Failing", `${h.consecutive_failures} failed attempts in a row${h.failing_since ? ` since ${when(h.failing_since)}` : ""}`]);
  }
  pairs.push(["Last success", timeEl(h.last_success_at)]);
  if (h.last_failure_at) {
    // last_status_code is the latest attempt's, which may be a later success: not shown here.
    pairs.push(["Last failure", el("span", {}, timeEl(h.last_failure_at), h.last_error ? ` — ${h.last_error}` : "")]);
  }
  return pairs;
}

let catalogue = null;
async function eventTypes() {
  if (catalogue === null) {
    const data = await guarded(api("GET", "/v1/event-types"));
    catalogue = data.event_types;
  }
  return catalogue;
}

// Fills a fieldset of event-type checkboxes (the catalogue) plus a free-text field for
// wildcards and types outside it; `selected` pre-ticks / pre-fills.
async function fillTypes(fieldset, selected = []) {
  const types = await eventTypes();
  const names = new Set(types.map((t) => t.type));
  const box = $(".checks", fieldset);
  const scope = fieldset.dataset.types;
  box.replaceChildren(
    ...types.map((t, i) => {
      const id = `${scope}-type-${i}`;
      return el(
        "div",
        { className: "check" },
        el("input", { type: "checkbox", id, value: t.type, checked: selected.includes(t.type) }),
        el("label", { for: id, title: t.description || null }, el("code", { text: t.type })),
      );
    }),
  );
  $("input[type=text]", fieldset).value = selected.filter((s) => !names.has(s)).join(", ");
}

function chosenTypes(fieldset) {
  const ticked = [...fieldset.querySelectorAll("input[type=checkbox]:checked")].map((i) => i.value);
  const typed = splitPatterns($("input[type=text]", fieldset).value);
  return [...new Set([...ticked, ...typed])];
}

async function withButton(button, action) {
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    return await action();
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}

// ---- pages -------------------------------------------------------------------------------

// Where sign-in leads: the ?next= page if it is a console page of this site (a crafted link
// must not send the key-holder elsewhere), else the webhooks. URL() resolves "..", "%2e%2e"
// and "//host" the way the browser would.
function afterSignIn(next) {
  const fallback = `${PREFIX}/webhooks`;
  if (!next) return fallback;
  let target;
  try {
    target = new URL(next, location.origin);
  } catch (err) {
    return fallback;
  }
  const ok = target.origin === location.origin && target.pathname.startsWith(`${PREFIX}/`)
    && !target.pathname.startsWith(`${PREFIX}/signin`);
  return ok ? target.pathname + target.search : fallback;
}

async function signinPage() {
  const form = $("#signin-form");
  const input = $("#api-key");
  const params = new URLSearchParams(location.search);
  if (params.get("reason") === "expired") {
    $("#signin-error").textContent = "The API refused the key: sign in again.";
  }
  input.focus();
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = input.value.trim();
    if (!key) {
      $("#signin-error").textContent = "Enter an API key.";
      input.setAttribute("aria-invalid", "true");
      return;
    }
    try {
      await api("GET", "/v1/event-types", undefined, key); // any authenticated read checks it
    } catch (err) {
      input.setAttribute("aria-invalid", "true");
      $("#signin-error").textContent =
        err.status === 401 ? "The API refused this key." : err.message;
      input.select();
      return;
    }
    sessionStorage.setItem(KEY, key);
    input.value = "";
    location.assign(afterSignIn(params.get("next")));
  });
}

async function webhooksPage() {
  const tbody = $("#webhooks tbody");
  const more = $("#webhooks-more");
  let cursor = null;

  function row(w) {
    const health = healthParts(w);
    return el(
      "tr",
      { "data-id": w.id },
      el("td", {}, link(`/webhooks/${encodeURIComponent(w.id)}`, w.id),
        w.description ? el("div", { className: "muted", text: w.description }) : null),
      el("td", { className: "url", text: w.url }),
      el("td", {}, ...w.events.flatMap((e, i) => [i ? " " : null, el("code", { text: e })])),
      el("td", {}, statusBadge(w.active ? "active" : "paused")),
      el("td", { text: health.length ? health.join(" · ") : "—" }),
    );
  }

  // A list carries no health (a GET of one webhook does): read it for the rows shown, a few
  // at a time, and fill each row's cell as it comes. A failure leaves the cell as it was.
  async function fillHealth(webhooks, rows) {
    const queue = webhooks.map((w, i) => [w, rows[i]]).filter(([w]) => !w.health);
    const worker = async () => {
      for (let item = queue.shift(); item; item = queue.shift()) {
        const [w, tr] = item;
        try {
          const full = await api("GET", `/v1/webhooks/${encodeURIComponent(w.id)}`);
          const parts = healthParts(full);
          if (parts.length) tr.cells[4].textContent = parts.join(" · ");
        } catch (err) {
          // the row keeps what the list said
        }
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
  }

  async function load(reset) {
    const params = new URLSearchParams({ limit: "50" });
    if (!reset && cursor) params.set("cursor", cursor);
    const data = await guarded(api("GET", `/v1/webhooks?${params}`));
    if (reset) tbody.replaceChildren();
    const rows = data.webhooks.map(row);
    tbody.append(...rows);
    fillHealth(data.webhooks, rows);
    cursor = data.next_cursor;
    more.hidden = !cursor;
    $("#webhooks-empty").hidden = tbody.children.length > 0;
  }

  more.addEventListener("click", () => withButton(more, () => load(false)).catch((e) => flash(e.message, "error")));
  const fieldset = $("fieldset[data-types=create]");
  await Promise.all([load(true), fillTypes(fieldset, [])]);

  $("#create-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const error = $("#create-error");
    error.textContent = "";
    const payload = { url: $("#create-url").value.trim(), events: chosenTypes(fieldset) };
    const description = $("#create-description").value.trim();
    if (description) payload.description = description;
    if (!payload.events.length) {
      error.textContent = "Choose at least one event type.";
      return;
    }
    try {
      const created = await withButton($("button[type=submit]", form), () =>
        guarded(api("POST", "/v1/webhooks", payload)));
      $("#created-link").textContent = created.id;
      $("#created-link").href = `${PREFIX}/webhooks/${encodeURIComponent(created.id)}`;
      $("#created-secret").textContent = created.secret;
      const notice = $("#created");
      notice.hidden = false;
      notice.focus();
      form.reset();
      await load(true);
    } catch (err) {
      showError(error, err);
      if (err.field === "url") $("#create-url").focus();
    }
  });
}

async function webhookPage() {
  const id = body.dataset.webhookId;
  const base = `/v1/webhooks/${encodeURIComponent(id)}`;
  let webhook = null;

  function summary(w) {
    const pairs = [
      ["URL", el("span", { className: "url", text: w.url })],
      ["State", statusBadge(w.active ? "active" : "paused")],
      ["Event types", el("span", {}, ...w.events.flatMap((e, i) => [i ? " " : null, el("code", { text: e })]))],
      ["Description", w.description || "—"],
      ["Created", timeEl(w.created_at)],
      ["Updated", timeEl(w.updated_at)],
    ];
    pairs.splice(2, 0, ...healthPairs(w));
    if (w.filter) pairs.push(["Payload filter", el("code", { text: JSON.stringify(w.filter) })]);
    $("#summary").replaceChildren(
      ...pairs.flatMap(([name, value]) => [el("dt", { text: name }), el("dd", {}, value)]),
    );
    const toggle = $("#toggle-active");
    toggle.textContent = w.active ? "Pause" : "Resume";
    toggle.disabled = false;
    $("#send-test").disabled = false;
    $("#reveal-secret").disabled = false;
  }

  async function refresh() {
    webhook = await guarded(api("GET", base));
    summary(webhook);
    return webhook;
  }

  try {
    await refresh();
  } catch (err) {
    flash(err.message, "error");
    return;
  }
  const deliveries = deliveriesTable(base);
  await fillTypes($("fieldset[data-types=edit]"), webhook.events);
  $("#type-list").replaceChildren(...(await eventTypes()).map((t) => el("option", { value: t.type })));

  $("#toggle-active").addEventListener("click", (event) => withButton(event.currentTarget, async () => {
    try {
      const changed = await guarded(api("PATCH", base, { active: !webhook.active }));
      // The PATCH answer has no health (only a GET has): keep showing the last one read.
      webhook = { health: webhook.health, ...changed };
      summary(webhook);
      // Re-enabling an auto-disabled webhook answers how to redeliver what failed meanwhile.
      const since = changed.recover && changed.recover.body && changed.recover.body.since;
      if (since) {
        $("#r-since").value = localInput(since);
        $("#recover-result").textContent = "Failed meanwhile? The range since it was disabled is filled in below.";
      }
      flash(webhook.active ? "Webhook resumed: it receives events again." : "Webhook paused: it receives no events until resumed.");
    } catch (err) {
      flash(err.message, "error");
    }
  }));

  $("#send-test").addEventListener("click", (event) => withButton(event.currentTarget, async () => {
    try {
      const sent = await guarded(api("POST", `${base}/test`));
      flash(`Test event ${sent.event_id} enqueued (delivery ${sent.delivery_id}).`);
      await deliveries.reload();
    } catch (err) {
      flash(err.message, "error");
    }
  }));

  const reveal = $("#reveal-secret");
  reveal.addEventListener("click", () => withButton(reveal, async () => {
    const box = $("#secret-box");
    if (!box.hidden) {
      box.hidden = true;
      $("#secret").textContent = "";
      reveal.textContent = "Reveal secret";
      reveal.setAttribute("aria-expanded", "false");
      return;
    }
    try {
      const data = await guarded(api("GET", `${base}/secret`));
      $("#secret").textContent = data.secret;
      box.hidden = false;
      reveal.textContent = "Hide secret";
      reveal.setAttribute("aria-expanded", "true");
    } catch (err) {
      flash(err.message, "error");
    }
  }));

  // Rotation is offered only where this API has it (another change adds the route).
  rotationRoute().then((path) => {
    if (!path) return;
    const rotate = $("#rotate-secret");
    rotate.hidden = false;
    rotate.addEventListener("click", () => withButton(rotate, async () => {
      if (!confirm("Rotate the signing secret? Receivers must learn the new one.")) return;
      try {
        const data = await guarded(api("POST", `${base}/secret/rotate`));
        const until = (data && data.previous_secrets_expire_at) || [];
        flash(until.length
          ? `Secret rotated. The previous one keeps signing beside it until ${when(until[0])}.`
          : "Secret rotated.");
        if (data && data.secret) {
          $("#secret").textContent = data.secret;
          $("#secret-box").hidden = false;
          reveal.textContent = "Hide secret";
          reveal.setAttribute("aria-expanded", "true");
        }
      } catch (err) {
        flash(err.message, "error");
      }
    }));
  });

  $("#types-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const error = $("#types-error");
    error.textContent = "";
    const events = chosenTypes($("fieldset[data-types=edit]"));
    if (!events.length) {
      error.textContent = "Choose at least one event type.";
      return;
    }
    try {
      const changed = await withButton($("button[type=submit]", event.currentTarget), () =>
        guarded(api("PATCH", base, { events })));
      webhook = { health: webhook.health, ...changed };
      summary(webhook);
      flash("Event types saved.");
    } catch (err) {
      showError(error, err);
    }
  });

  $("#recover-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const result = $("#recover-result");
    const since = isoFromLocal($("#r-since").value);
    if (!since) {
      result.textContent = "Choose the start of the time range.";
      return;
    }
    const payload = { since };
    const until = isoFromLocal($("#r-until").value);
    if (until) payload.until = until;
    try {
      const data = await withButton($("button[type=submit]", event.currentTarget), () =>
        guarded(api("POST", `${base}/recover`, payload)));
      result.textContent = `${data.count} failed ${data.count === 1 ? "delivery" : "deliveries"} re-enqueued.`;
      await deliveries.reload();
    } catch (err) {
      showError(result, err);
    }
  });

  await deliveries.reload();
}

function deliveriesTable(base) {
  const tbody = $("#deliveries tbody");
  const next = $("#next-page");
  const first = $("#first-page");
  const tail = $("#live-tail");
  const tailStatus = $("#tail-status");
  let cursor = null; // the cursor of the page shown (null: the newest)
  let nextCursor = null;
  let timer = null;

  function filters() {
    const params = new URLSearchParams({ limit: "25" });
    const status = $("#f-status").value;
    const type = $("#f-type").value.trim();
    const since = isoFromLocal($("#f-since").value);
    const until = isoFromLocal($("#f-until").value);
    if (status) params.set("status", status);
    if (type) params.set("event_type", type);
    if (since) params.set("since", since);
    if (until) params.set("until", until);
    return params;
  }

  function row(d, fresh) {
    return el(
      "tr",
      { "data-id": d.id, "data-status": d.status, className: fresh ? "fresh" : null },
      el("td", {}, timeEl(d.created_at)),
      el("td", {}, el("code", { className: "nowrap", text: d.event_type })),
      el("td", {}, statusBadge(d.status), d.error ? el("div", { className: "muted", text: d.error }) : null),
      el("td", { text: d.status_code ?? "—" }),
      el("td", { text: d.attempts }),
      el("td", {}, link(`/deliveries/${encodeURIComponent(d.id)}`, d.id)),
      el("td", {}, el("code", { text: d.event_id })),
    );
  }

  // One row per delivery, its newest listing (a page may list a delivery twice while its
  // records are being merged).
  function unique(items) {
    const seen = new Set();
    return items.filter((d) => !seen.has(d.id) && seen.add(d.id));
  }

  async function fetchPage(pageCursor) {
    const params = filters();
    if (pageCursor) params.set("cursor", pageCursor);
    return guarded(api("GET", `${base}/deliveries?${params}`));
  }

  async function show(pageCursor) {
    const data = await fetchPage(pageCursor);
    cursor = pageCursor;
    nextCursor = data.next_cursor;
    tbody.replaceChildren(...unique(data.deliveries).map((d) => row(d, false)));
    next.hidden = !nextCursor;
    first.hidden = !cursor;
    $("#deliveries-empty").hidden = data.deliveries.length > 0;
  }

  // One poll of the live tail: rows already shown are updated in place (a pending delivery
  // becomes success or failed), newer ones are added on top.
  async function poll() {
    if (cursor) return; // the tail follows the newest page only
    const data = await fetchPage(null);
    const shown = new Map([...tbody.children].map((tr) => [tr.dataset.id, tr]));
    const added = [];
    for (const d of unique(data.deliveries)) {
      const old = shown.get(d.id);
      if (old) {
        const fresh = old.classList.contains("fresh");
        old.replaceWith(row(d, fresh));
      } else {
        added.push(row(d, true));
      }
    }
    if (added.length) {
      tbody.prepend(...added);
      // A long tail keeps the newest rows only; "Older deliveries" pages back past them.
      while (tbody.rows.length > TAIL_ROWS) tbody.lastElementChild.remove();
      tailStatus.textContent = `${added.length} new ${added.length === 1 ? "delivery" : "deliveries"} at ${when(new Date().toISOString())}.`;
    }
    $("#deliveries-empty").hidden = tbody.children.length > 0;
    if (!nextCursor) nextCursor = data.next_cursor;
    next.hidden = !nextCursor;
  }

  function schedule() {
    clearTimeout(timer);
    if (!tail.checked) return;
    timer = setTimeout(async () => {
      try {
        await poll();
      } catch (err) {
        tailStatus.textContent = `Live tail: ${err.message}`;
      }
      schedule();
    }, TAIL_MS);
  }

  tail.addEventListener("change", async () => {
    if (tail.checked) {
      tailStatus.textContent = "Live tail on: new deliveries appear at the top.";
      if (cursor) await show(null);
    } else {
      tailStatus.textContent = "Live tail off.";
    }
    schedule();
  });
  $("#filters").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await show(null);
    } catch (err) {
      flash(err.message, "error");
    }
  });
  next.addEventListener("click", () => withButton(next, () => show(nextCursor)).catch((e) => flash(e.message, "error")));
  first.addEventListener("click", () => withButton(first, () => show(null)).catch((e) => flash(e.message, "error")));
  document.addEventListener("visibilitychange", () => (document.hidden ? clearTimeout(timer) : schedule()));

  return {
    reload: () => show(null).catch((err) => flash(err.message, "error")),
  };
}

async function rotationRoute() {
  try {
    const response = await fetch(`${ROOT}/openapi.json`, { credentials: "omit" });
    const spec = await response.json();
    const path = "/v1/webhooks/{id}/secret/rotate";
    return spec.paths && spec.paths[path] && spec.paths[path].post ? path : null;
  } catch (err) {
    return null;
  }
}

async function deliveryPage() {
  const id = body.dataset.deliveryId;
  const base = `/v1/deliveries/${encodeURIComponent(id)}`;
  const retry = $("#retry");
  let timer = null;

  function headersList(headers) {
    const entries = Object.entries(headers || {});
    if (!entries.length) return "—";
    return el(
      "details",
      {},
      el("summary", { text: `${entries.length} headers` }),
      el("dl", { className: "headers" },
        ...entries.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })])),
    );
  }

  function render(d) {
    const back = $("#back-to-webhook");
    back.href = `${PREFIX}/webhooks/${encodeURIComponent(d.webhook_id)}`;
    back.textContent = `← Webhook ${d.webhook_id}`;
    const pairs = [
      ["Status", statusBadge(d.status)],
      ["Event", el("span", {}, el("a", { href: `${PREFIX}/events?id=${encodeURIComponent(d.event_id)}`, text: d.event_id }), " ", el("code", { text: d.event_type }))],
      ["Webhook", link(`/webhooks/${encodeURIComponent(d.webhook_id)}`, d.webhook_id)],
      ["Attempts", String(d.attempts)],
      ["Last HTTP status", d.status_code ?? "—"],
      ["Created", timeEl(d.created_at)],
      ["Updated", timeEl(d.updated_at)],
    ];
    if (d.delivered_at) pairs.push(["Delivered", timeEl(d.delivered_at)]);
    if (d.next_attempt_at) pairs.push(["Next attempt", timeEl(d.next_attempt_at)]);
    if (d.error) pairs.push(["Error", d.error]);
    $("#summary").replaceChildren(
      ...pairs.flatMap(([name, value]) => [el("dt", { text: name }), el("dd", {}, value)]),
    );
    $("#attempts tbody").replaceChildren(
      ...d.attempt_log.map((a) => el(
        "tr",
        { "data-number": a.number, "data-outcome": a.outcome },
        el("td", { text: a.number }),
        el("td", {}, timeEl(a.started_at)),
        el("td", { text: `${a.duration_ms} ms` }),
        el("td", {}, statusBadge(a.outcome)),
        el("td", { text: a.status_code ?? "—" }),
        el("td", { text: a.error || "—" }),
        el("td", {}, a.response_excerpt ? el("pre", { text: a.response_excerpt }) : "—"),
        el("td", {}, headersList(a.request_headers)),
      )),
    );
    $("#attempts-empty").hidden = d.attempt_log.length > 0;
    retry.disabled = false;
  }

  async function load() {
    const d = await guarded(api("GET", base));
    render(d);
    return d;
  }

  // Follow the delivery until `expected` attempts are logged and it is no longer pending
  // (after a retry, or while the log is behind its delivery), for a minute at most.
  function follow(expected, until, announce) {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      try {
        const d = await load();
        if (d.attempt_log.length >= expected && d.status !== "pending") {
          if (announce) $("#retry-result").textContent = `Attempt ${expected} logged: ${d.status}.`;
          return;
        }
      } catch (err) {
        $("#retry-result").textContent = err.message;
      }
      if (Date.now() < until) follow(expected, until, announce);
    }, TAIL_MS);
  }

  try {
    const d = await load();
    if (d.status === "pending" || d.attempt_log.length < d.attempts) {
      follow(d.attempts, Date.now() + 60000, false);
    }
  } catch (err) {
    flash(err.message, "error");
    return;
  }
  $("#refresh").addEventListener("click", (event) => withButton(event.currentTarget, load).catch((e) => flash(e.message, "error")));
  retry.addEventListener("click", () => withButton(retry, async () => {
    try {
      const data = await guarded(api("POST", `${base}/retry`));
      $("#retry-result").textContent = `Attempt ${data.attempt} enqueued.`;
      follow(data.attempt, Date.now() + 60000, true);
    } catch (err) {
      $("#retry-result").textContent = err.message;
    }
  }));
}

async function eventsPage() {
  const form = $("#event-form");
  const input = $("#event-id");
  const error = $("#event-error");

  async function lookup(eventId) {
    error.textContent = "";
    input.removeAttribute("aria-invalid");
    try {
      const data = await guarded(api("GET", `/v1/events/${encodeURIComponent(eventId)}/deliveries`));
      $("#event-shown").textContent = data.event_id;
      $("#event-deliveries tbody").replaceChildren(...data.deliveries.map((d) => el(
        "tr",
        { "data-id": d.id },
        el("td", {}, link(`/webhooks/${encodeURIComponent(d.webhook_id)}`, d.webhook_id)),
        el("td", {}, link(`/deliveries/${encodeURIComponent(d.id)}`, d.id)),
        el("td", {}, statusBadge(d.status)),
        el("td", { text: d.status_code ?? "—" }),
        el("td", { text: d.attempts }),
        el("td", {}, timeEl(d.created_at)),
      )));
      $("#event-result").hidden = false;
    } catch (err) {
      $("#event-result").hidden = true;
      input.setAttribute("aria-invalid", "true");
      showError(error, err);
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const eventId = input.value.trim();
    if (!eventId) {
      error.textContent = "Enter an event id.";
      return;
    }
    // The event id (not the key) goes in the address, so a lookup can be bookmarked.
    history.replaceState(null, "", `?${new URLSearchParams({ id: eventId })}`);
    lookup(eventId);
  });
  const initial = new URLSearchParams(location.search).get("id");
  if (initial) {
    input.value = initial;
    await lookup(initial);
  } else {
    input.focus();
  }
}

async function eventTypesPage() {
  const types = await eventTypes();
  $("#event-types tbody").replaceChildren(...types.map((t) => el(
    "tr", {}, el("td", {}, el("code", { text: t.type })), el("td", { text: t.description || "—" }),
  )));
}

const PAGES = {
  signin: signinPage,
  webhooks: webhooksPage,
  webhook: webhookPage,
  delivery: deliveryPage,
  events: eventsPage,
  "event-types": eventTypesPage,
};

// On a phone each row is a card; every cell names its column (see console.css).
function labelCells(table) {
  const heads = [...table.querySelectorAll("thead th")].map((th) => th.textContent);
  for (const tr of table.tBodies[0].rows) {
    [...tr.cells].forEach((td, i) => td.setAttribute("data-label", heads[i] || ""));
  }
}

document.addEventListener("DOMContentLoaded", () => {
  for (const table of document.querySelectorAll("table")) {
    new MutationObserver(() => labelCells(table)).observe(table.tBodies[0], { childList: true });
  }
  const page = body.dataset.page;
  if (page !== "signin") {
    if (!apiKey()) {
      signOut();
      return;
    }
    $("#signout").addEventListener("click", () => {
      sessionStorage.removeItem(KEY);
      location.assign(`${PREFIX}/signin`);
    });
  }
  const run = PAGES[page];
  if (run) {
    run().then(
      () => body.setAttribute("data-ready", "true"),
      (err) => flash(err.message || String(err), "error"),
    );
  }
});
