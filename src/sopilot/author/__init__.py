"""Tools for SOP authors: lint, review staleness, near-duplicate and contradicting sections."""
