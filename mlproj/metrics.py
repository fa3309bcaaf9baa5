"""Every metric's name, direction and constructor: the single source of truth.

Early stopping, checkpoint selection, registry thresholds and sweep objectives all name metrics as
`{stage}_{metric}` (`val_rmse`, `test_accuracy`) and are checked here, so a metric name is never an
unchecked string. torch/torchmetrics are imported lazily: config checks run without them.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlproj.errors import ConfigError

if TYPE_CHECKING:
    from torchmetrics import MetricCollection

STAGES = ("train", "val", "test")
REGRESSION, CLASSIFICATION = "regression", "classification"


@dataclass(frozen=True)
class MetricSpec:
    name: str
    higher_is_better: bool
    tasks: tuple[str, ...]


_SPECS = (
    MetricSpec("loss", False, (REGRESSION, CLASSIFICATION)),
    MetricSpec("mse", False, (REGRESSION,)),
    MetricSpec("rmse", False, (REGRESSION,)),
    MetricSpec("mae", False, (REGRESSION,)),
    MetricSpec("r2", True, (REGRESSION,)),
    MetricSpec("accuracy", True, (CLASSIFICATION,)),
    MetricSpec("f1", True, (CLASSIFICATION,)),
    MetricSpec("precision", True, (CLASSIFICATION,)),
    MetricSpec("recall", True, (CLASSIFICATION,)),
    MetricSpec("auroc", True, (CLASSIFICATION,)),
)
SPECS: dict[str, MetricSpec] = {s.name: s for s in _SPECS}

# The metric a task is judged by when nothing else is named (registry champion, sweep objective).
MAIN_METRIC = {REGRESSION: "rmse", CLASSIFICATION: "accuracy"}


def metric_names(task: str, stages: tuple[str, ...] = STAGES) -> list[str]:
    return [f"{st}_{s.name}" for st in stages for s in _SPECS if task in s.tasks]


def spec_of(full_name: str, task: str, stages: tuple[str, ...] = STAGES, key: str = "metric") -> MetricSpec:
    """The spec of `{stage}_{metric}`; ConfigError listing the valid names when it is not produced."""
    stage, _, base = full_name.partition("_")
    if stage in stages and base in SPECS and task in SPECS[base].tasks:
        return SPECS[base]
    valid = ", ".join(metric_names(task, stages))
    raise ConfigError(f"{key}: {full_name!r} is not a metric of a {task} run; choose one of: {valid}")


def mode(full_name: str, task: str) -> str:
    """'max' or 'min', as Lightning's EarlyStopping/ModelCheckpoint and Optuna expect."""
    return "max" if spec_of(full_name, task).higher_is_better else "min"


def main_metric(task: str, stage: str = "test") -> str:
    return f"{stage}_{MAIN_METRIC[task]}"


def is_better(full_name: str, task: str, new: float, old: float) -> bool:
    return new > old if spec_of(full_name, task).higher_is_better else new < old


# --- thresholds ---------------------------------------------------------------------------------------

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}
_CONDITION = re.compile(r"^\s*(>=|<=|>|<)?\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")


@dataclass(frozen=True)
class Threshold:
    metric: str
    op: str
    value: float

    def passes(self, actual: float) -> bool:
        return _OPS[self.op](actual, self.value)

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


def parse_threshold(metric: str, condition: Any, task: str) -> Threshold:
    """`0.4` means "at least this good" in the metric's direction; `"<60"` or `">=0.4"` are explicit."""
    spec = spec_of(metric, task, stages=("val", "test"), key=f"registry.thresholds.{metric}")
    if isinstance(condition, bool):
        condition = None  # a bool is not a number here, although Python says it is
    match = _CONDITION.match(str(condition)) if condition is not None else None
    if match is None:
        raise ConfigError(
            f"registry.thresholds.{metric}={condition!r} is not a condition; "
            "use a number (at least this good) or an operator and a number, e.g. '<60' or '>=0.4'"
        )
    op = match.group(1) or (">=" if spec.higher_is_better else "<=")
    return Threshold(metric, op, float(match.group(2)))


# --- torchmetrics objects -----------------------------------------------------------------------------


def build_metrics(task: str, num_classes: int, stage: str) -> MetricCollection:
    """The torchmetrics objects of a stage; their keys are the logged names (`val_rmse`, ...)."""
    import torchmetrics as tm

    if task == REGRESSION:
        metrics = {
            "mse": tm.MeanSquaredError(),
            "rmse": tm.MeanSquaredError(squared=False),
            "mae": tm.MeanAbsoluteError(),
            "r2": tm.R2Score(),
        }
    else:
        kind = "binary" if num_classes == 2 else "multiclass"
        args: dict[str, Any] = {"task": kind}
        if kind == "multiclass":
            args.update(num_classes=num_classes, average="macro")
        metrics = {
            # accuracy is the plain share of correct rows; the others average classes equally (macro)
            "accuracy": tm.Accuracy(**{**args, "average": "micro"}),
            "f1": tm.F1Score(**args),
            "precision": tm.Precision(**args),
            "recall": tm.Recall(**args),
            "auroc": tm.AUROC(**args),
        }
    return tm.MetricCollection(metrics, prefix=f"{stage}_")
