"""Errors users see as one short message (no traceback unless HYDRA_FULL_ERROR=1)."""


class ConfigError(ValueError):
    """A bad configuration or input: reported as one line, exit code 2, nothing created."""
