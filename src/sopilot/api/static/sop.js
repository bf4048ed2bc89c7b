// One SOP, rendered by the server through the sanitizer, with its sections' anchors.
// The sanitized HTML is the only HTML this console inserts; everything else is text.

import { api, el } from "/static/common.js";

const $ = (id) => document.getElementById(id);

function sopPath() {
  const rest = location.pathname.replace(/^\/sop\//, "");
  return rest.split("/").map(decodeURIComponent).join("/");
}

function showTarget() {
  const anchor = decodeURIComponent(location.hash.slice(1));
  for (const old of document.querySelectorAll(".target-section")) old.classList.remove("target-section");
  if (!anchor) return;
  const target = document.getElementById(anchor);
  if (target && $("sop-body").contains(target)) {
    target.classList.add("target-section");
    target.scrollIntoView({ block: "start" });
    target.setAttribute("tabindex", "-1");
    target.focus({ preventScroll: true });
  }
}

async function load() {
  const path = sopPath();
  try {
    const sop = await api("/v1/sops/" + path.split("/").map(encodeURIComponent).join("/"));
    document.title = `SOPilot · ${sop.title}`;
    $("sop-title").textContent = sop.title;
    const meta = [sop.path, sop.team && `team ${sop.team}`, sop.status];
    if (sop.last_reviewed) meta.push(`reviewed ${sop.last_reviewed}`);
    if (sop.review_due) meta.push(`review due ${sop.review_due}`);
    if (sop.escalation) meta.push(`escalation: ${sop.escalation}`);
    $("sop-meta").textContent = meta.filter(Boolean).join(" · ");
    const toc = $("toc");
    for (const h of sop.headings || []) {
      const item = el("li", null, { class: `lvl${h.level}` });
      item.append(el("a", h.text, { href: `#${encodeURIComponent(h.anchor)}` }));
      toc.append(item);
    }
    // Sanitized on the server (markdown-it-py, then nh3): no script, style or event handler survives.
    $("sop-body").innerHTML = sop.html;
    $("status").textContent = "";
    showTarget();
  } catch (error) {
    $("status").textContent = error.message;
    $("status").classList.add("error");
  }
}

window.addEventListener("hashchange", showTarget);
document.addEventListener("DOMContentLoaded", load);
