"""Section roles: one classifier, decided at ingest from heading, content and front matter; read by drafting."""

from __future__ import annotations

import textwrap
from collections import Counter
from pathlib import Path

import pytest
from tests.conftest import GITLAB_DOCS, sop, write_kb

from sopilot.core.settings import Settings
from sopilot.core.types import Role
from sopilot.draft.factory import open_drafter
from sopilot.ingest.chunker import Chunker
from sopilot.ingest.discover import discover
from sopilot.ingest.roles import classify_section
from sopilot.ingest.run import run_ingest
from sopilot.ingest.sop import load_sop
from sopilot.retrieval.search import open_retriever


def role(heading: str, text: str, overrides: dict[str, str] | None = None) -> Role:
    return classify_section(("Some SOP", heading), textwrap.dedent(text).strip(), overrides).role


@pytest.mark.parametrize(
    ("heading", "text", "expected"),
    [
        ("Resolution: wrong queue", "1. Open Console Admin.\n2. Add the queue.\n3. Ask them to reload.", Role.RESOLVE),
        ("Checks", "- Check the clock.\n- Confirm the account is active.\n- Look at the audit log.", Role.DIAGNOSE),
        ("Symptoms", "- `AUTH-401: SAML response not valid`\n- redirect loop", Role.DIAGNOSE),
        ("Escalation", "Post in `#identity-oncall`; page `identity-primary` when 5+ users are blocked.", Role.ESCALATE),
        (
            "Close-out",
            "- Ticket note: verification method, factors reset.\n- Close the ticket as solved.",
            Role.INTERNAL,
        ),
        ("Related", "- [SSO login failures](sso.md)\n- [Lockouts](lockout.md)", Role.REFERENCE),
        ("Reply template", "```text\nHi <name>, I've reset your access.\n```", Role.TEMPLATE),
        ("Summary", "The reviewer's phone is gone; we verify them and reset the factor.", Role.RESOLVE),
        ("Cause: refresh lag", "Insights reloads every 60 minutes, so today's numbers lag.", Role.RESOLVE),
    ],
)
def test_kb_style_headings(heading: str, text: str, expected: Role) -> None:
    assert role(heading, text) == expected


@pytest.mark.parametrize(
    ("heading", "text", "expected"),
    [
        # Headings that name nothing: the content decides.
        ("Zendesk Global", "1. Open the ticket.\n2. Apply the macro.\n3. Set the status to pending.", Role.RESOLVE),
        (
            "Night shift",
            "If more than 5 reviewers are blocked, post in #trust-eng-oncall and page the on-call.",
            Role.ESCALATE,
        ),
        ("Wording", "> Hello Jane,\n> thanks for your patience, your export is ready.", Role.TEMPLATE),
        ("Error codes", "| code | meaning |\n|---|---|\n| 401 | bad key |\n| 403 | no scope |", Role.REFERENCE),
        (
            "Afterwards",
            "Write in the ticket who confirmed, and tag the ticket `mfa-reset`. Note it in the ticket.",
            Role.INTERNAL,
        ),
    ],
)
def test_content_decides_when_the_heading_names_nothing(heading: str, text: str, expected: Role) -> None:
    assert role(heading, text) == expected


def test_a_colon_splits_the_part_from_the_case() -> None:
    """ "Resolution: audit against the wrong version" is a resolution about audits, not an audit section."""
    assert role("Resolution: audit against the wrong version", "Re-run the audit with v4.8.") == Role.RESOLVE


def test_front_matter_overrides_the_classifier() -> None:
    steps = "1. Do this.\n2. Then that."
    assert role("Close-out", steps, {"close-out": "resolve"}) == Role.RESOLVE
    assert role("Handover", steps, {"Handover": "internal"}) == Role.INTERNAL
    decision = classify_section(("T", "Handover"), steps, {"Handover": "internal"})
    assert decision.evidence == ("front matter: roles['Handover']",)


def test_ingest_stores_the_role_and_front_matter_can_set_it(tmp_path: Path, embedder) -> None:
    body = """
        ## Fix it

        1. Reset the thing.
        2. Tell the user.

        ## Close-out

        - Ticket note: what you reset.
        """
    files = {
        "a.md": sop("R-1", "Thing broken", body),
        "b.md": sop("R-2", "Other thing broken", body, extra='roles: {"Close-out": resolve}\n'),
    }
    kb = write_kb(tmp_path / "kb", files)
    chunker = Chunker(embedder.count_tokens, embedder.max_tokens)
    roles = {
        (rel, c.heading_path[-1]): c.metadata["role"]
        for rel in files
        for c in load_sop(kb, rel, chunker, 10**6).sop.chunks
    }
    assert roles[("a.md", "Fix it")] == "resolve" and roles[("a.md", "Close-out")] == "internal"
    assert roles[("b.md", "Close-out")] == "resolve"
    settings = Settings(kb_dir=kb, index_dir=tmp_path / "index")
    run_ingest(settings, embedder, progress=False)
    result = open_retriever(settings, embedder).search("what to write in the ticket note after the reset", k=5)
    assert {p.role for p in result.passages} <= {"resolve", "internal"}
    assert any(p.role == "internal" for p in result.passages)
    assert all(p.to_dict()["role"] == p.role for p in result.passages)


def test_an_index_made_before_roles_gets_them_without_embedding_again(tmp_path: Path, counting, monkeypatch) -> None:
    import sopilot.ingest.sync as sync

    kb = write_kb(tmp_path / "kb", {"a.md": sop("R-1", "Thing broken", "## Fix it\n\n1. Reset.\n2. Tell.\n")})
    settings = Settings(kb_dir=kb, index_dir=tmp_path / "index")
    monkeypatch.setattr(sync, "PARSE_VERSION", "p-old")
    first = counting()
    run_ingest(settings, first, progress=False)
    monkeypatch.undo()
    again = counting()
    report = run_ingest(settings, again, progress=False)
    assert again.embedded == 0 and report.files_parsed == 1
    report = run_ingest(settings, again, progress=False)
    assert report.files_parsed == 0, "the parse version is recorded: the next sync reads nothing"


@pytest.mark.skipif(not GITLAB_DOCS.is_dir(), reason="the shared GitLab corpus is not beside the checkout")
def test_roles_on_a_kb_written_by_others(embedder) -> None:
    """On 457 SOPs of another team, every role is found and most sections (prose and steps) resolve."""
    chunker = Chunker(embedder.count_tokens, embedder.max_tokens)
    counts: Counter[str] = Counter()
    for rel in discover(GITLAB_DOCS, ()).files:
        result = load_sop(GITLAB_DOCS, rel, chunker, 10**7)
        if result.sop is not None:
            counts.update({c.metadata["role"] for c in result.sop.chunks})
    assert set(counts) == {r.value for r in Role}
    assert counts["resolve"] > counts["reference"] > counts["escalate"]


def test_user_tone_never_quotes_agent_only_sections(shipped_index: Settings, embedder) -> None:
    """The two questions that once drafted agent text to users: the 2FA close-out note, and a partner told to
    post in an internal on-call channel."""
    retriever = open_retriever(shipped_index, embedder)
    user = open_drafter(shipped_index, retriever.store, tone="user")
    internal = open_drafter(shipped_index, retriever.store, tone="internal")
    for question in (
        "reviewer lost her phone, cant get past the 2fa prompt",
        "hi, our webhook calls stopped arriving since yesterday, why?",
    ):
        result = retriever.search(question, k=5)
        draft = user.draft(question, result)
        assert draft.covered
        quoted = {c.n: c.section_role for c in draft.citations}
        for sentence in draft.sentences:
            assert all(quoted[n] not in ("internal", "escalate") for n in sentence.citations), sentence.text
        assert "Ticket note" not in draft.text and "#partner-api-oncall" not in draft.text
        assert "oncall" not in draft.text.lower()
        assert draft.escalation is not None, "the escalation path still travels with the draft"
        note = internal.draft(question, result)
        assert note.covered and note.citations
