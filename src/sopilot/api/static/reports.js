// The author reports of one UTC day (GET /v1/reports/daily): figures, an hour chart, gaps, worst sections.

import { api, apiKey, el, headingPath, sopUrl } from "/static/common.js";

const pct = (x) => `${Math.round(x * 100)}%`;

function rows(id, items, cells) {
  const body = document.getElementById(id);
  body.replaceChildren();
  for (const item of items) {
    const row = el("tr");
    for (const cell of cells(item)) row.append(cell instanceof Node ? cell : el("td", cell));
    body.append(row);
  }
  if (!items.length) {
    const row = el("tr");
    row.append(el("td", "None."));
    body.append(row);
  }
}

function link(text, path, anchor) {
  const td = el("td");
  td.append(el("a", text, { href: sopUrl(path, anchor) }));
  return td;
}

function hours(report) {
  const chart = document.getElementById("hours");
  chart.replaceChildren();
  const top = Math.max(1, ...report.by_hour);
  report.by_hour.forEach((n, hour) => {
    const covered = report.covered_by_hour[hour];
    const column = el("div", null, { class: "hour", title: `${hour}:00 UTC: ${n} questions, ${covered} covered` });
    const c = el("div", null, { class: "covered" });
    c.style.height = `${(100 * covered) / top}%`;
    const u = el("div", null, { class: "uncovered" });
    u.style.height = `${(100 * (n - covered)) / top}%`;
    column.append(c, u, el("span", hour % 3 === 0 ? hour : "", { class: "label" }));
    chart.append(column);
  });
}

function gaps(report) {
  const list = document.getElementById("gaps");
  list.replaceChildren();
  for (const gap of report.gaps) {
    const item = el("li");
    if (gap.new) item.append(el("span", "new", { class: "new-gap", title: `not a gap in the ${report.new_gap_days} days before` }), el("span", " "));
    const why = Object.entries(gap.reasons).map(([k, v]) => `${k} ${v}`).join(", ");
    item.append(el("strong", gap.representatives[0]), el("span", ` (${gap.size}: ${why}) `));
    const near = gap.nearest;
    if (gap.suggestion === "extend" && near) {
      item.append(el("span", "extend "), el("a", headingPath(near.heading_path), { href: sopUrl(near.path, near.anchor) }));
    } else {
      item.append(el("span", "write a new SOP:"), el("pre", gap.stub));
    }
    const more = el("ul");
    for (const q of gap.representatives.slice(1)) more.append(el("li", q));
    item.append(more);
    list.append(item);
  }
  if (!report.gaps.length) list.append(el("li", "None."));
  document.getElementById("gaps-h").textContent = `Gaps (${report.gaps.length}, ${report.new_gaps} new)`;
}

async function show(day) {
  const status = document.getElementById("status");
  status.classList.remove("error");
  status.textContent = "Loading…";
  try {
    const r = await api(`/v1/reports/daily?date=${encodeURIComponent(day)}`);
    const summary = document.getElementById("summary");
    const verdicts = Object.entries(r.verdicts).map(([k, v]) => `${k} ${v}`).join(", ") || "none";
    summary.replaceChildren(
      el("li", `${r.questions} questions; ${r.covered} covered, ${r.abstained} not: coverage rate ${pct(r.coverage_rate)}`),
      el("li", `Verdicts: ${verdicts}`),
      el("li", `Latency p50 ${Math.round(r.latency_p50_ms)} ms, p95 ${Math.round(r.latency_p95_ms)} ms`),
    );
    hours(r);
    rows("topics", r.topics, (t) => [link(t.title, t.path), String(t.answers)]);
    gaps(r);
    rows("worst", r.worst_sections, (h) => [
      link(headingPath(h.heading_path), h.path, h.anchor), String(h.cited), String(h.judged),
      pct(h.reject_rate), pct(h.edit_rate), pct(h.accept_rate),
    ]);
    rows("stale", r.stale, (s) => [link(s.title, s.path), s.owner, s.due, String(s.days_overdue)]);
    rows("slowest", r.slowest, (s) => [s.at, String(Math.round(s.latency_ms)), s.question]);
    status.textContent = `Report of ${r.date} (UTC).`;
  } catch (error) {
    status.textContent = error.message;
    status.classList.add("error");
  }
}

/** The self-contained HTML report (plots inlined), fetched with the key and saved as a file. */
async function download(day) {
  const status = document.getElementById("status");
  const key = apiKey();
  const response = await fetch(`/v1/reports/daily?date=${encodeURIComponent(day)}&format=html`, {
    headers: key ? { Authorization: `Bearer ${key}` } : {},
  });
  if (!response.ok) {
    status.textContent = `The server answered ${response.status}: load the day first (it asks for a key).`;
    status.classList.add("error");
    return;
  }
  const a = el("a", null, { href: URL.createObjectURL(await response.blob()), download: `sopilot-daily-${day}.html` });
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

document.addEventListener("DOMContentLoaded", () => {
  const input = document.getElementById("day");
  const params = new URLSearchParams(location.search);
  input.value = params.get("date") || new Date().toISOString().slice(0, 10);
  document.getElementById("day-form").addEventListener("submit", (event) => {
    event.preventDefault();
    history.replaceState(null, "", `?date=${input.value}`);
    show(input.value);
  });
  document.getElementById("download").addEventListener("click", () => download(input.value));
  show(input.value);
});
