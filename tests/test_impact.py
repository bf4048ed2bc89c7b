"""Answer-impact preview on a temp git repository: an SOP edit shows up as changed answers, nothing else does."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from sopilot.core.settings import Settings
from sopilot.eval.impact import GitRefError, export_kb_at, impact_markdown, preview_impact
from sopilot.eval.testset import load_testset

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

QUESTIONS = [
    {"id": "q-yubikey", "question": "How does a reviewer re-register a YubiKey hardware key?"},
    {"id": "q-backlog", "question": "How do I move senior reviewers to the priority queue?"},
    {"id": "q-429", "question": "What does the Retry-After header on an HTTP 429 mean?"},
]


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    from conftest import SAMPLE_SOPS, write_kb

    root = tmp_path / "repo"
    write_kb(root / "kb", dict(SAMPLE_SOPS))
    _git(root, "init", "-q", "-b", "main")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@example.com", "add", "-A")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "kb")
    return root


def _testset(path: Path) -> Path:
    lines = [json.dumps({**q, "relevant": [], "answerable": False}) for q in QUESTIONS]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.slow
def test_an_sop_edit_lists_the_answers_it_changes(repo: Path, tmp_path: Path, embedder) -> None:
    sso = repo / "kb" / "access" / "sso.md"
    sso.write_text(
        sso.read_text(encoding="utf-8")
        + "\n## Hardware keys\n\n1. Ask the reviewer to re-register the YubiKey hardware key at keys.example.\n"
        "2. Remove the old key from their Okta profile.\n",
        encoding="utf-8",
    )
    settings = Settings(kb_dir=repo / "kb", index_dir=tmp_path / "index")
    impact = preview_impact(settings, embedder, load_testset(_testset(tmp_path / "t.jsonl")), "main")

    assert [row.id for row in impact.changed] == ["q-yubikey"]
    row = impact.changed[0]
    assert "top passage" in row.changes and row.head.top == "access/sso.md#hardware-keys"
    assert row.base.top != row.head.top and "keys.example" in row.head.draft
    md = impact_markdown(impact)
    assert "1 of 3 questions change" in md and "`access/sso.md#hardware-keys`" in md
    assert not (tmp_path / "index").exists()  # the caller's index folder is never written


def test_a_bad_ref_or_no_repository_is_named(repo: Path, tmp_path: Path) -> None:
    with pytest.raises(GitRefError, match="not a commit"):
        export_kb_at(repo / "kb", "no-such-branch", tmp_path / "out")
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(GitRefError, match="not inside a git repository"):
        export_kb_at(plain, "main", tmp_path / "out2")


def test_export_holds_the_kb_as_committed(repo: Path, tmp_path: Path) -> None:
    (repo / "kb" / "queues" / "backlog.md").unlink()
    export_kb_at(repo / "kb", "main", tmp_path / "out")
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.md")) == [
        "access/sso.md",
        "api/rate-limits.md",
        "queues/backlog.md",
    ]
