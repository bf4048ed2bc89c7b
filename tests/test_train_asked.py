"""Training questions people asked: a graded-questions file and the answers agents accepted (``train/asked.py``),
read from a real KB and a real query log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.conftest import sop, write_kb

from sopilot.core.errors import ConfigError
from sopilot.core.settings import Settings
from sopilot.index.querylog import LoggedCitation, QueryLog, querylog_path
from sopilot.train.answerability import active_sops
from sopilot.train.asked import SectionFinder, feedback_pairs, file_pairs

BODY = "## Symptoms\n\n- The console says SAML response not valid\n\n## Resolution\n\n1. Sign in from the tile.\n"


@pytest.fixture()
def finder(tmp_path: Path, embedder) -> SectionFinder:
    kb = write_kb(tmp_path / "kb", {"sso.md": sop("T-1", "SSO login fails", BODY)})
    return SectionFinder(active_sops(Settings(kb_dir=kb, index_dir=tmp_path / "index"), embedder))


def _lines(path: Path, rows: list[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def test_a_questions_file_names_sections_by_heading_or_file(tmp_path: Path, finder: SectionFinder) -> None:
    rows = [
        {"question": "saml  error when i open  the console", "relevant": [{"path": "sso.md", "heading": "Resolution"}]},
        {"question": "cant log in", "relevant": [{"path": "sso.md"}]},
        {"question": "what is the weather", "relevant": [], "answerable": False},
        {"question": "old section", "relevant": [{"path": "sso.md", "heading": "Gone"}, {"path": "nope.md"}]},
    ]
    pairs, counts = file_pairs(_lines(tmp_path / "q.jsonl", rows), finder)
    assert [(p.question, p.section, p.kind) for p in pairs] == [
        ("saml error when i open the console", "sso.md#resolution", "asked"),
        ("cant log in", pairs[1].section, "asked"),
    ]
    assert pairs[1].section in finder.links and pairs[1].section != "sso.md#resolution", "the file's first section"
    assert counts == {"lines": 4, "pairs": 2, "unanswerable": 1, "section_not_in_kb": 2}


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("{not json", "line 2 is not JSON"),
        ('{"relevant": [{"path": "sso.md"}]}', 'line 2 has no "question"'),
        ('{"question": "q", "relevant": "sso.md"}', '"relevant" must be a list'),
    ],
)
def test_a_bad_questions_file_is_refused_with_its_line(tmp_path: Path, finder: SectionFinder, line, says) -> None:
    good = json.dumps({"question": "q", "relevant": [{"path": "sso.md"}]})
    with pytest.raises(ConfigError, match=says):
        file_pairs(_lines(tmp_path / "q.jsonl", [good, line]), finder)
    with pytest.raises(ConfigError, match="no such file"):
        file_pairs(tmp_path / "missing.jsonl", finder)


def test_only_accepted_or_edited_answers_become_questions(tmp_path: Path, finder: SectionFinder) -> None:
    index = tmp_path / "index"
    index.mkdir()
    log = QueryLog(querylog_path(index))
    resolution = LoggedCitation(1, "c1", "sso.md", "resolution", ("SSO login fails", "Resolution"))
    escalation = LoggedCitation(1, "c9", "sso.md", "resolution", ("SSO login fails", "Resolution"), "escalation")
    vanished = LoggedCitation(1, "c2", "sso.md", "gone", ("SSO login fails", "Gone"))
    answers = {
        "accepted": ("the saml thing again", [resolution]),
        "edited": ("reviewer gets saml error", [resolution]),
        "rejected": ("saml but wrong answer", [resolution]),
        "none": ("never judged", [resolution]),
        "escalation-only": ("only an escalation cited", [escalation]),
        "vanished": ("cites a section the KB lost", [vanished]),
    }
    for name, (question, citations) in answers.items():
        record = log.record_query(kind="answer", question=question, covered=True, citations=citations, answer_id=name)
        verdict = {"none": None, "rejected": "rejected", "edited": "edited"}.get(name, "accepted")
        if verdict:
            log.record_feedback(record, verdict)
    log.record_feedback("rejected", "accepted")  # the latest verdict counts: corrected to accepted
    log.record_feedback("accepted", "rejected")  # and this one withdrawn
    log.close()
    pairs, counts = feedback_pairs(index, finder)
    assert sorted(p.question for p in pairs) == ["reviewer gets saml error", "saml but wrong answer"]
    assert {p.section for p in pairs} == {"sso.md#resolution"} and {p.kind for p in pairs} == {"feedback"}
    assert counts == {"answers_judged": 5, "pairs": 2, "rejected_or_other": 1, "no_citation": 1, "section_not_in_kb": 1}
    assert feedback_pairs(tmp_path / "no-log", finder) == ([], {**counts, **dict.fromkeys(counts, 0)})
