"""Shared core: the vocabulary (types), the one settings object and the errors users see.

Imports nothing of SOPilot."""
