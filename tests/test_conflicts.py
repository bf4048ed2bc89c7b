"""Typed facts, contradicting and near-duplicate sections: unit cases, and the flaws planted in kb/ found from the
index's own vectors with few false alarms on the rest."""

from __future__ import annotations

import json

import pytest

from sopilot.author.conflicts import fact_clashes, find_conflicts, trigram_overlap
from sopilot.author.fact_stats import FactStats
from sopilot.author.facts import extract_facts
from sopilot.author.similar import sections_from
from sopilot.cli.main import main
from sopilot.core.settings import Settings
from sopilot.index.embedder import Embedder
from sopilot.index.store import VectorStore, make_client


def clashes(a: str, b: str, heading_a: str = "", heading_b: str = "") -> list[tuple[str, str]]:
    found = fact_clashes(extract_facts(a, heading_a), extract_facts(b, heading_b), 0.12)
    return [(c.a.text, c.b.text) for c in found]


def test_facts_of_each_kind() -> None:
    text = (
        "The default limit is 1,200 requests/min per key; escalate after 48 h in `#uops-escalations`\n"
        "to Identity on-call, see https://console.aegis.example/queues and run `okta-admin unlock --user X`.\n"
        "```sql\nWHERE state = 'triaged' AND changed < now() - INTERVAL '72' HOUR\n```\n"
        "Partners see 401s and 503s."
    )
    facts = {(f.kind, f.value) for f in extract_facts(text)}
    assert {("quantity", "1200"), ("duration", "2880"), ("channel", "#uops-escalations")} <= facts
    assert {("team", "identity on-call"), ("url", "https://console.aegis.example/queues")} <= facts
    assert ("duration", "4320") in facts  # the SQL interval
    assert any(kind == "command" for kind, _ in facts)
    assert not any(kind == "duration" and value in ("6.68333", "8.38333") for kind, value in facts)  # "401s"


def test_same_fact_with_another_value_clashes() -> None:
    assert clashes("The default limit is 500 requests/min per key.", "Default limit: 600 requests/min per key.") == [
        ("500 requests/min", "600 requests/min")
    ]
    table_a = "| State | Escalate when |\n|---|---|\n| `triaged` | older than 48 h |\n| `submitted` | older than 4 h |"
    table_b = "| State | Stuck when |\n|---|---|\n| `triaged` | more than 72 h |\n| `submitted` | more than 4 h |"
    assert clashes(table_a, table_b) == [("48 h", "72 h")]


def test_no_clash_for_the_same_value_other_rows_other_things_or_other_scales() -> None:
    assert clashes("The default limit is 600 requests/min per key.", "600 requests/min per key by default.") == []
    rows_a = "| State | Timer |\n|---|---|\n| `triaged` | 48 h |"
    rows_b = "| State | Timer |\n|---|---|\n| `decided` | 72 h |"
    assert clashes(rows_a, rows_b) == []
    assert clashes("Sessions end after 12 hours of use.", "Exports are kept for 30 days.") == []
    assert clashes("Escalate the key after 1 day.", "A key expires after 365 days.") == []  # not a revision


def named_clashes(a: str, b: str, *others: str) -> list[tuple[str, str]]:
    """Clashes of a against b, judged with what the whole KB (a, b and ``others``) says about named facts."""
    facts = [extract_facts(text) for text in (a, b, *others)]
    found = fact_clashes(facts[0], facts[1], 0.12, stats=FactStats.of(facts))
    return [(c.a.text, c.b.text) for c in found]


ZD = "https://support.zendesk.com/hc/en-us/articles/"


def test_a_link_text_the_kb_uses_for_many_pages_is_no_contradiction() -> None:
    frame = "For information on {}, please see [Zendesk documentation]({}{})."
    editing = [frame.format(f"editing a {thing}", ZD, n) for n, thing in enumerate(["form", "field", "view", "macro"])]
    assert named_clashes(editing[0], editing[1], *editing[2:]) == []
    # the same sentences with a link text that names one page: the two targets are two versions of it
    tracker = "File the request in the [access request tracker](https://gitlab.example/access/{}/issues)."
    assert named_clashes(tracker.format("old"), tracker.format("new"), *editing) == [
        ("https://gitlab.example/access/old/issues", "https://gitlab.example/access/new/issues")
    ]


def test_named_facts_the_kb_shows_as_two_things_do_not_clash() -> None:
    a = "Escalate the stuck appeal in #uops-escalations."
    b = "Escalate the stuck appeal in #trust-eng-oncall."
    assert named_clashes(a, b) == [("#uops-escalations", "#trust-eng-oncall")]
    both = "Identity questions go to #trust-eng-oncall, everything else to #uops-escalations."
    assert named_clashes(a, b, both) == []  # a section names both: two channels, not two versions of one
    project = "Modules live in the [Support Training project](https://gitlab.example/support-training)."
    page = "Pick one in the [Support Training project](https://gitlab.example/support-training/-/tree/main)."
    assert named_clashes(project, page) == []  # the same place at two depths
    other_text = "See the [Providing Large Files](https://about.example/large-files/#other-methods) page."
    uploader = "See the [Support Uploader](https://about.example/large-files/#support-uploader) page."
    assert named_clashes(other_text, uploader) == []  # links with different texts name different pages


def test_trigram_overlap() -> None:
    assert trigram_overlap("reset the factor in okta now", "please reset the factor in okta") == pytest.approx(3 / 4)
    assert trigram_overlap("one two three", "four five six") == 0.0


@pytest.fixture(scope="module")
def conflicts(shipped_index: Settings, embedder: Embedder):
    store = VectorStore.open(make_client(shipped_index), shipped_index.collection, embedder.name, embedder.dimension)
    sections, vectors = sections_from(store.iter_vectors())
    return find_conflicts(sections, vectors)


def _pairs(pairs) -> set[frozenset[str]]:
    return {frozenset((p.a.path, p.b.path)) for p in pairs}


PLANTED_CONTRADICTIONS = {
    frozenset(("partner-api/429-troubleshooting.md", "partner-api/rate-limits.md")),
    frozenset(("appeals/appeal-slas.md", "appeals/stuck-appeals.md")),
}
PLANTED_DUPLICATES = {
    frozenset(("access/okta-verify-lost-device.md", "access/2fa-reset-lost-phone.md")),
    frozenset(("incidents/status-page-and-user-comms.md", "templates/user-communication-templates.md")),
}


@pytest.mark.slow
def test_planted_contradictions_are_found_with_few_false_alarms(conflicts) -> None:
    assert _pairs(conflicts.contradictions) >= PLANTED_CONTRADICTIONS
    values = {
        frozenset((p.a.path, p.b.path)): {frozenset((c.a.value, c.b.value)) for c in p.clashes}
        for p in conflicts.contradictions
    }
    rate, appeals = PLANTED_CONTRADICTIONS
    assert (
        frozenset(("500", "600"))
        in values[frozenset(("partner-api/429-troubleshooting.md", "partner-api/rate-limits.md"))]
    )
    assert frozenset(("2880", "4320")) in values[frozenset(("appeals/appeal-slas.md", "appeals/stuck-appeals.md"))]
    false_alarms = [
        p for p in conflicts.contradictions if frozenset((p.a.path, p.b.path)) not in PLANTED_CONTRADICTIONS
    ]
    assert len(false_alarms) <= 0.01 * conflicts.compared  # measured: 7 pairs of 1,362 compared (12 before the
    # named facts were judged with the KB's statistics: four channel pairs gone)
    assert not [c for p in false_alarms for c in p.clashes if c.kind in ("url", "channel", "team")]


@pytest.mark.slow
def test_planted_near_duplicates_are_found(conflicts) -> None:
    found = _pairs(conflicts.duplicates)
    assert found >= PLANTED_DUPLICATES
    lost_phone = [
        p for p in conflicts.duplicates if _pairs([p]) <= PLANTED_DUPLICATES and "okta" in p.a.path + p.b.path
    ]
    assert len(lost_phone) >= 3  # the two lost-phone SOPs match section by section
    assert len(found - PLANTED_DUPLICATES) <= 5


@pytest.mark.slow
def test_report_conflicts_json(shipped_index: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "conflicts", "--index", str(shipped_index.index_dir), "--json", "--fail"]) == 1
    out = json.loads(capsys.readouterr().out)
    pair = out["contradictions"][0]
    assert pair["a"]["text"] and pair["b"]["text"] and pair["clashes"] and out["pairs_compared"] > 0
