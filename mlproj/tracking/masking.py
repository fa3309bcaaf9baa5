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
# Words that name a secret anywhere in a key (`db_password`, `apitoken`), and short ones only as a whole part
# of it (`db_pass`, `http.auth`, `session_id`; not `passes` or `author`).
_SECRET_WORDS = r"password|passwd|secret|token|api_?key|credential|private_key"
_SECRET_PARTS = r"pass|pwd|auth|authorization|bearer|cookies?|session|sessionid"
SECRET_KEY = re.compile(rf"{_SECRET_WORDS}|(?:^|[^a-z])(?:{_SECRET_PARTS})(?:$|[^a-z])", re.IGNORECASE)
# Environment variables by the long words only: PWD, SSH_AUTH_SOCK or XDG_SESSION_ID hold no secret.
_SECRET_ENV_NAME = re.compile(_SECRET_WORDS, re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(?<=://)([^:/@\s]+):([^@/\s]+)@")
# Values that are secrets whatever their key: an HTTP credential (`Bearer x`, `Basic x`), a JWT, a vendor
# token with a known prefix (GitHub, Slack, OpenAI, Databricks, GitLab, AWS key id).
_TOKEN_VALUE = re.compile(
    r"\b(?:Bearer|Basic|Token)\s+[\w.~+/=-]{8,}"
    r"|\beyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]{8,}"
    r"|\b(?:gh[pousr]_|github_pat_|xox[abposr]-|sk-|dapi|glpat-|AKIA)[\w-]{12,}",
)
_KEY_VALUE = re.compile(
    rf"([\w.+~-]*?(?:{_SECRET_WORDS}|(?<![a-z])(?:{_SECRET_PARTS})(?![a-z]))[\w.+~-]*)=(\S+)", re.IGNORECASE
)
_LONG_WORD = re.compile(r"[A-Za-z0-9_+/=-]{32,}")
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
    names = [k for k in list(os.environ) if k in SECRET_ENV or _SECRET_ENV_NAME.search(k)]
    env = {v for v in (os.environ.get(k) for k in names) if v is not None}
    return sorted({v for v in env | _marked if len(v) >= MIN_SECRET_LENGTH}, key=len, reverse=True)


def _mask_values(text: str) -> str:
    for value in _secret_values():
        text = text.replace(value, MASK)
    return text


def redact(text: str) -> str:
    """Mask URL passwords, `secret_key=value` pairs, token-like values and known secret values in a string."""
    text = _URL_PASSWORD.sub(rf"\1:{MASK}@", _mask_values(text))
    text = _TOKEN_VALUE.sub(MASK, text)
    text = _LONG_WORD.sub(lambda m: MASK if looks_random(m.group()) else m.group(), text)
    return _KEY_VALUE.sub(rf"\1={MASK}", text)


def looks_random(word: str) -> bool:
    """A long word of mixed case and digits with high entropy: a key or token (not a hex run id, a digest,
    a date or a name made of words)."""
    import math
    from collections import Counter

    if not (re.search(r"[a-z]", word) and re.search(r"[A-Z]", word) and re.search(r"\d", word)):
        return False  # hex ids, digests, lower-case names: never secrets by their look alone
    counts = Counter(word)
    entropy = -sum(n / len(word) * math.log2(n / len(word)) for n in counts.values())
    return entropy >= 4.0


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


# MLflow prints "🏃 View run ... at: URL" when a run on a server ends, with the URL's password in it
# (tracking/_tracking_service/client.py `_log_url`); for a URI with credentials its lines are turned off and
# mlproj prints the same two lines masked.
SUPPRESS_URLS_ENV = "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"
_marked_env: set[str] = set()  # variables mlproj set itself


def hide_mlflow_urls(uri: str) -> bool:
    """Turn MLflow's own printed run URLs off when `uri` holds a credential; True when mlproj prints them."""
    if redact(uri) == uri:
        if SUPPRESS_URLS_ENV in _marked_env:  # an earlier run in this process had credentials: MLflow's again
            _marked_env.discard(SUPPRESS_URLS_ENV)
            os.environ.pop(SUPPRESS_URLS_ENV, None)
        return False
    if os.environ.get(SUPPRESS_URLS_ENV, "").lower() in ("true", "1") and SUPPRESS_URLS_ENV not in _marked_env:
        return False  # the user turned them off: none printed
    os.environ[SUPPRESS_URLS_ENV] = "true"
    _marked_env.add(SUPPRESS_URLS_ENV)
    return True


def view_lines(uri: str, experiment_id: str, run_id: str, run_name: str) -> str:
    """MLflow's two lines for an ended run, with the URL's credentials masked."""
    experiment = f"{redact(uri).rstrip('/')}/#/experiments/{experiment_id}"
    return f"🏃 View run {run_name} at: {experiment}/runs/{run_id}\n🧪 View experiment at: {experiment}"
