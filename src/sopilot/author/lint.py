"""``sopilot lint``: every rule over every SOP of a KB, levels and per-file switches applied."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from sopilot.author.findings import Finding, Level
from sopilot.author.kb_files import SopFile, load_kb
from sopilot.author.lint_config import LintConfig
from sopilot.author.lint_rules import FILE_RULES, KbContext, Raw, channels_of, duplicates, learn_vocabulary


@dataclass(slots=True)
class LintReport:
    files: int
    findings: list[Finding] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return dict(Counter(f.rule for f in self.findings).most_common())

    def at_least(self, level: Level) -> list[Finding]:
        return [f for f in self.findings if f.level.rank >= level.rank]

    def to_dict(self) -> dict[str, Any]:
        by_level = Counter(f.level.value for f in self.findings)
        return {
            "files": self.files,
            "counts": {"by_rule": self.counts(), "by_severity": {lv.value: by_level.get(lv.value, 0) for lv in Level}},
            "findings": [f.to_dict() for f in self.findings],
        }


def lint_kb(root: Path, config: LintConfig, today: date) -> LintReport:
    """Lint every SOP under ``root``. Files that cannot be read are findings too (``front-matter-invalid``)."""
    files, problems = load_kb(root, config.ignore)
    ctx = _context(root, config, today, files)
    report = LintReport(len(files) + len(problems))
    for problem in problems:  # unreadable: not UTF-8, binary, too large, symlink out of the KB
        report.findings.append(
            Finding("front-matter-invalid", Level.ERROR, problem.path, problem.line or 1, problem.message, problem.fix)
        )
    by_path = {f.path: f for f in files}
    raw: list[tuple[str, Raw]] = []
    for f in files:
        for check in FILE_RULES:
            raw.extend((f.path, r) for r in check(f, ctx))
    raw.extend(duplicates(files))
    for path, (rule, line, message, fix) in raw:
        if _switched_off(rule, by_path.get(path), config):
            continue
        reason = config.accepted_reason(path, rule)
        if reason is not None:  # kept on purpose: reported, never failing a check
            report.findings.append(Finding(rule, Level.INFO, path, line, f"{message} (accepted: {reason})", fix))
            continue
        report.findings.append(Finding(rule, config.level(rule), path, line, message, fix))
    report.findings.sort(key=lambda f: (f.path, f.line, f.rule))
    return report


def _switched_off(rule: str, f: SopFile | None, config: LintConfig) -> bool:
    if rule in config.off:
        return True
    return f is not None and f.front is not None and rule in f.front.lint.disable


def _context(root: Path, config: LintConfig, today: date, files: list[SopFile]) -> KbContext:
    fronts = [f.front for f in files if f.front is not None]
    owners = learn_vocabulary([[fm.owner.strip()] for fm in fronts], config.teams, config.learn_min_files)
    teams = learn_vocabulary(
        [[fm.escalation.team.strip()] for fm in fronts if fm.escalation], config.teams, config.learn_min_files
    )
    chans = learn_vocabulary([[c for _, c in channels_of(f)] for f in files], config.channels, config.learn_min_files)
    return KbContext(config, today, root, {f.path: f for f in files}, owners, teams, chans)
