"""Bad SOP files are reported with path and line, the rest is ingested, nothing indexed is lost."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from tests.conftest import SAMPLE_SOPS, sop, write_kb

from sopilot.cli.main import main


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, embedder, tmp_path: Path):
    """Run ``sopilot`` in process with the session's embedder; returns (exit code, stdout JSON)."""
    monkeypatch.setattr("sopilot.cli.common.load_embedder", lambda settings: embedder)

    def run(*args: str, capsys) -> tuple[int, dict]:
        code = main([*args, "--index", str(tmp_path / "index"), "--json", "-q"])
        out = capsys.readouterr().out
        return code, json.loads(out) if out.strip() else {}

    return run


BAD = {
    "bad/latin1.md": "---\nid: B-1\ntitle: Caf\xe9\n---\n# Title\n\nline two\n".encode("latin-1"),
    "bad/binary.md": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    "bad/empty.md": "",
    "bad/huge.md": sop("B-4", "Huge", "## A\n\n" + "word " * 300_000),
    "bad/yaml.md": "---\nid: B-5\ntitle: [unclosed\n---\n# T\n",
    "bad/fence.md": sop("B-6", "Fence", "## Query\n\n```sql\nselect * from mod.decisions;\n\n## After\n\ntext\n"),
    "bad/noheading.md": "Just some text with no heading and no front matter.\n",
    "bad/dup-id.md": sop("T-ACC-001", "Duplicate of SSO", "## A\n\nsame id as access/sso.md\n"),
}


def test_each_bad_input_is_reported_and_the_rest_is_ingested(tmp_path: Path, cli, capsys) -> None:
    kb = write_kb(tmp_path / "kb", {**SAMPLE_SOPS, **BAD})
    outside = tmp_path / "outside.md"
    outside.write_text(sop("O-1", "Outside", "## A\n\nnot in the KB\n"))
    os.symlink(outside, kb / "bad" / "link.md")
    code, report = cli("ingest", str(kb), capsys=capsys)
    assert code == 1 and not report["ok"]
    problems = {p["path"]: p for p in report["problems"]}
    expected = {
        "bad/latin1.md": ("not-utf8", 3),
        "bad/binary.md": ("binary", None),
        "bad/empty.md": ("empty", None),
        "bad/huge.md": ("too-large", None),
        "bad/yaml.md": ("front-matter-yaml", 3),
        "bad/fence.md": ("unclosed-fence", 15),
        "bad/noheading.md": ("no-heading", 1),
        "bad/dup-id.md": ("duplicate-id", 2),
        "bad/link.md": ("symlink-outside", None),
    }
    assert {path: (p["code"], p["line"]) for path, p in problems.items()} == expected
    assert all(p["message"] and p["fix"] for p in report["problems"])
    # the good SOPs and the files that only warn are indexed
    assert report["files"] == 3 + 2
    assert (
        "T-ACC-001" in problems["bad/dup-id.md"]["message"] and "access/sso.md" in problems["bad/dup-id.md"]["message"]
    )


def test_a_file_that_turns_bad_keeps_its_indexed_version(tmp_path: Path, cli, capsys) -> None:
    kb = write_kb(tmp_path / "kb", dict(SAMPLE_SOPS))
    code, first = cli("ingest", str(kb), capsys=capsys)
    assert code == 0 and first["ok"]
    (kb / "access/sso.md").write_bytes(b"---\nid: T-ACC-001\ntitle: [broken\n---\n")
    (kb / "api/rate-limits.md").write_bytes(b"\xff\xfe not utf8")
    code, second = cli("ingest", str(kb), capsys=capsys)
    assert code == 1 and second["files_kept"] == 2
    assert second["chunks"] == first["chunks"] and second["removed"] == 0 and second["added"] == 0
    code, found = cli("search", "SAML response not valid", "--kb", str(kb), capsys=capsys)
    assert code == 0 and found["passages"][0]["path"] == "access/sso.md"


def test_missing_kb_folder_is_a_clear_error(tmp_path: Path, cli, capsys) -> None:
    code = main(["ingest", str(tmp_path / "nope"), "--index", str(tmp_path / "i"), "-q"])
    assert code == 2
    assert "does not exist" in capsys.readouterr().err


def test_bad_setting_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("SOPILOT_CHROMA_URL", "localhost:8000")
    assert main(["search", "x"]) == 2
    assert "SOPILOT_CHROMA_URL" in capsys.readouterr().err


def test_search_before_ingest_says_what_to_do(tmp_path: Path, cli, capsys) -> None:
    code = main(["search", "anything", "--index", str(tmp_path / "empty"), "-q"])
    assert code == 2 and "sopilot ingest" in capsys.readouterr().err
