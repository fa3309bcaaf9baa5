"""A scikit-learn model beside every table run (`baseline=hgb|linear|none`): fitted on the same training split and
the same preprocessed features, scored on the same val/test rows by the same torchmetrics code
(`mlproj.scores`), logged as `baseline_val_*` / `baseline_test_*`. Whether deep learning paid off is then one
glance at the summary, and `registry.require_beats_baseline=true` makes it a gate."""

from __future__ import annotations

import logging
import time
from typing import Any

from mlproj import metrics, tags
from mlproj.config.schema import plain
from mlproj.plan import Plan

log = logging.getLogger(__name__)

PREFIX = "baseline_"
SECONDS = "baseline_seconds"  # what the baseline added to the run (fit and score)


def applies(plan: Plan) -> bool:
    """mlproj's own in-memory tables with the built-in task: images, text, series, streaming files and data
    modules of your own have no features a scikit-learn model takes as they are."""
    from mlproj.data.preprocess import Preprocessor

    prepared = plan.prepared
    return (
        plan.builtin
        and prepared is not None
        and type(prepared.pre) is Preprocessor
        and getattr(prepared, "inputs", None) is None
        and getattr(prepared, "plan", None) is None
        and plan.targets == 1
    )


def measure(choice: Any, plan: Plan, seed: int, run_logger: Any = None) -> dict[str, float]:
    """{baseline_val_*, baseline_test_*, baseline_seconds}, logged through the run's logger; {} when off."""
    choice = plain(choice)
    if choice == "none" or not applies(plan):
        return {}
    start = time.perf_counter()
    try:
        values = fit_and_score(choice, plan, seed)
    except (ValueError, MemoryError) as exc:  # the network's run stays good without its baseline
        log.warning("baseline=%s skipped: %s", choice, exc)
        return {}
    values[SECONDS] = time.perf_counter() - start
    if run_logger is not None:
        run_logger.log_metrics(values, step=0)
        if run_logger.client is not None:
            from mlproj.tracking.outage import is_connection_error

            try:  # informative only (the baseline_* metrics say it too): not worth waiting out a lost server
                run_logger.client.set_tag(run_logger.run_id, tags.BASELINE, choice)
            except Exception as exc:
                if not is_connection_error(exc):
                    raise
                log.warning("the %s tag is not set: the tracking server is not answering", tags.BASELINE)
    return values


def fit_and_score(choice: str, plan: Plan, seed: int) -> dict[str, float]:
    from mlproj.scores import score

    prepared, pre = plan.prepared, plan.prepared.pre
    train, val = prepared.splits["train"], prepared.splits["val"]
    model = estimator(choice, plan.kind, seed)
    if choice == "hgb" and len(val.x):  # early stopping on the val split, as the network's
        model.set_params(early_stopping=True)
        model.fit(train.x, _target(train.y, plan.kind), X_val=val.x, y_val=_target(val.y, plan.kind))
    else:
        model.fit(train.x, _target(train.y, plan.kind))
    values: dict[str, float] = {}
    for stage in ("val", "test"):
        split = prepared.splits[stage]
        if len(split.x) == 0:
            continue
        if plan.kind == metrics.REGRESSION:  # back to the target's units, as the network's metrics are
            prediction, probs = pre.decode_regression(model.predict(split.x)), None
        else:
            probs = model.predict_proba(split.x)
            prediction = probs.argmax(1)
        values.update(score(plan.kind, list(pre.labels), split.raw_target, prediction, probs, f"{PREFIX}{stage}"))
    return values


def _target(y: Any, kind: str) -> Any:
    return y.reshape(len(y), -1)[:, 0] if kind == metrics.REGRESSION else y


def estimator(choice: str, kind: str, seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression, Ridge

    if choice == "hgb":
        cls = HistGradientBoostingRegressor if kind == metrics.REGRESSION else HistGradientBoostingClassifier
        return cls(random_state=seed)
    return Ridge() if kind == metrics.REGRESSION else LogisticRegression(max_iter=1000)
