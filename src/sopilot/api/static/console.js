// The agent console: ask, read the ranked passages, edit and copy the draft, give feedback.
// Passages and draft text are inserted as text (textContent, textarea value), never as HTML. When the server's
// drafter streams (a language model), the answer is read from server-sent events: the ranked passages as soon as
// the search is done, then the draft growing in the editor as it is written; the citations come with the final
// event. The extractive drafter's answer is plain JSON.

import { api, apiStream, askForKey, el, headingPath, sopUrl } from "/static/common.js";

const $ = (id) => document.getElementById(id);
const state = { answerId: null, original: "", sent: false, streams: null };

function setStatus(node, text, isError = false) {
  node.textContent = text;
  node.classList.toggle("error", isError);
}

function filters() {
  const out = {};
  const team = $("f-team").value.trim();
  const tag = $("f-tag").value.trim();
  const product = $("f-product").value.trim();
  if (team) out.team = [team];
  if (tag) out.tags = tag.split(",").map((t) => t.trim()).filter(Boolean);
  if (product) out.product = [product];
  out.status = [$("f-status").value];
  return out;
}

/** Source line breaks inside a paragraph dropped, so text wraps to the column; lists and tables keep theirs. */
function reflow(text) {
  return String(text || "").replace(/([^\n])\n(?!\s*(?:[-*+] |\d+[.)] |\||#|>|```|\n))/g, "$1 ");
}

/** The heading path below the SOP's title (the title is shown already). */
function sectionPath(value, title) {
  const parts = Array.isArray(value) ? value : String(value || "").split(" > ");
  const rest = parts[0] === title ? parts.slice(1) : parts;
  return headingPath(rest);
}

function renderPassages(passages) {
  const list = $("passages");
  list.replaceChildren();
  for (const p of passages || []) {
    const item = el("li");
    const head = el("div", null, { class: "item-head" });
    const title = el("a", p.title || p.path, { href: sopUrl(p.path, p.anchor), target: "_blank", rel: "opener" });
    title.className = "title";
    head.append(title);
    if (p.role) head.append(el("span", p.role, { class: "role" }));
    item.append(head);
    const meta = el("div", sectionPath(p.heading_path, p.title), { class: "meta section" });
    const where = el("div", `${p.path}${p.start_line ? `:${p.start_line}` : ""}`, { class: "meta" });
    if (typeof p.score === "number") where.append(` · score ${p.score.toFixed(3)}`);
    item.append(meta, where);
    item.append(el("pre", reflow(p.text), { class: "passage-text" }));
    list.append(item);
  }
  if (!list.children.length) list.append(el("li", "No passage matched these filters.", { class: "meta" }));
}

function renderCitations(citations) {
  const list = $("citations");
  list.replaceChildren();
  for (const c of citations || []) {
    const item = el("li");
    const head = el("div", null, { class: "item-head" });
    const link = el("a", c.title || c.path, { href: sopUrl(c.path, c.anchor), target: "_blank", rel: "opener" });
    link.className = "title";
    head.append(el("span", `[${c.n}]`, { class: "cite-n" }), link);
    const role = c.role === "escalation" ? "escalation" : c.section_role;
    if (role) head.append(el("span", role, { class: "role" }));
    item.append(head, el("div", sectionPath(c.heading_path, c.title), { class: "meta section" }));
    if (c.quote) item.append(el("p", c.quote, { class: "quote" }));
    list.append(item);
  }
  if (!list.children.length) list.append(el("li", "No citation.", { class: "meta" }));
}


function escalationText(esc) {
  if (!esc) return "";
  if (typeof esc === "string") return esc;
  const who = esc.channel ? `${esc.team} (${esc.channel})` : esc.team;
  return esc.when ? `${who}, when: ${esc.when}` : who;
}

function renderAnswer(data) {
  state.answerId = data.answer_id;
  state.original = data.text || "";
  state.sent = false;
  const editor = $("draft-text");
  editor.value = state.original;
  editor.disabled = false;
  editor.readOnly = false;
  $("comment").disabled = false;
  $("comment").value = "";
  for (const id of ["copy-button", "accept-button", "reject-button"]) $(id).disabled = false;
  updateVerdictLabel();

  const coverage = $("coverage");
  coverage.hidden = false;
  if (data.covered) {
    coverage.className = "coverage covered";
    coverage.textContent = "Covered by the SOPs. Check the draft against its citations before sending.";
  } else {
    coverage.className = "coverage uncovered";
    const reason = data.coverage_reason || "";
    coverage.textContent = `Not covered by the SOPs${reason ? `: ${reason}` : ""}. Follow the escalation path.`;
  }
  const flags = (data.review_flags || []).filter((f) => f.code !== "not_covered").map((f) => f.message);
  if (flags.length) coverage.textContent += ` Check before sending: ${flags.join("; ")}.`;
  const escalation = escalationText(data.escalation);
  $("escalation").hidden = !escalation;
  $("escalation").textContent = escalation ? `Escalation: ${escalation}` : "";
  renderPassages(data.passages);
  renderCitations(data.citations);
  setStatus($("feedback-status"), "");
}

function edited() {
  return $("draft-text").value !== state.original;
}

function updateVerdictLabel() {
  $("accept-button").textContent = edited() ? "Accept edited" : "Accept";
}

async function ask(event) {
  event?.preventDefault();
  const question = $("question").value.trim();
  if (!question) {
    setStatus($("status"), "Type or paste the user's question first.", true);
    $("question").focus();
    return;
  }
  const k = Number($("k").value) || 5;
  setStatus($("status"), "Searching the SOPs…");
  $("ask-button").disabled = true;
  const started = performance.now();
  const request = { query: question, k, tone: $("tone").value, filters: filters() };
  if (state.streams === null) await loadDrafter();
  try {
    const data = state.streams ? await askStreaming(request) : await api("/v1/answer", { method: "POST", body: request });
    renderAnswer(data);
    loadTeams();
    const seconds = ((performance.now() - started) / 1000).toFixed(2);
    const n = (data.passages || []).length;
    setStatus($("status"), `${n} passage${n === 1 ? "" : "s"} in ${seconds} s. Answer id ${data.answer_id}.`);
    $("draft-text").focus();
  } catch (error) {
    setStatus($("status"), error.message, true);
  } finally {
    $("ask-button").disabled = false;
    $("draft-section").removeAttribute("aria-busy");
  }
}

/** The previous answer cleared, then the draft's text appended to the editor as the model writes it (as the
 * textarea's value: text, never HTML); resolves to the final answer, which replaces it. */
async function askStreaming(request) {
  state.answerId = null;
  state.original = "";
  const editor = $("draft-text");
  editor.value = "";
  editor.disabled = false;
  editor.readOnly = true;
  for (const id of ["copy-button", "accept-button", "reject-button"]) $(id).disabled = true;
  $("comment").disabled = true;
  $("coverage").hidden = true;
  $("escalation").hidden = true;
  $("passages").replaceChildren();
  $("citations").replaceChildren(el("li", "The citations come when the draft is finished.", { class: "meta" }));
  setStatus($("feedback-status"), "");
  $("draft-section").setAttribute("aria-busy", "true");
  return await apiStream("/v1/answer", request, {
    onPassages: (data) => {
      renderPassages(data.passages);
      const n = (data.passages || []).length;
      setStatus($("status"), `${n} passage${n === 1 ? "" : "s"} found. Writing the draft…`);
    },
    onDelta: (text) => {
      editor.value += text;
      editor.scrollTop = editor.scrollHeight;
    },
  });
}

/** Whether the server's drafter streams (``GET /readyz`` names it: anything but the extractive drafter);
 * left unknown (null, asked again at the next question, JSON meanwhile) when the server cannot tell yet. */
async function loadDrafter() {
  try {
    const response = await fetch("/readyz", { headers: { Accept: "application/json" } });
    const data = response.ok ? await response.json() : null;
    if (data && data.drafter) state.streams = data.drafter !== "extractive";
  } catch {
    // not ready or unreachable: the question itself will say what is wrong
  }
}

async function copyDraft() {
  const text = $("draft-text").value;
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    $("draft-text").select();
    document.execCommand("copy");
  }
  setStatus($("feedback-status"), "Draft copied to the clipboard.");
}

async function sendFeedback(rejected) {
  if (!state.answerId) return;
  const verdict = rejected ? "rejected" : edited() ? "edited" : "accepted";
  const body = { answer_id: state.answerId, verdict, comment: $("comment").value.trim() };
  if (!rejected) body.sent_text = $("draft-text").value;
  try {
    await api("/v1/feedback", { method: "POST", body });
    state.sent = true;
    setStatus($("feedback-status"), `Feedback recorded: ${verdict}. Thank you.`);
  } catch (error) {
    setStatus($("feedback-status"), error.message, true);
  }
}

let teamsLoaded = false;

async function loadTeams() {
  if (teamsLoaded) return;
  try {
    const data = await api("/v1/sops", { askKey: false });
    teamsLoaded = true;
    const teams = new Set((data.sops || []).map((s) => s.team).filter(Boolean));
    const list = $("teams");
    for (const team of [...teams].sort()) list.append(el("option", null, { value: team }));
  } catch {
    // The team list only helps typing; the console works without it.
  }
}

function keyboard(event) {
  const inField = ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement?.tagName);
  if (event.key === "/" && !inField && !event.ctrlKey && !event.metaKey && !event.altKey) {
    event.preventDefault();
    $("question").focus();
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("ask-form").addEventListener("submit", ask);
  $("question").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) ask(event);
  });
  $("draft-text").addEventListener("input", updateVerdictLabel);
  $("copy-button").addEventListener("click", copyDraft);
  $("accept-button").addEventListener("click", () => sendFeedback(false));
  $("reject-button").addEventListener("click", () => sendFeedback(true));
  $("key-button").addEventListener("click", () => askForKey("Set the API key this console sends."));
  document.addEventListener("keydown", keyboard);
  loadDrafter();
  loadTeams();
  $("question").focus();
});
