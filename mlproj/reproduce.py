"""`python -m mlproj.reproduce RUN_ID [key=value ...]`: train a logged run's config again, as a new run.

The config is the resolved one the run logged (`config/config.yaml`), typed by the schema again; the
overrides change keys of it (`trainer.max_epochs=5`, `+model.bias=false`), as on the command line. The new
run goes to the same store and experiment, tagged `mlproj.reproduced_from`; a seeded run on CPU gives the
same metrics again. Values the run logged masked (a password) must be given again as overrides.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from mlproj import tags
from mlproj.errors import ConfigError, MlprojError, report

CONFIG_ARTIFACT = "config/config.yaml"  # what mlproj.tracking.runs.log_config writes
PROG = "python -m mlproj.reproduce"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("run_id", help="the run whose config to train again")
    p.add_argument("overrides", nargs="*", help="key=value changes to that config")
    p.add_argument("--tracking-uri", help="the run's store (default: as mlproj's: $MLFLOW_TRACKING_URI, ./mlflow.db)")
    args = p.parse_args(argv)
    try:
        cfg = rebuild(args.run_id, args.overrides, args.tracking_uri)
        from mlproj.train import run

        run(cfg, [f"reproduce={args.run_id}", *args.overrides])
    except MlprojError as exc:
        return report(exc, "mlproj.reproduce")
    return 0


def rebuild(run_id: str, overrides: list[str], uri: str | None = None) -> DictConfig:
    """The config run `run_id` trained, with `overrides` applied, tagged with its origin; nothing written."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from mlproj.config.schema import TrackingConfig
    from mlproj.tracking.runs import sqlite_path, tracking_uri

    store = tracking_uri(TrackingConfig(uri=uri))
    db = sqlite_path(store)
    if db is not None and not db.is_file():
        raise ConfigError(f"no MLflow store at {db}; pass --tracking-uri (the store run {run_id} is in)")
    client = MlflowClient(store)
    try:
        original = client.get_run(run_id)
        with tempfile.TemporaryDirectory() as folder, _no_progress_bar():
            logged = OmegaConf.load(client.download_artifacts(run_id, CONFIG_ARTIFACT, folder))
    except (MlflowException, OSError) as exc:
        raise ConfigError(f"run {run_id}: no logged config ({CONFIG_ARTIFACT}) in {store}: {exc}") from None
    cfg = typed(logged, run_id)
    apply(cfg, overrides)
    cfg.resume = None  # a new run, never the original continued
    if cfg.tracking.uri is None:
        cfg.tracking.uri = store  # the original's store, wherever this command runs from
    cfg.tracking.experiment = client.get_experiment(original.info.experiment_id).name
    with open_dict(cfg):
        cfg.tracking.tags[tags.REPRODUCED_FROM] = run_id
    masked = [key for key, value in _leaves(cfg) if isinstance(value, str) and "***" in value]
    if masked:
        raise ConfigError(f"run {run_id} logged {', '.join(masked)} masked; give the value again (KEY=VALUE)")
    return cfg


def typed(logged: Any, run_id: str) -> DictConfig:
    """The logged YAML under the schema again (enums, types, struct: an unknown key is an error)."""
    from mlproj.config.schema import Config

    try:
        cfg = OmegaConf.merge(OmegaConf.structured(Config), logged)
    except Exception as exc:  # a config from another mlproj version: keys it no longer has
        raise ConfigError(f"run {run_id}'s config does not fit this mlproj's schema: {exc}".splitlines()[0]) from None
    OmegaConf.set_struct(cfg, True)
    return cfg


def apply(cfg: DictConfig, overrides: list[str]) -> None:
    """key=value (+key=value to add a key, ~key to remove one), values in Hydra's override grammar."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception as exc:
        raise ConfigError(f"{' '.join(overrides)}: {exc}".splitlines()[0]) from None
    for override in parsed:
        key = override.key_or_group
        if override.is_delete():
            with open_dict(cfg):
                OmegaConf.update(cfg, key, None, merge=False)
            continue
        value = override.value()
        if not override.is_add() and OmegaConf.select(cfg, key, default=_ABSENT) is _ABSENT:
            raise ConfigError(f"{key} is not a key of run's config; +{key}=... adds one")
        if isinstance(value, str) and OmegaConf.select(cfg, f"{key}._target_", default=None) is not None:
            raise ConfigError(f"{key}={value}: reproduce changes keys of the logged config, not groups; set {key}.KEY")
        try:
            with open_dict(cfg) if override.is_add() else nullcontext():
                OmegaConf.update(cfg, key, value, merge=True)
        except Exception as exc:
            raise ConfigError(f"{key}={value}: {exc}".splitlines()[0]) from None


_ABSENT = object()


@contextmanager
def _no_progress_bar() -> Iterator[None]:
    """MLflow's download bar would precede the one line an error prints."""
    from mlflow.environment_variables import MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR

    before = os.environ.get(MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.name)
    os.environ[MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.name] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.name, None)
        else:
            os.environ[MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.name] = before


def _leaves(node: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(node, DictConfig):
        return [leaf for k, v in node.items_ex(resolve=False) for leaf in _leaves(v, f"{prefix}{k}.")]
    return [(prefix.rstrip("."), node)]


if __name__ == "__main__":
    raise SystemExit(main())
