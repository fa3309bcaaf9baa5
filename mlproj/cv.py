"""k-fold cross-validation, `cv.folds=K`: a parent MLflow run, one nested run per fold, each metric's mean and std.

Each fold is an ordinary run (train.run: model, plots, baselines) whose test split is that fold's rows, the rest
split into train and val in the configured proportion; stratified folds for classification, shuffled with
data.split_seed. Every check runs once before the parent exists. The folds are not gated (cv estimates how good
the recipe is; train once without cv.folds to register a model); the parent ends FINISHED, or FAILED/KILLED.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, open_dict

from mlproj import tags
from mlproj.errors import ConfigError
from mlproj.metrics import CLASSIFICATION
from mlproj.plan import Plan, make_plan
from mlproj.results import RunResult


def cross_validate(cfg: DictConfig, overrides: list[str], output_dir: Path | None, sweep: str | None) -> RunResult:
    from mlproj import baselines, train
    from mlproj.data.prepare import prepare
    from mlproj.tracking import runs as tracking

    if sweep is not None:
        raise ConfigError("cv.folds inside a multirun: nested runs cannot nest twice; cross-validate one config")
    plan = make_plan(cfg)
    if not baselines.applies(plan):
        raise ConfigError("cv.folds needs one of mlproj's in-memory tables with the built-in task (data=csv, ...)")
    folds = int(cfg.cv.folds)
    if len(plan.prepared.table.target) < 2 * folds:
        raise ConfigError(f"cv.folds={folds}: the table has only {len(plan.prepared.table.target)} rows")
    client, experiment_id = tracking.connect(cfg.tracking)
    parent_tags = {tags.CV_ROLE: "parent", tags.TASK: plan.metric_task, **plan.info, **cfg.tracking.tags}
    name = cfg.tracking.run_name or f"cv {folds} folds"
    parent = client.create_run(experiment_id, run_name=name, tags=parent_tags).info.run_id
    status, found = "FAILED", []
    try:
        client.log_param(parent, "cv.folds", folds)
        for k, parts in enumerate(fold_indices(plan, folds)):
            fold_plan = dataclasses.replace(plan, prepared=prepare(plan.prepared.table, plan.kind, plan.source, parts))
            folder = output_dir / f"fold{k}" if output_dir is not None else None
            found.append(train.run(fold_config(cfg, parent, k), overrides, folder, plan=fold_plan))
        summary = mean_and_std([r.metrics for r in found])
        client.log_batch(parent, metrics=[_metric(k, v) for k, v in summary.items()])
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        client.set_terminated(parent, status)
    experiment, uri = client.get_experiment(experiment_id).name, tracking.tracking_uri(cfg.tracking)
    result = RunResult(parent, experiment, uri, summary, None, plan.metric_task, {"folds": [r.run_id for r in found]})
    print(report(result, folds), flush=True)
    return result


def fold_indices(plan: Plan, folds: int) -> list[dict[str, np.ndarray]]:
    """Row indices per fold: {"train", "val", "test"}; the test parts cover every row once."""
    from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

    source, target = plan.source, plan.prepared.table.target
    classes = plan.kind == CLASSIFICATION and target.value_counts().min() >= folds
    splitter = (StratifiedKFold if classes else KFold)(folds, shuffle=True, random_state=source.split_seed)
    share = source.val_fraction / (1 - source.test_fraction)  # val's share of the rest, as without cv
    out = []
    for rest, test in splitter.split(np.zeros(len(target)), target if classes else None):
        strata = target.iloc[rest] if classes and target.iloc[rest].value_counts().min() >= 2 else None
        train, val = train_test_split(rest, test_size=share, random_state=source.split_seed, stratify=strata)
        out.append({"train": train, "val": val, "test": test})
    return out


def fold_config(cfg: DictConfig, parent: str, k: int) -> DictConfig:
    """The fold's config: nested under the parent (MLflow's parent tag), named, not gated."""
    fold = copy.deepcopy(cfg)
    with open_dict(fold):
        fold.tracking.tags = {**cfg.tracking.tags, tags.PARENT: parent, tags.CV_ROLE: "fold", tags.CV_FOLD: str(k)}
        fold.tracking.run_name = f"fold {k}"
        fold.registry.enabled = False
        fold.registry.require_beats_baseline = False
    return fold


def mean_and_std(per_fold: list[dict[str, float]]) -> dict[str, float]:
    """`<metric>_mean` and `<metric>_std` (over folds, numpy's std) of every metric all folds have."""
    names = set.intersection(*(set(m) for m in per_fold)) if per_fold else set()
    summary = {}
    for name in sorted(names):
        values = np.array([m[name] for m in per_fold], dtype=float)
        summary[f"{name}_mean"], summary[f"{name}_std"] = float(values.mean()), float(values.std())
    return summary


def report(result: RunResult, folds: int) -> str:
    lines = ["", f"mlproj: cross-validation run {result.run_id} FINISHED ({folds} folds, nested runs under it)"]
    lines.append(f"  {'metric':<24} {'mean':>10} {'std':>10}")
    for name in sorted(n[: -len("_mean")] for n in result.metrics if n.endswith("_mean")):
        lines.append(f"  {name:<24} {result.metrics[name + '_mean']:>10.6g} {result.metrics[name + '_std']:>10.6g}")
    return "\n".join(lines)


def _metric(key: str, value: float) -> Any:
    import time

    from mlflow.entities import Metric

    return Metric(key, value, int(time.time() * 1000), 0)
