"""Hydra callbacks: what happens once around a whole multirun, in the launching process."""

from __future__ import annotations

import logging
import sys
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from mlproj.config.schema import gate_on, plain

log = logging.getLogger(__name__)
BASIC_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"  # jobs in this process


class SweepCallback(Callback):
    """Opens the sweep's parent run before any job, and at the end summarises it and, for
    `registry.when=best`, gates the sweep's best trial (each trial skipped its own gate: `deferred`)."""

    # Hydra turns a callback's exception into a warning and goes on, so errors are reported here.
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from mlproj.config.checks import check_config
        from mlproj.config.naming import fill_default_experiment
        from mlproj.errors import ConfigError
        from mlproj.sweeps.runs import check_devices, start_parent

        fill_default_experiment(config)  # the parent's experiment, the Optuna study's name; trials follow it
        try:
            check_config(config)  # a bad config must not leave an empty parent run behind
            check_devices(config)
        except ConfigError as exc:
            print(f"mlproj: error: {exc}", file=sys.stderr)
            sys.exit(2)
        start_parent(config, config.hydra.sweep.dir, list(config.hydra.overrides.task))
        if OmegaConf.select(config, "hydra.launcher._target_") != BASIC_LAUNCHER:
            # The jobs run in other processes (joblib, submitit): this one only waits on them, with the
            # collector on (mlproj.startup); with the basic launcher the first job's run turns it on.
            from mlproj import startup

            startup.started()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            self._finish(config)
        except Exception as exc:
            print(f"mlproj: error at the end of the sweep: {exc}", file=sys.stderr)
            raise

    def _finish(self, config: DictConfig) -> None:
        from mlproj.sweeps.runs import finish_parent

        summary = finish_parent(config)
        if summary.get("status") == "FAILED":
            print("mlproj: every trial of the sweep failed", file=sys.stderr)
            sys.exit(1)
        if summary.get("status") == "RUNNING":  # other workers of the study are on it: the last one gates
            return
        reg = config.registry
        if plain(reg.when) != "best" or not summary.get("best_run_id") or not gate_on(reg):
            return
        from mlproj.register import register_best

        register_best(
            run_id=summary["best_run_id"],
            model_name=reg.model_name,
            thresholds=[f"{k}={v}" for k, v in reg.thresholds.items()],
            primary_metric=reg.primary_metric,
            promote=plain(reg.promote),
            tracking_uri=config.tracking.uri,
            registry_uri=config.tracking.registry_uri,
            source="mlproj sweep (registry.when=best)",
            chosen_by=summary.get("objective"),  # the sweep ranked its trials by sweep.objective
        )
