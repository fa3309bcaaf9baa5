"""Credentials never reach params, tags, artifacts, printed lines or the files a run leaves.

Light to import (no MLflow): the entry point masks Hydra's own copies of the config before anything else.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

# Credentials never reach params, tags, artifacts or printed lines: values of secret-looking keys are
# masked, and so is the password part of any URL (http://user:password@host, postgresql://...). Values
# known to be secret are also masked wherever they appear: those of credential environment variables and
# of the config keys listed in tracking.secret_keys (`mark_secrets`).
SECRET_KEY = re.compile(r"password|passwd|secret|token|api_?key|credential|private_key", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(?<=://)([^:/@\s]+):([^@/\s]+)@")
MASK = "***"
SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AZURE_STORAGE_ACCESS_KEY", "AZURE_STORAGE_CONNECTION_STRING")
MIN_SECRET_LENGTH = 4  # shorter values ("1", "true") would mask ordinary text everywhere
_marked: set[str] = set()


def mark_secrets(cfg: DictConfig) -> None:
    """Remember the values of the config keys listed in tracking.secret_keys, to mask them everywhere."""
    for key in cfg.tracking.secret_keys:
        value = OmegaConf.select(cfg, key, throw_on_missing=False)
        if value is not None and len(str(value)) >= MIN_SECRET_LENGTH:
            _marked.add(str(value))


def _secret_values() -> list[str]:
    """Marked values and those of credential variables (MLFLOW_TRACKING_PASSWORD, DATABRICKS_TOKEN, ...)."""
    # Not os.environ.items(): MLflow's threads set and unset variables meanwhile (a KeyError found by the soak).
    names = [k for k in list(os.environ) if k in SECRET_ENV or SECRET_KEY.search(k)]
    env = {v for v in (os.environ.get(k) for k in names) if v is not None}
    return sorted({v for v in env | _marked if len(v) >= MIN_SECRET_LENGTH}, key=len, reverse=True)


def _mask_values(text: str) -> str:
    for value in _secret_values():
        text = text.replace(value, MASK)
    return text


def redact(text: str) -> str:
    """Mask URL passwords, `secret_key=value` pairs and known secret values in a free-form string."""
    text = _URL_PASSWORD.sub(rf"\1:{MASK}@", _mask_values(text))
    return re.sub(
        r"([\w.+~]*(?:password|passwd|secret|token|api_?key|credential)[\w.]*)=(\S+)", rf"\1={MASK}", text, flags=re.I
    )


def redacted(node: Any, key: str = "") -> Any:
    """A copy of a config container with secret values masked."""
    if isinstance(node, dict):
        return {k: redacted(v, str(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [redacted(v, key) for v in node]
    if isinstance(node, str):
        return MASK if SECRET_KEY.search(key) else redact(node)
    if node is not None and (SECRET_KEY.search(key) or str(node) in _secret_values()):
        return MASK
    return node


def redact_hydra_outputs(folder: Path) -> None:
    """Hydra writes the composed config and the overrides into the run's `.hydra/` before mlproj runs:
    rewrite those copies masked too, so no file a run leaves holds a credential."""
    for name in ("config.yaml", "overrides.yaml", "hydra.yaml"):
        path = folder / name
        if path.is_file():
            original = OmegaConf.to_container(OmegaConf.load(path))
            masked = redacted(original)
            if masked != original:  # rewritten only when it held a secret (it loses Hydra's comments)
                path.write_text(OmegaConf.to_yaml(OmegaConf.create(masked)))
