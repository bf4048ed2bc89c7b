"""``sopilot report conflicts``: near-duplicate and contradicting sections across SOPs (placeholder)."""

from __future__ import annotations

import argparse


def register(reports: argparse._SubParsersAction) -> None:
    del reports  # registered once the conflict finder lands
