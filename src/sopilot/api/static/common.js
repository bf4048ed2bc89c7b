// Shared by the console pages: the API key (kept in sessionStorage, asked for when the server wants one)
// and fetch helpers (JSON, and server-sent events) that turn the API's errors into messages people can act on.

import { sseEvents } from "/static/sse.js";

const KEY_NAME = "sopilot.apiKey";

export function apiKey() {
  return sessionStorage.getItem(KEY_NAME) || "";
}

export function forgetKey() {
  sessionStorage.removeItem(KEY_NAME);
}

let pendingAsk = null;

/** Ask for the API key in the page's key dialog; resolves true when one was given. Callers that ask while
 * the dialog is open share its answer. */
export function askForKey(reason) {
  if (!pendingAsk) {
    pendingAsk = showKeyDialog(reason).finally(() => {
      pendingAsk = null;
    });
  }
  return pendingAsk;
}

function showKeyDialog(reason) {
  const dialog = document.getElementById("key-dialog");
  const input = document.getElementById("key-input");
  const note = document.getElementById("key-reason");
  note.textContent = reason || "This server needs an API key.";
  input.value = "";
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        const key = input.value.trim();
        if (dialog.returnValue === "save" && key) {
          sessionStorage.setItem(KEY_NAME, key);
          resolve(true);
        } else {
          resolve(false);
        }
      },
      { once: true },
    );
    dialog.showModal();
    input.focus();
  });
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function errorMessage(status, body) {
  const err = body && (body.error || body);
  if (err && typeof err === "object") {
    const text = err.message || err.detail || "";
    const fix = err.fix ? ` ${err.fix}` : "";
    if (typeof text === "string" && text) return [err.code || String(status), text + fix];
    if (Array.isArray(err.detail)) return ["invalid_request", err.detail.map((d) => d.msg).join("; ")];
  }
  return [String(status), `The server answered ${status}.`];
}

/** JSON from the API; a 401 asks for the key (saying why) until one works or the agent cancels
 * (``askKey: false``: fail at once, for calls the page can do without). */
export async function api(path, { method = "GET", body, askKey = true } = {}) {
  const response = await send(path, { method, body, askKey, accept: "application/json" });
  try {
    return await response.json();
  } catch {
    return null;
  }
}

/** A POST answered with server-sent events (``stream: true``): ``onPassages(data)`` when the search is done,
 * ``onDelta(text)`` for each piece of the draft as it is written, then the ``answer`` event's data is returned.
 * A server that answers JSON instead (an old server, or a proxy that buffers) is read as the JSON answer. */
export async function apiStream(path, body, { onPassages = () => {}, onDelta = () => {} } = {}) {
  const response = await send(path, {
    method: "POST",
    body: { ...body, stream: true },
    askKey: true,
    accept: "text/event-stream, application/json;q=0.5",
  });
  if (!(response.headers.get("Content-Type") || "").startsWith("text/event-stream")) return await response.json();
  for await (const { event, data } of sseEvents(response.body)) {
    const value = JSON.parse(data);
    if (event === "passages") onPassages(value);
    else if (event === "delta") onDelta(String(value.text ?? ""));
    else if (event === "answer") return value;
    else if (event === "error") {
      const [code, message] = errorMessage(500, value);
      throw new ApiError(500, code, message);
    }
  }
  throw new ApiError(0, "stream_ended", "The answer stream ended before the draft was finished; ask again.");
}

/** The response to a request once it is ok; a 401 asks for the key (see ``api``), other errors throw. */
async function send(path, { method, body, askKey, accept }) {
  for (;;) {
    const headers = { Accept: accept };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const key = apiKey();
    if (key) headers.Authorization = `Bearer ${key}`;
    const response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.ok) return response;
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    const [code, message] = errorMessage(response.status, data);
    if (response.status === 401 && askKey) {
      if (apiKey() === key) forgetKey();
      if (await askForKey(message)) continue;
    }
    throw new ApiError(response.status, code, message);
  }
}

/** The console's page for an SOP section. */
export function sopUrl(path, anchor) {
  const url = "/sop/" + path.split("/").map(encodeURIComponent).join("/");
  return anchor ? `${url}#${encodeURIComponent(anchor)}` : url;
}

/** An element with text (never HTML) and optional attributes. */
export function el(tag, text, attrs = {}) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  return node;
}

export function headingPath(value) {
  if (Array.isArray(value)) return value.join(" › ");
  return String(value || "").split(" > ").join(" › ");
}
