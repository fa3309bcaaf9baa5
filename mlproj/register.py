"""Register the best run, after the fact: `python -m mlproj.register --experiment NAME [...]`.

Picks the best FINISHED run that logged a model (in an experiment, optionally one sweep and an MLflow filter
string) by a metric, in that metric's direction, then applies the same gate as a training run: thresholds,
a new version, the challenger and champion aliases. `--dry-run` shows what it would do and writes nothing.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mlproj import metrics, tags
from mlproj.errors import ConfigError, MlprojError, report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m mlproj.register", description=__doc__.splitlines()[0])
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--experiment", help="experiment name to pick the best run from")
    where.add_argument("--run-id", help="register this run instead of searching")
    p.add_argument("--metric", help="rank runs by this metric (default: the task's main validation metric)")
    p.add_argument(
        "--filter", default="", help="an MLflow filter string, e.g. \"params.`model._target_` LIKE '%%MLP'\""
    )
    p.add_argument("--sweep", help="only runs of this sweep (its mlproj.sweep tag, the multirun directory)")
    p.add_argument("--model-name", help="registered model name (default: <experiment>-<data name>)")
    p.add_argument(
        "--threshold",
        action="append",
        default=None,
        metavar="METRIC=COND",
        help="e.g. test_r2=0.4 or 'test_rmse=<60' (repeatable; default: the thresholds the run was trained with)",
    )
    p.add_argument("--primary-metric", help="champion comparison metric (default: the task's main val metric)")
    p.add_argument("--promote", choices=["auto", "never"], default="auto")
    p.add_argument("--tracking-uri", help="default: $MLFLOW_TRACKING_URI, else sqlite:///./mlflow.db")
    p.add_argument("--registry-uri", help="default: the tracking URI")
    p.add_argument("--dry-run", action="store_true", help="show the choice and the decision; write nothing")
    return p.parse_args(argv)


def best_run(client: Any, experiment_ids: list[str], metric: str | None, filter_string: str, sweep: str | None) -> Any:
    """The best finished run with a logged model; ranks in the metric's direction for the run's task."""
    clauses = ["attributes.status = 'FINISHED'", f"tags.`{tags.MODEL_URI}` LIKE 'models:/%'"]
    if sweep:
        clauses.append(f"tags.`mlproj.sweep` = '{sweep}'")
    if filter_string:
        clauses.append(f"({filter_string})" if " or " in filter_string.lower() else filter_string)
    runs = client.search_runs(experiment_ids, filter_string=" and ".join(clauses), max_results=5000)
    if not runs:
        raise ConfigError("no FINISHED run with a logged model matches: " + " and ".join(clauses))
    groups = {(r.data.tags.get(tags.DATA_NAME, "?"), r.data.tags.get(tags.TASK, "?")) for r in runs}
    if len(groups) != 1:
        # Runs of different datasets or tasks are not comparable on one metric.
        name, task = sorted(groups)[0]
        listed = ", ".join(f"{d} ({t})" for d, t in sorted(groups))
        raise ConfigError(
            f"the matching runs mix datasets/tasks: {listed}; pick one, e.g. "
            f"--filter \"tags.`mlproj.data.name` = '{name}' and tags.`mlproj.task` = '{task}'\""
        )
    task = groups.pop()[1]
    metrics.declare_from_run(runs[0].data.tags, runs[0].data.params)
    metric = metric or metrics.main_metric(task, "val")  # choosing on test would over-fit the test set
    metrics.spec_of(metric, task, stages=("val", "test"), key="--metric")
    ranked = [r for r in runs if metric in r.data.metrics]
    if not ranked:
        raise ConfigError(f"none of the {len(runs)} matching runs logged {metric}")
    sign = 1 if metrics.mode(metric, task) == "max" else -1
    return max(ranked, key=lambda r: sign * r.data.metrics[metric]), task, metric


def chosen(run: Any, metric: str | None, by: str | None) -> str:
    """Which run, and the metric that chose it (a run named by its id was chosen by whoever named it)."""
    by = by or ""
    value = run.data.metrics.get(by or metric)
    shown = f" {by or metric}={value:.6g}" if value is not None else ""
    head = f"best run by {by}" if by else "run named by --run-id"
    return f"{head}: {run.info.run_id} ({run.info.run_name}){shown}"


def thresholds_of(run: Any, given: list[str] | None, task: str) -> list[metrics.Threshold]:
    if given is not None:
        pairs = []
        for item in given:
            name, sep, cond = item.partition("=")
            if not sep:
                raise ConfigError(f"--threshold {item!r}: use METRIC=CONDITION, e.g. test_r2=0.4")
            pairs.append((name.strip(), cond))
    else:  # the thresholds the run was trained with, from its params
        prefix = "registry.thresholds."
        pairs = [(k[len(prefix) :], v) for k, v in run.data.params.items() if k.startswith(prefix)]
    return [metrics.parse_threshold(name, cond, task) for name, cond in pairs]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return _register(args)
    except MlprojError as exc:
        return report(exc, "mlproj.register")


def _register(args: argparse.Namespace) -> int:
    register_best(
        experiment=args.experiment,
        run_id=args.run_id,
        metric=args.metric,
        filter_string=args.filter,
        sweep=args.sweep,
        model_name=args.model_name,
        thresholds=args.threshold,
        primary_metric=args.primary_metric,
        promote=args.promote,
        tracking_uri=args.tracking_uri,
        registry_uri=args.registry_uri,
        dry_run=args.dry_run,
    )
    return 0


def register_best(
    *,
    experiment: str | None = None,
    run_id: str | None = None,
    metric: str | None = None,
    filter_string: str = "",
    sweep: str | None = None,
    model_name: str | None = None,
    thresholds: list[str] | None = None,
    primary_metric: str | None = None,
    promote: str = "auto",
    tracking_uri: str | None = None,
    registry_uri: str | None = None,
    dry_run: bool = False,
    source: str = "mlproj.register",
    chosen_by: str | None = None,
) -> Any:
    """Pick the run (best of an experiment or sweep, or the one named, `chosen_by` a sweep's objective), gate it."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from mlproj.config.schema import TrackingConfig
    from mlproj.registry import gate as registry
    from mlproj.tracking.runs import sqlite_path
    from mlproj.tracking.runs import tracking_uri as resolve_uri

    uri = resolve_uri(TrackingConfig(uri=tracking_uri))
    mlflow.set_tracking_uri(uri)
    if registry_uri:
        mlflow.set_registry_uri(registry_uri)
    client = MlflowClient(uri, registry_uri)
    if run_id:
        run = client.get_run(run_id)
        task = run.data.tags.get(tags.TASK, "")
        if (
            task not in (metrics.REGRESSION, metrics.CLASSIFICATION, metrics.CUSTOM)
            or tags.MODEL_URI not in run.data.tags
        ):
            raise ConfigError(f"run {run_id} is not an mlproj run with a logged model")
        metrics.declare_from_run(run.data.tags, run.data.params)
    else:
        found = client.get_experiment_by_name(experiment or "")
        if found is None:
            names = ", ".join(e.name for e in client.search_experiments())
            raise ConfigError(f"no experiment named {experiment!r}; experiments: {names}")
        run, task, metric = best_run(client, [found.experiment_id], metric, filter_string, sweep)
    experiment_name = client.get_experiment(run.info.experiment_id).name
    data_name = run.data.tags.get(tags.DATA_NAME, "model")
    target = run.data.tags.get(tags.DATA_TARGET, "target")
    name = model_name or registry.default_model_name(experiment_name, data_name, target)
    registry.check_registry_uri(registry_uri, name)
    policy = registry.Policy(
        model_name=name,
        task=task,
        thresholds=thresholds_of(run, thresholds, task),
        primary_metric=primary_metric or "",
        promote=promote,
    )
    metrics.spec_of(policy.primary_metric, task, stages=("val", "test"), key="primary metric")
    print(chosen(run, metric, chosen_by if run_id else metric))
    db = sqlite_path(registry_uri or uri)
    decision = registry.gate(
        client,
        run.info.run_id,
        run.data.tags[tags.MODEL_URI],
        run.data.metrics,
        policy,
        extra_tags={tags.REGISTERED_BY: source},
        lock_path=f"{db}.registry.lock" if db else None,
        dry_run=dry_run,
    )
    print(
        registry.plan(client, decision, policy, run.data.metrics, run.info.run_id)
        if dry_run
        else registry.report(decision, policy)
    )
    return decision


if __name__ == "__main__":
    sys.exit(main())
