"""Overdue reviews: the date arithmetic, the eight planted overdue SOPs of kb/, the report's exit code."""

from __future__ import annotations

import json
from datetime import date

import pytest
from tests.conftest import ROOT

from sopilot.author.kb_files import load_kb
from sopilot.author.stale import stale_sops
from sopilot.cli.main import main
from sopilot.core.review import is_overdue, overdue_from_metadata, review_due

PLANTED = {
    "access/okta-verify-lost-device.md",
    "access/vendor-ip-allowlist.md",
    "review-tools/queue-routing-rules.md",
    "review-tools/qa-audit-disputes.md",
    "partner-api/webhooks-not-delivered.md",
    "data/export-file-encoding.md",
    "operations/shift-coverage-and-sickness.md",
    "operations/vip-partner-handling.md",
}


def test_due_date_and_overdue() -> None:
    assert review_due(date(2026, 1, 1), 90) == date(2026, 4, 1)
    assert not is_overdue(date(2026, 1, 1), 90, date(2026, 4, 1))  # due today is not overdue yet
    assert is_overdue(date(2026, 1, 1), 90, date(2026, 4, 2))
    assert not is_overdue(None, 90, date(2030, 1, 1)) and not is_overdue(date(2020, 1, 1), None, date(2030, 1, 1))
    meta = {"last_reviewed": "2026-01-01", "review_every_days": 90}
    assert overdue_from_metadata(meta, date(2026, 4, 2)) and not overdue_from_metadata({}, date(2026, 4, 2))


def test_shipped_kb_has_the_eight_planted_overdue_sops() -> None:
    files, _ = load_kb(ROOT / "kb", ("README.md",))
    stale = stale_sops(files, date(2026, 11, 25))
    assert {s.path for s in stale} == PLANTED
    assert stale[0].path == "operations/shift-coverage-and-sickness.md" and stale[0].days_overdue == 239


def test_report_stale_json_and_fail_flag(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["report", "stale", "--kb", str(ROOT / "kb"), "--today", "2026-11-25"]
    assert main([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {s["path"] for s in out["overdue"]} == PLANTED
    assert main([*args, "--fail"]) == 1
    assert main(["report", "stale", "--kb", str(ROOT / "kb"), "--today", "2026-03-01", "--fail"]) == 0
