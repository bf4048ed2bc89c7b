// The KB's SOPs with their team, status and review dates; overdue reviews stand out.

import { api, el, sopUrl } from "/static/common.js";

async function load() {
  const status = document.getElementById("status");
  try {
    const data = await api("/v1/sops");
    const today = new Date().toISOString().slice(0, 10);
    const body = document.getElementById("sops");
    for (const sop of data.sops || []) {
      const row = el("tr");
      const title = el("td");
      title.append(el("a", sop.title, { href: sopUrl(sop.path) }));
      const due = el("td", sop.review_due || "");
      if (sop.review_due && sop.review_due < today) due.className = "overdue";
      row.append(title, el("td", sop.path), el("td", sop.team), el("td", sop.status), el("td", sop.last_reviewed || ""), due);
      body.append(row);
    }
    status.textContent = `${(data.sops || []).length} SOPs.`;
  } catch (error) {
    status.textContent = error.message;
    status.classList.add("error");
  }
}

document.addEventListener("DOMContentLoaded", load);
