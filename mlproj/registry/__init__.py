"""The model registry: the post-run gate (thresholds, versions, champion/challenger aliases)."""
