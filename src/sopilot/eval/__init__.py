"""Evaluation: test sets, runs, metrics and reports."""
