"""After training: the results into the run (metrics, objective, packaged model, plots, FINISHED), each step
waiting out a lost tracking server (tracking.retry_for); past that, everything kept on disk for mlproj.upload."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from mlproj import tags
from mlproj.config.schema import gate_on
from mlproj.errors import KeptLocally, TrackingLost
from mlproj.packaging import pyfunc as packaging
from mlproj.sweeps.pruning import OBJECTIVE_METRIC
from mlproj.tracking import outage
from mlproj.tracking.outage import KEPT_FOLDER
from mlproj.tracking.runs import redact


def publish(
    cfg: DictConfig,
    client: Any,
    run_id: str,
    lost: outage.Outage,
    run_logger: Any,
    results: dict[str, float],
    package: packaging.Package,
    figures: dict[str, Any],
    score: float | None,
    work_dir: Path,
    task: str,
    in_sweep: bool,
) -> str | None:
    """Send it all and end the run FINISHED; returns the model's URI. Raises KeptLocally when the server
    stayed away."""
    from mlproj import plots

    model_uri = None
    try:
        run_logger.flush()
        if in_sweep and score is not None:
            lost.call(lambda: client.log_metric(run_id, OBJECTIVE_METRIC, score), "objective")
        if cfg.tracking.log_model:
            info = lost.call(lambda: packaging.log_model(package), "model")
            model_uri = info.model_uri
            lost.call(lambda: client.set_tag(run_id, tags.MODEL_URI, model_uri), "model tag")
        if figures:
            lost.call(lambda: plots.log_plots(client, run_id, figures), "plots")
        lost.call(lambda: client.set_terminated(run_id, "FINISHED"), "status")
    except TrackingLost:
        record = {
            "run_id": run_id,
            "tracking_uri": redact(lost.uri),
            "results": results,
            "task": task,
            "model_uri": model_uri,
            "objective": [OBJECTIVE_METRIC, score] if in_sweep and score is not None else None,
            "registry": gate_on(cfg.registry),
        }
        save = partial(packaging.save_model, package=package) if cfg.tracking.log_model and model_uri is None else None
        folder = outage.keep_locally(work_dir / KEPT_FOLDER, record, run_logger.pending(), save, figures)
        raise KeptLocally(folder.resolve(), run_id) from None
    return model_uri
