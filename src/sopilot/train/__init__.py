"""Training from the KB itself: models SOPilot learns for one index (never from a test set)."""
