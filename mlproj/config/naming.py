"""The default experiment: one per dataset, `mlproj-<data name>`, so the registry compares like with like.

Known from the config alone (a sweep opens its parent run before any data is read): the table's `name`
(data=diabetes), else its file's name without extensions (data.path=houses.csv: houses), else the class
name of `data._target_` (data=synthetic: SyntheticTable; a LightningDataModule of yours: its class), the same
whether the config comes from the command line or from Python.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict, read_write

PREFIX = "mlproj-"


def data_name(cfg: DictConfig) -> str:
    data = cfg.get("data")
    if not isinstance(data, DictConfig):
        return "data"
    for key in ("name", "path"):
        value = _given(data, key)
        if isinstance(value, str) and value.strip():
            return PurePosixPath(value.rstrip("/")).name.split(".")[0] if key == "path" else value
    target = _given(data, "_target_")
    return str(target).rsplit(".", 1)[-1] if target else "data"


def fill_default_experiment(cfg: DictConfig) -> None:
    """tracking.experiment unset (the default): `mlproj-<data name>`, written into the config (and so into
    the logged config, the digest `resume=auto` looks for, and the Optuna study's name)."""
    if cfg.tracking.get("experiment") is not None:
        return
    with read_write(cfg), open_dict(cfg):
        cfg.tracking.experiment = PREFIX + data_name(cfg)


def _given(node: DictConfig, key: str) -> Any:
    if key not in node or OmegaConf.is_missing(node, key):
        return None
    try:
        return node[key]
    except Exception:  # an interpolation that does not resolve: the checks name it
        return None
