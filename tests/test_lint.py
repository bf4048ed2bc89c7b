"""Each lint rule on an SOP that breaks it and one that keeps it; config, per-file switches, CLI exit codes."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from tests.conftest import GITLAB_DOCS, ROOT, write_kb

from sopilot.author.findings import RULES
from sopilot.author.lint import lint_kb
from sopilot.author.lint_config import LintConfig, load_lint_config
from sopilot.cli.main import main
from sopilot.core.errors import ConfigError

TODAY = date(2026, 11, 25)
FM = "---\nid: {id}\ntitle: {title}\nowner: {owner}\nlast_reviewed: {reviewed}\nreview_every_days: 90\n{extra}---\n"


def fm(
    title: str = "T", id: str = "T-1", owner: str = "uops-test", reviewed: str = "2026-10-01", extra: str = ""
) -> str:
    return FM.format(id=id, title=title, owner=owner, reviewed=reviewed, extra=extra)


def body(title: str, text: str) -> str:
    return f"\n# {title}\n\n{text.strip()}\n"


GOOD_STEPS = "## Resolution\n\n1. Open the console.\n2. Reset the user.\n"
# rule -> (files that break it, files that keep it); the file named "x.md" is the one under test.
CASES: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "front-matter-invalid": (
        {"x.md": "---\ntitle: [unclosed\n---\n# X\n\ntext\n"},
        {"x.md": fm("X") + body("X", "text")},
    ),
    "missing-field": (
        {"x.md": "---\ntitle: X\n---\n" + body("X", "text")},
        {"x.md": fm("X") + body("X", "text")},
    ),
    "review-date-future": (
        {"x.md": fm("X", reviewed="2027-01-01") + body("X", "text")},
        {"x.md": fm("X", reviewed="2026-11-24") + body("X", "text")},
    ),
    "unknown-team": (
        {
            "x.md": fm("X", owner="uops-acess") + body("X", "text"),
            "a.md": fm("A", id="A", owner="uops-access") + body("A", "text"),
            "b.md": fm("B", id="B", owner="uops-access") + body("B", "text"),
        },
        {
            "x.md": fm("X", owner="uops-access") + body("X", "text"),
            "a.md": fm("A", id="A", owner="uops-access") + body("A", "text"),
            "b.md": fm("B", id="B", owner="uops-data") + body("B", "text"),
        },
    ),
    "unknown-channel": (
        {
            "x.md": fm("X") + body("X", "Ask in `#uops-escalation`."),
            "a.md": fm("A", id="A") + body("A", "Ask in `#uops-escalations`."),
            "b.md": fm("B", id="B") + body("B", "Ask in #uops-escalations."),
        },
        {
            "x.md": fm("X") + body("X", "Ask in `#uops-escalations`; the anchor [s](#x) is no channel.\n\n## X2\n"),
            "a.md": fm("A", id="A") + body("A", "Ask in `#uops-escalations`."),
            "b.md": fm("B", id="B") + body("B", "Ask in #uops-escalations."),
        },
    ),
    "unknown-kind": (
        {"x.md": fm("X", extra="kind: runbok\n") + body("X", "text")},
        {"x.md": fm("X", extra="kind: procedure\n") + body("X", "text")},
    ),
    "required-section": (
        {"x.md": fm("X") + body("X", "## Summary\n\ntext")},
        {"x.md": fm("X") + body("X", "## Summary\n\ntext\n\n## Escalation\n\nPage the on-call.")},
    ),
    "unnumbered-steps": (
        {"x.md": fm("X") + body("X", "## Resolution\n\n- Open the console.\n- Reset the user.\n- Tell them.")},
        {"x.md": fm("X") + body("X", GOOD_STEPS + "\n## Resolution: facts\n\n- Lockout after 5 tries.\n- 30 min.")},
    ),
    "broken-link": (
        {"x.md": fm("X") + body("X", "See [A](other/missing.md)."), "other/a.md": fm("A", id="A") + body("A", "a")},
        {"x.md": fm("X") + body("X", "See [A](other/a.md)."), "other/a.md": fm("A", id="A") + body("A", "a")},
    ),
    "broken-anchor": (
        {
            "x.md": fm("X") + body("X", "See [A](a.md#steps) and [here](#nope)."),
            "a.md": fm("A", id="A") + body("A", "## Steps 2\n\ns"),
        },
        {
            "x.md": fm("X") + body("X", "See [A](a.md#steps-2) and [here](#x)."),
            "a.md": fm("A", id="A") + body("A", "## Steps 2\n\ns"),
        },
    ),
    "missing-referenced-section": (
        {"x.md": fm("X") + body("X", "## Overrun\n\n1. Roll back as described in Rollback below.")},
        {
            "x.md": fm("X")
            + body("X", "## Overrun\n\n1. Roll back as described in Rollback below.\n\n## Rollback\n\n1. Undo.")
        },
    ),
    "heading-skip": (
        {"x.md": fm("X") + body("X", "## A\n\ntext\n\n#### B\n\ntext")},
        {"x.md": fm("X") + body("X", "## A\n\ntext\n\n### B\n\ntext")},
    ),
    "empty-section": (
        {"x.md": fm("X") + body("X", "## A\n\n## B\n\ntext")},
        {"x.md": fm("X") + body("X", "## A\n\n### A1\n\ntext\n\n## B\n\ntext")},
    ),
    "long-section": (
        {"x.md": fm("X") + body("X", "## A\n\n" + "word " * 600)},
        {"x.md": fm("X") + body("X", "## A\n\n" + "word " * 300 + "\n\n## B\n\n" + "word " * 300)},
    ),
    "duplicate-heading": (
        {"x.md": fm("X") + body("X", "## Resolution\n\n1. a\n\n## Resolution\n\n1. b")},
        {"x.md": fm("X") + body("X", "## Resolution: a\n\n1. a\n\n## Resolution: b\n\n1. b")},
    ),
    "duplicate-id": (
        {"x.md": fm("X", id="D-1") + body("X", "x"), "a.md": fm("A", id="D-1") + body("A", "a")},
        {"x.md": fm("X", id="D-2") + body("X", "x"), "a.md": fm("A", id="D-1") + body("A", "a")},
    ),
    "duplicate-title": (
        {"x.md": fm("Same", id="X") + body("Same", "x"), "a.md": fm("Same", id="A") + body("Same", "a")},
        {"x.md": fm("Other", id="X") + body("Other", "x"), "a.md": fm("Same", id="A") + body("Same", "a")},
    ),
}
CONFIG = {"required-section": 'default_kind = "procedure"\n[kinds.procedure]\nrequired = ["^escalation"]\n'}


def findings(tmp_path: Path, files: dict[str, str], rule: str, name: str) -> list[str]:
    kb = write_kb(tmp_path / name, files)
    if rule in CONFIG:
        (kb / ".sopilot-lint.toml").write_text(CONFIG[rule], encoding="utf-8")
    report = lint_kb(kb, load_lint_config(kb), TODAY)
    return [f"{f.path}:{f.line} {f.message}" for f in report.findings if f.rule == rule]


def test_every_rule_has_a_case() -> None:
    assert set(CASES) == set(RULES)


@pytest.mark.parametrize("rule", sorted(CASES))
def test_rule_flags_the_bad_sop_and_not_the_good_one(tmp_path: Path, rule: str) -> None:
    bad, good = CASES[rule]
    found = findings(tmp_path, bad, rule, "bad")
    assert any(line.startswith("x.md:") for line in found), f"{rule} missed the bad SOP"
    assert not [line for line in findings(tmp_path, good, rule, "good") if line.startswith("x.md:")]


def test_finding_has_rule_severity_path_line_and_fix(tmp_path: Path) -> None:
    kb = write_kb(tmp_path / "kb", {"x.md": fm("X") + body("X", "## A\n\ntext\n\n#### B\n\ntext")})
    (finding,) = lint_kb(kb, LintConfig(), TODAY).findings
    assert (finding.rule, finding.level.value, finding.path, finding.line) == ("heading-skip", "warning", "x.md", 15)
    assert "### B" in finding.fix


def test_rules_switched_off_in_front_matter_and_config(tmp_path: Path) -> None:
    text = body("X", "## A\n\n## C\n\n#### B\n\ntext")
    kb = write_kb(
        tmp_path / "kb",
        {
            "x.md": fm("X", extra="lint:\n  disable: [heading-skip]\n") + text,
            "y.md": fm("Y", id="Y", extra="lint: [empty-section]\n") + text,
        },
    )
    rules = {(f.path, f.rule) for f in lint_kb(kb, LintConfig(), TODAY).findings}
    assert rules == {("x.md", "empty-section"), ("y.md", "heading-skip")}
    assert not lint_kb(kb, LintConfig(off=("empty-section", "heading-skip")), TODAY).findings


def test_bad_config_names_the_problem(tmp_path: Path) -> None:
    kb = write_kb(tmp_path / "kb", {"x.md": fm("X") + body("X", "t")})
    (kb / ".sopilot-lint.toml").write_text('[rules]\noff = ["no-such-rule"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown rule 'no-such-rule'"):
        load_lint_config(kb)
    (kb / ".sopilot-lint.toml").write_text("teams = [", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_lint_config(kb)


def test_cli_exit_codes_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kb = write_kb(tmp_path / "kb", {"x.md": fm("X") + body("X", "## A\n\n#### B\n\nSee [b](nowhere.md).")})
    assert main(["lint", str(kb), "--today", "2026-11-25", "--json"]) == 1  # broken-link is an error
    out = json.loads(capsys.readouterr().out)
    assert out["counts"]["by_rule"] == {"broken-link": 1, "heading-skip": 1} and out["failed"]
    assert main(["lint", str(kb), "--fail-on", "never"]) == 0
    (kb / "x.md").write_text(fm("X") + body("X", "## A\n\n#### B\n\ntext"), encoding="utf-8")
    assert main(["lint", str(kb)]) == 0  # warnings only
    assert main(["lint", str(kb), "--fail-on", "warning"]) == 1
    assert main(["lint", str(tmp_path / "missing")]) == 2


def test_shipped_kb_lints_clean_but_for_the_planted_dangling_references() -> None:
    report = lint_kb(ROOT / "kb", load_lint_config(ROOT / "kb"), TODAY)
    assert {(f.path, f.rule) for f in report.findings} == {
        ("operations/maintenance-windows.md", "missing-referenced-section"),
        ("review-tools/console-decision-buttons-disabled.md", "missing-referenced-section"),
    }
    # kb/.sopilot-lint.toml accepts those two (planted on purpose): still reported, at info level
    assert {f.level.value for f in report.findings} == {"info"} and all("planted" in f.message for f in report.findings)


def test_shipped_kb_passes_the_warning_gate(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint", str(ROOT / "kb"), "--fail-on", "warning", "--today", "2026-11-25", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["config"].endswith("kb/.sopilot-lint.toml") and not out["failed"]
    assert out["counts"]["by_severity"] == {"error": 0, "warning": 0, "info": 2}


def test_an_accepted_finding_is_reported_at_info_and_only_where_accepted(tmp_path: Path) -> None:
    dangling = body("X", "## Overrun\n\n1. Roll back as described in Rollback below.")
    kb = write_kb(tmp_path / "kb", {"a.md": fm("A") + dangling, "b.md": fm("B") + dangling})
    (kb / ".sopilot-lint.toml").write_text(
        '[[accepted]]\npath = "a.md"\nrule = "missing-referenced-section"\nreason = "kept for the demo"\n',
        encoding="utf-8",
    )
    report = lint_kb(kb, load_lint_config(kb), TODAY)
    levels = {f.path: (f.level.value, f.message) for f in report.findings if f.rule == "missing-referenced-section"}
    assert levels["a.md"][0] == "info" and "(accepted: kept for the demo)" in levels["a.md"][1]
    assert levels["b.md"][0] == "warning"
    (kb / ".sopilot-lint.toml").write_text('[[accepted]]\npath = "a.md"\nrule = "missing-referenced-section"\n')
    with pytest.raises(ConfigError, match="reason"):
        load_lint_config(kb)


@pytest.mark.skipif(not GITLAB_DOCS.is_dir(), reason="shared GitLab corpus not present")
def test_gitlab_corpus_lints_without_crashing() -> None:
    config = LintConfig(site_prefix="/handbook/", relative_to="page", required_fields=("title",))
    report = lint_kb(GITLAB_DOCS, config, TODAY)
    assert report.files == 457
    counts = report.counts()
    assert counts.get("broken-anchor", 0) > 0 and counts.get("heading-skip", 0) > 0
    # working-on-tickets.md has no "Understanding SLAs" heading any more; the link to it is found
    assert any(f.rule == "broken-anchor" and "#understanding-slas" in f.message for f in report.findings)
