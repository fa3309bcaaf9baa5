"""Hydra callbacks: what happens once around a whole multirun, in the launching process."""

from __future__ import annotations

import logging
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)


class SweepRegistrar(Callback):
    """`registry.when=best`: when the sweep ends, gate and register only its best trial.

    Each trial's run carries the sweep's directory in its `mlproj.sweep` tag and skipped its own gate
    (tagged `deferred`); here the best of them by the primary metric goes through the same gate.
    """

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        reg = config.registry
        if str(getattr(reg.when, "value", reg.when)) != "best":
            return
        if reg.enabled is False or (reg.enabled is None and not reg.thresholds):
            return
        from mlproj.register import register_best
        from mlproj.registry import RegistryError

        try:
            register_best(
                experiment=config.tracking.experiment,
                sweep=config.hydra.sweep.dir,
                metric=reg.primary_metric,
                model_name=reg.model_name,
                thresholds=[f"{k}={v}" for k, v in reg.thresholds.items()],
                primary_metric=reg.primary_metric,
                promote=str(getattr(reg.promote, "value", reg.promote)),
                tracking_uri=config.tracking.uri,
                registry_uri=config.tracking.registry_uri,
                source="mlproj sweep (registry.when=best)",
            )
        except RegistryError as exc:
            log.error("%s", exc)
            raise
