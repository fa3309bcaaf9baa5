"""Every metric's name and direction, and the torchmetrics objects behind them.

Early stopping, checkpoint selection, registry thresholds and sweep objectives name metrics as
`{stage}_{metric}` (`val_rmse`, `test_accuracy`) and are checked here, so a metric name is never an unchecked
string. Directions are torchmetrics' own `higher_is_better`: for the built-in metrics, for the extra ones a
config adds (`+metrics.mape._target_=torchmetrics.MeanAbsolutePercentageError` -> `val_mape`, `test_mape`), and
`metric_directions` says it for names only a task of your own logs (`declare`, once per run at startup).
torch/torchmetrics are imported lazily: config checks run without them until a direction is asked for.
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
CUSTOM = "custom"  # a task of your own: it names and logs its metrics itself


@dataclass(frozen=True)
class MetricSpec:
    name: str
    torchmetric: str  # the torchmetrics class whose higher_is_better is this metric's direction ("" for the loss)
    tasks: tuple[str, ...]

    @property
    def higher_is_better(self) -> bool:
        return direction_of(self.torchmetric) if self.torchmetric else False  # a loss is minimised


_SPECS = (
    MetricSpec("loss", "", (REGRESSION, CLASSIFICATION)),
    MetricSpec("mse", "torchmetrics.regression.MeanSquaredError", (REGRESSION,)),
    MetricSpec("rmse", "torchmetrics.regression.MeanSquaredError", (REGRESSION,)),
    MetricSpec("mae", "torchmetrics.regression.MeanAbsoluteError", (REGRESSION,)),
    MetricSpec("r2", "torchmetrics.regression.R2Score", (REGRESSION,)),
    # The task wrappers (torchmetrics.Accuracy) leave higher_is_better unset; their binary classes say it.
    MetricSpec("accuracy", "torchmetrics.classification.BinaryAccuracy", (CLASSIFICATION,)),
    MetricSpec("f1", "torchmetrics.classification.BinaryF1Score", (CLASSIFICATION,)),
    MetricSpec("precision", "torchmetrics.classification.BinaryPrecision", (CLASSIFICATION,)),
    MetricSpec("recall", "torchmetrics.classification.BinaryRecall", (CLASSIFICATION,)),
    MetricSpec("auroc", "torchmetrics.classification.BinaryAUROC", (CLASSIFICATION,)),
)
SPECS: dict[str, MetricSpec] = {s.name: s for s in _SPECS}

# The metric a task is judged by when nothing else is named (registry champion, sweep objective).
MAIN_METRIC = {REGRESSION: "rmse", CLASSIFICATION: "accuracy"}


def direction_of(torchmetric: Any) -> bool:
    """torchmetrics' own `higher_is_better` of a Metric class (instantiated when only instances say it)."""
    import importlib

    cls = torchmetric
    if not isinstance(cls, str | type):  # an instance: its class may say it only once built
        value = getattr(cls, "higher_is_better", None)
        if value is None:
            raise ConfigError(f"{type(cls).__name__} does not say whether higher is better; set metric_directions")
        return bool(value)
    if isinstance(cls, str):
        module, _, name = cls.rpartition(".")
        cls = getattr(importlib.import_module(module), name)
    value = getattr(cls, "higher_is_better", None)
    if value is None:
        raise ConfigError(f"{cls.__name__} does not say whether higher is better; set metric_directions")
    return bool(value)


# Per run, set by `declare` at startup: extra metrics' directions by base name (`mape`), and full names a task
# of your own logs (`val_acc`), with the main metric of such a task (its trainer.monitor's base name).
_declared: dict[str, bool] = {}
_custom_main: list[str] = []


def declare(extra: dict[str, bool], directions: dict[str, str], monitor: str | None = None) -> None:
    """The run's own metric names: `extra` (base name -> higher_is_better, from the config's `metrics`) and
    `directions` (`metric_directions`: full or base name -> "min"/"max")."""
    _declared.clear()
    _declared.update(extra)
    _declared.update({k: v == "max" for k, v in directions.items()})
    for name, direction in directions.items():  # val_acc=max says it of test_acc too (the same metric)
        stage, _, base = name.partition("_")
        if stage in STAGES and base:
            _declared.setdefault(base, direction == "max")
    _custom_main[:] = [monitor.partition("_")[2]] if monitor else []


def declare_from_run(run_tags: dict[str, str], params: dict[str, str]) -> None:
    """What a logged run declared (its `mlproj.metric_directions` tag, its trainer.monitor): for ranking and
    thresholds read back from MLflow (mlproj.register, a sweep's summary)."""
    import json

    from mlproj import tags  # the module (the argument's old name `tags` hid it: every sweep summary failed)

    declare(json.loads(run_tags.get(tags.METRIC_DIRECTIONS) or "{}"), {}, params.get("trainer.monitor"))


def declared() -> dict[str, bool]:
    return dict(_declared)


def metric_names(task: str, stages: tuple[str, ...] = STAGES) -> list[str]:
    builtin = [s.name for s in _SPECS if task in s.tasks]
    extra = [n for n in _declared if "_" not in n or n.partition("_")[0] not in STAGES]
    full = [n for n in _declared if n not in extra and n.partition("_")[0] in stages]
    return [f"{st}_{n}" for st in stages for n in builtin + extra] + full


def spec_of(full_name: str, task: str, stages: tuple[str, ...] = STAGES, key: str = "metric") -> MetricSpec:
    """The spec of `{stage}_{metric}`; ConfigError listing the valid names when it is not produced."""
    stage, _, base = full_name.partition("_")
    if stage in stages:
        if full_name in _declared:
            return _declared_spec(full_name)
        if base in SPECS and (task in SPECS[base].tasks or (task == CUSTOM and base == "loss")):
            return SPECS[base]
        if base in _declared:
            return _declared_spec(base)
    if task == CUSTOM:
        raise ConfigError(
            f"{key}: {full_name!r}: mlproj cannot know this metric's direction; "
            f"set metric_directions.{full_name}=min or max (stages: {', '.join(stages)})"
        )
    valid = ", ".join(metric_names(task, stages))
    raise ConfigError(f"{key}: {full_name!r} is not a metric of a {task} run; choose one of: {valid}")


def _declared_spec(name: str) -> MetricSpec:
    return _DeclaredSpec(name, "", (), _declared[name])


@dataclass(frozen=True)
class _DeclaredSpec(MetricSpec):
    declared_higher: bool = False

    @property
    def higher_is_better(self) -> bool:
        return self.declared_higher


def mode(full_name: str, task: str) -> str:
    """'max' or 'min', as Lightning's EarlyStopping/ModelCheckpoint and Optuna expect."""
    return "max" if spec_of(full_name, task).higher_is_better else "min"


def main_metric(task: str, stage: str = "test") -> str:
    if task == CUSTOM:
        return f"{stage}_{_custom_main[0] if _custom_main else 'loss'}"
    return f"{stage}_{MAIN_METRIC[task]}"


def objective(explicit: str | None, task: str) -> str:
    """What a sweep optimises and ranks trials by: sweep.objective, else the task's main val metric."""
    return explicit or main_metric(task, "val")


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


def parse_condition(metric: str, condition: Any) -> re.Match:
    """A threshold's syntax alone (the config checks, before the data says which metrics exist)."""
    if isinstance(condition, bool):
        condition = None  # a bool is not a number here, although Python says it is
    match = _CONDITION.match(str(condition)) if condition is not None else None
    if match is None:
        raise ConfigError(
            f"registry.thresholds.{metric}={condition!r} is not a condition; "
            "use a number (at least this good) or an operator and a number, e.g. '<60' or '>=0.4'"
        )
    return match


def parse_threshold(metric: str, condition: Any, task: str) -> Threshold:
    """`0.4` means "at least this good" in the metric's direction; `"<60"` or `">=0.4"` are explicit."""
    match = parse_condition(metric, condition)
    op = match.group(1)
    if op is None or task != CUSTOM or metric.partition("_")[0] not in ("val", "test"):
        # An explicit operator says the direction of a metric a task of your own logs; otherwise it must be known.
        spec = spec_of(metric, task, stages=("val", "test"), key=f"registry.thresholds.{metric}")
        op = op or (">=" if spec.higher_is_better else "<=")
    return Threshold(metric, op, float(match.group(2)))


# --- torchmetrics objects -----------------------------------------------------------------------------


def build_metrics(
    task: str, num_classes: int, stage: str, extra: dict[str, Callable[[], Any]] | None = None
) -> MetricCollection:
    """The torchmetrics objects of a stage; their keys are the logged names (`val_rmse`, ...). `extra`: name ->
    a factory of a further torchmetrics.Metric (the config's `metrics`), one fresh object per stage."""
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
    metrics.update({name: make() for name, make in (extra or {}).items()})
    return tm.MetricCollection(metrics, prefix=f"{stage}_")
