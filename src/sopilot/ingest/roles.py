"""Section roles: what a section is for, decided once at ingest and stored with its chunks.

A user's question is answered by a section that fixes the problem (``resolve``) or tells it apart from
another (``diagnose``); a section that says whom to page (``escalate``), what to write in the ticket
(``internal``), background and tables (``reference``) or the message to send (``template``) serves the agent,
not the user. Ranking and drafting read the role; nothing else decides it.

The role comes from evidence in two places, weighed together:

- the heading, matched against the words support teams use for each kind of section ("Resolution", "Checks",
  "Escalation", "Close-out", "Related", "Reply template", and their usual variants); a heading that names
  nothing (a product name, "Step 2") gives no evidence. "Summary" and "Overview" name no role: in a support
  KB they state the case and its fix in brief, and their content decides; nor does "Cause", which explains the
  problem and so answers the user's "why";
- the content, which carries over to KBs whose headings are their own: numbered steps (resolve), a reply
  addressed to the user in a code block or quote (template), a paging channel with paging words (escalate),
  ticket-note wording (internal), a table or a list of links only (reference), check and symptom wording
  (diagnose).

An SOP's front matter can set a role by heading (``roles: {"Close-out": internal}``); that wins.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sopilot.core.types import Role

HEADING_WEIGHT = 2.0  # a heading that names its role outweighs any single content cue

_HEADING_CUES: dict[Role, re.Pattern[str]] = {
    Role.TEMPLATE: re.compile(
        r"\b(templates?|macros?|canned|(reply|response|message|e-?mail|text) to (the )?(user|customer|partner)s?"
        r"|(user|customer|partner)[- ](reply|message|communication)s?|sample (reply|response|message))\b",
        re.I,
    ),
    Role.ESCALATE: re.compile(r"\b(escalat\w*|when to page|paging|page (the|on)|on[- ]call|pager\w*)\b", re.I),
    Role.INTERNAL: re.compile(
        r"\b(close[- ]?out|clos(e|ing) the (ticket|case)|ticket notes?|internal notes?|audit( trail| log)?|wrap[- ]?up"
        r"|after the (call|incident|fix)|housekeeping|record[- ]keeping|follow[- ]?ups?|handover notes?)\b",
        re.I,
    ),
    Role.DIAGNOSE: re.compile(
        r"\b(symptoms?|checks?|checking|diagnos\w*|triage|investigat\w*|troubleshoot\w*|identify\w*"
        r"|how to tell|what to (collect|check|look for)|signs|verify(ing)? the (issue|problem|cause)|first check)\b",
        re.I,
    ),
    Role.REFERENCE: re.compile(
        r"\b(background|scope|reference|definitions?|glossary"
        r"|related|see also|prerequisites?|requirements|when to use|useful links|links|resources|faq"
        r"|how (it|this|\w+) works?|how does it work|(lookup |quick )?table|examples?|contacts?|limits|notes?)\b",
        re.I,
    ),
    Role.RESOLVE: re.compile(
        r"\b(resolution|resolv\w*|fix(es|ing)?|procedure|steps?|how to|workarounds?|solutions?|reset\w*|restor\w*"
        r"|recover\w*|request(ing)?|process|workflow|what to do|remediat\w*|mitigat\w*|unblock\w*)\b",
        re.I,
    ),
}
# The order ties are broken in: a section that both describes and fixes is a fix.
_PRECEDENCE = (Role.TEMPLATE, Role.ESCALATE, Role.INTERNAL, Role.RESOLVE, Role.DIAGNOSE, Role.REFERENCE)

_STEP = re.compile(r"^\s{0,3}\d{1,2}[.)]\s+\S")
_BULLET = re.compile(r"^\s{0,3}[-*+]\s+\S")
_TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$")
_LINK_ONLY = re.compile(r"^\s{0,3}[-*+]\s+\[[^\]]+\]\([^)]+\)\s*([-–—:].{0,80})?$")
_GREETING = re.compile(r"^\s*(>\s*)?(hi|hello|hey|dear|thanks|thank you|good (morning|afternoon|evening))\b", re.I)
_CHANNEL = re.compile(r"(?<![\w&/])#[a-z][a-z0-9_-]+", re.I)
_PAGING = re.compile(r"\b(page|paging|pager\w*|escalat\w*|on[- ]call|incident commander|sev ?[0-4]|p[0-4])\b", re.I)
_TICKET_NOTE = re.compile(
    r"\b(ticket notes?|note (it )?in the ticket|internal note|in the ticket|close the (ticket|case)|tag the ticket"
    r"|set the ticket|add a (private|internal) (note|comment)|log (it|this) in|audit (trail|log))\b",
    re.I,
)
_CHECKING = re.compile(r"\b(check|confirm|look (at|for|in)|if you see|compare|verify|make sure|is it)\b", re.I)


@dataclass(frozen=True, slots=True)
class RoleDecision:
    role: Role
    evidence: tuple[str, ...]  # what decided it, for authors and tests ("heading: escalat", "content: steps")


def classify_section(
    heading_path: Sequence[str], text: str, overrides: Mapping[str, str] | None = None
) -> RoleDecision:
    """The role of one section from its own heading (the last of its path), its text and the SOP's overrides."""
    heading = heading_path[-1] if heading_path else ""
    override = _override(heading, overrides or {})
    if override is not None:
        return RoleDecision(override, (f"front matter: roles[{heading!r}]",))
    scores: dict[Role, float] = dict.fromkeys(Role, 0.0)
    evidence: dict[Role, list[str]] = {role: [] for role in Role}
    if len(heading_path) > 1:  # the title names the SOP's problem, not the section's part in it
        # "Resolution: audit against the wrong version": the words before a colon name the section's part,
        # the words after it the case; the case counts only when the part names nothing.
        prefix, colon, _ = heading.partition(":")
        matched = {role: p.search(prefix) for role, p in _HEADING_CUES.items()} if colon else {}
        if not any(matched.values()):
            matched = {role: p.search(heading) for role, p in _HEADING_CUES.items()}
        for role, found in matched.items():
            if found:
                scores[role] += HEADING_WEIGHT
                evidence[role].append(f"heading: {found.group(0).lower()}")
    for role, weight, why in _content_cues(text):
        scores[role] += weight
        evidence[role].append(f"content: {why}")
    best = max(_PRECEDENCE, key=lambda r: (scores[r], -_PRECEDENCE.index(r)))
    if scores[best] <= 0:  # prose that names nothing: in a support KB, how a case is handled
        return RoleDecision(Role.RESOLVE, ("no cue: prose",))
    return RoleDecision(best, tuple(evidence[best]))


def _override(heading: str, overrides: Mapping[str, str]) -> Role | None:
    wanted = heading.strip().lower()
    for key, value in overrides.items():
        if key.strip().lower() == wanted:
            return Role(value)
    return None


def _content_cues(text: str) -> list[tuple[Role, float, str]]:
    lines = [line for line in text.splitlines() if line.strip()]
    body = [line for line in lines if not line.lstrip().startswith("#")]
    if not body:
        return []
    cues: list[tuple[Role, float, str]] = []
    steps = sum(bool(_STEP.match(line)) for line in body)
    bullets = sum(bool(_BULLET.match(line)) for line in body)
    table = sum(bool(_TABLE_ROW.match(line)) for line in body)
    links = sum(bool(_LINK_ONLY.match(line)) for line in body)
    if steps >= 2:
        cues.append((Role.RESOLVE, 1.0 + 0.25 * min(steps, 6), f"{steps} numbered steps"))
    if _addressed_reply(text):
        cues.append((Role.TEMPLATE, 2.5, "a reply addressed to the user"))
    channels = len(_CHANNEL.findall(text))
    paging = len(_PAGING.findall(text))
    if channels and paging >= 2:
        cues.append((Role.ESCALATE, 1.0 + min(paging, 4) * 0.25, "a channel with paging words"))
    notes = len(_TICKET_NOTE.findall(text))
    if notes:
        share = notes / max(len(body), 1)
        cues.append((Role.INTERNAL, 0.5 + min(share * 4, 2.0), "ticket-note wording"))
    if table and table >= 0.6 * len(body):
        cues.append((Role.REFERENCE, 1.5, "a table"))
    if links and links >= 0.8 * max(bullets, 1) and links == len(body) - sum(line.endswith(":") for line in body):
        cues.append((Role.REFERENCE, 2.5, "a list of links"))
    checking = sum(bool(_CHECKING.search(line)) for line in body)
    if checking >= 2 and checking >= 0.5 * len(body) and steps < 2:
        cues.append((Role.DIAGNOSE, 1.0, "check wording"))
    return cues


def _addressed_reply(text: str) -> bool:
    """A fenced block or a quote whose first line greets someone: the message an agent sends."""
    in_fence = False
    first_inside: str | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(("```", "~~~")):
            in_fence = not in_fence
            if in_fence:
                first_inside = None
            continue
        if in_fence and first_inside is None and stripped:
            first_inside = stripped
            if _GREETING.match(stripped):
                return True
        if not in_fence and stripped.startswith(">") and _GREETING.match(stripped):
            return True
    return False
