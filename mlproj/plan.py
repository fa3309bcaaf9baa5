"""What a run trains, built and checked before any side effect: the data (prepared, or a LightningDataModule
set up and peeked at), the task module's class and the metric names. `build_task` makes the LightningModule.

The built-in task (mlproj.tasks.supervised.SupervisedTask, or a subclass) gets everything from mlproj: the
`model` network sized from the data, `optimizer`, `scheduler`, `loss`, `metrics`. A task of your own gets only
the arguments its config names, plus the data's sizes (`in_features`, `out_features`, `num_classes`) where its
constructor has a parameter of that name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from mlproj import metrics, startup, tags
from mlproj.config import families
from mlproj.config.checks import (
    check_config,
    check_devices,
    check_registry_uri,
    check_streaming_limits,
    check_task_metrics,
)
from mlproj.config.stores import check_databricks_credentials
from mlproj.data.base import DataSource
from mlproj.errors import ConfigError

SIZES = ("in_features", "out_features", "num_classes")
FROM_THE_TABLE = ("categories", "bins")  # what mlproj passes a table network that takes them (model_sizes)


@dataclass
class Plan:
    source: Any  # the built `data`: a DataSource or the user's LightningDataModule
    kind: str  # regression / classification: what the data's target is
    num_classes: int  # classification: how many (0 otherwise)
    in_features: int  # one example's flattened size
    input_shape: list[int]  # one example's shape (a table: [in_features])
    task_class: type
    builtin: bool  # the built-in supervised task (else a task of your own: metrics are its own)
    prepared: Any = None  # mlproj's tables: the PreparedData (splits, fitted preprocessing)
    example: Any = None  # a user data module: one batch of inputs (tensor), for the model's signature
    info: dict[str, str] = field(default_factory=dict)  # name, source, target: tags of the run
    targets: int = 1  # regression: values per example (a forecast's horizon)

    @property
    def metric_task(self) -> str:
        """What names the run's metrics: the data's kind for the built-in task, `custom` for a task of your own."""
        return self.kind if self.builtin else metrics.CUSTOM

    @property
    def pre(self) -> Any:
        return self.prepared.pre if self.prepared is not None else None


def make_plan(cfg: DictConfig) -> Plan:
    """All startup checks, in layers: config alone, `_target_` families and signatures, devices, then the data
    (built and prepared) and the metric names it fixes."""
    check_startup(cfg)
    # The data's own checks (a source checks its keys, and a file, as it is built) before the task's class
    # (Lightning: seconds to import) is.
    if getattr(families.resolve(cfg.data, "data", "data"), "streaming", False):
        check_streaming_limits(cfg)
    source = families.build(cfg.data, "data", "data")
    task_class = check_task(cfg)
    check_devices(cfg)
    from mlproj.tasks.supervised import SupervisedTask

    builtin = issubclass(task_class, SupervisedTask)
    check_model_inputs(cfg, source, builtin)
    startup.started()  # torch and Lightning are loaded: the data is prepared with the garbage collector on
    plan = (_tables if isinstance(source, DataSource) else _data_module)(source, task_class, builtin)
    extra = {**data_directions(plan), **extra_directions(cfg, plan.kind, plan.num_classes)} if builtin else {}
    metrics.declare(extra, dict(cfg.metric_directions), cfg.trainer.monitor)
    check_task_metrics(cfg, plan.metric_task)
    if builtin:
        check_model_input(cfg, plan)
        check_imbalance(cfg, plan)
    check_registry_uri(cfg.tracking.registry_uri, cfg.registry.model_name)
    check_databricks_credentials(cfg.tracking)
    return plan


def check_startup(cfg: DictConfig) -> None:
    """The checks that need no data: the config alone, then the `_target_` nodes. The entry point runs them
    before Hydra makes the run's folder, and make_plan again (a sweep's job, an in-process run)."""
    drop_table_defaults(cfg)
    check_config(cfg)
    families.check_targets(cfg)


def check_model_input(cfg: DictConfig, plan: Plan) -> None:
    """A network that takes `in_shape` (an image model) is built once on the meta device (no memory, no
    weights), so a shape it cannot take, or a bad starting-weights file, fails at startup in one line."""
    for key in FROM_THE_TABLE:
        if key in cfg.model and _takes(families.resolve(cfg.model, "model", "model"), key):
            raise ConfigError(f"model.{key} is set by mlproj from the table's preprocessing; do not set it")
    if not _takes(families.resolve(cfg.model, "model", "model"), "in_shape"):
        return
    import torch

    with torch.device("meta"):
        families.build(cfg.model, "model", "model", required=model_sizes(plan, None, cfg))


def check_imbalance(cfg: DictConfig, plan: Plan) -> None:
    """task.class_weight / task.threshold against the data's classes (mlproj.tasks.imbalance), at startup."""
    from mlproj.tasks import imbalance

    classes = plan.num_classes if plan.kind == metrics.CLASSIFICATION else None
    imbalance.check(cfg.task.get("class_weight", "auto"), cfg.task.get("threshold", "auto"), classes)


def class_counts(plan: Plan) -> list[int] | None:
    """Training rows per class (label order) of mlproj's tables, for class weights and the threshold rule."""
    if plan.kind != metrics.CLASSIFICATION or plan.prepared is None or "train" not in plan.prepared.splits:
        return None
    import numpy as np

    return np.bincount(plan.prepared.splits["train"].y, minlength=plan.num_classes).tolist()


def model_sizes(plan: Plan, loss: Any, cfg: DictConfig) -> dict[str, Any]:
    """What mlproj passes the built-in task's network: in_features, out_features, and in_shape where taken."""
    from mlproj.tasks.supervised import outputs

    sizes: dict[str, Any] = {
        "in_features": plan.in_features,
        "out_features": outputs(plan.kind, plan.num_classes, loss, plan.targets),
    }
    if _takes(families.resolve(cfg.model, "model", "model"), "in_shape"):
        sizes["in_shape"] = list(plan.input_shape)
    if _takes(families.resolve(cfg.model, "model", "model"), "categories"):  # a table's one-hot blocks, embedded
        sizes["categories"] = list(getattr(plan.pre, "cardinalities", None) or [])
    if _takes(families.resolve(cfg.model, "model", "model"), "bins"):  # piecewise-linear numeric embeddings
        from mlproj.data.bins import table_edges

        sizes["bins"] = table_edges(plan.prepared)
    return sizes


def check_task(cfg: DictConfig) -> type:
    """The task's class and keys: the built-in task (or a subclass) gets all its parts from mlproj; a task of
    yours gets only the data's sizes where its constructor asks for them."""
    from mlproj.tasks.supervised import SupervisedTask

    cls = families.resolve(cfg.task, "task", "task")
    if issubclass(cls, SupervisedTask):  # its parts come from the model, optimizer, ... groups: never from `task`
        families.check(cfg.task, "task", "task", required=SupervisedTask.INJECTED)
    else:
        families.check(cfg.task, "task", "task", offered=SIZES)
    return cls


def check_model_inputs(cfg: DictConfig, source: Any, builtin: bool) -> None:
    """A source whose examples are not float features names what they are (`model_inputs`, e.g. token ids): the
    built-in task's network must say it takes them (its class's `inputs`), or the run would fail at the first
    batch."""
    wanted = getattr(source, "model_inputs", None)
    if not builtin or wanted is None:
        return
    cls = families.resolve(cfg.model, "model", "model")
    if getattr(cls, "inputs", None) != wanted:
        hint = getattr(source, "model_hint", "")
        raise ConfigError(f"model: {cls.__name__} does not take {wanted}, what data gives; {hint}".rstrip("; "))


def drop_table_defaults(cfg: DictConfig) -> None:
    """`data._target_=pkg.MyData` over a built-in option: the option's keys came along; those the new class does
    not take and that hold a value some built-in option sets (conf/data) are not the user's: dropped, so they are
    neither refused nor logged. Any other value stays, and is refused by the class's signature."""
    import inspect

    node = cfg.data
    if not OmegaConf.is_dict(node) or "_target_" not in node:
        return
    params = inspect.signature(families.resolve(node, "data", "data")).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    values = OmegaConf.to_container(node, resolve=True)
    builtin = _builtin_data_values()
    stale = [k for k, v in values.items() if k not in params and k != "_target_" and (k, repr(v)) in builtin]
    with open_dict(cfg):
        for key in stale:
            del cfg.data[key]


def _builtin_data_values() -> set[tuple[str, str]]:
    """(key, repr(value)) of every key a built-in data option sets, the shared table keys included."""
    from pathlib import Path

    from mlproj.config.schema import config_dir

    folder = Path(config_dir()) / "data"
    shared = OmegaConf.load(folder / "common" / "table.yaml")
    pairs = set()
    for option in folder.glob("*.yaml"):
        merged = OmegaConf.to_container(OmegaConf.merge(shared, OmegaConf.load(option)))
        pairs |= {(str(k), repr(v)) for k, v in merged.items() if k != "defaults"}
    return pairs


def _tables(source: DataSource, task_class: type, builtin: bool) -> Plan:
    prepared = source.prepare()
    pre = prepared.pre
    info = {
        tags.DATA_NAME: prepared.table.name,
        tags.DATA_TARGET: str(prepared.table.target.name),
        tags.DATA_SOURCE: prepared.table.source,
    }
    classes = len(pre.labels) if prepared.task == metrics.CLASSIFICATION else 0
    shape = list(getattr(pre, "shape", None) or [pre.num_features])  # images: C x H x W; a window: W x C
    targets = int(getattr(pre, "num_targets", 1))  # regression values per example: a forecast's horizon
    return Plan(
        source,
        prepared.task,
        classes,
        pre.num_features,
        shape,
        task_class,
        builtin,
        prepared,
        info=info,
        targets=targets,
    )


def _data_module(dm: Any, task_class: type, builtin: bool) -> Plan:
    """A LightningDataModule of your own: set up now (errors before any run), one training batch peeked at."""
    import torch

    dm.prepare_data()
    dm.setup("fit")
    try:
        batch = next(iter(dm.train_dataloader()))
    except StopIteration:
        raise ConfigError(f"data: {type(dm).__name__}.train_dataloader() yields no batch") from None
    x = batch[0] if isinstance(batch, list | tuple) else batch
    if not isinstance(x, torch.Tensor):
        raise ConfigError(f"data: {type(dm).__name__}'s batches must be (x, y) tensors; got {type(x).__name__}")
    classes = int(getattr(dm, "num_classes", 0) or 0)
    kind = metrics.CLASSIFICATION if classes >= 2 else metrics.REGRESSION
    shape = list(x.shape[1:])
    info = {
        tags.DATA_NAME: type(dm).__name__,
        tags.DATA_SOURCE: f"{type(dm).__module__}.{type(dm).__qualname__}",
    }
    example = x[:5].detach().cpu()
    return Plan(dm, kind, classes, int(x[0].numel()), shape, task_class, builtin, example=example, info=info)


def extra_directions(cfg: DictConfig, kind: str, num_classes: int) -> dict[str, bool]:
    """The config's extra metrics: base name -> torchmetrics' own higher_is_better. A task wrapper such as
    torchmetrics.CohenKappa says it only once built (it becomes BinaryCohenKappa, ...): then one is built."""
    found = {}
    for name, make in metric_factories(cfg, kind, num_classes).items():
        cls = families.resolve(cfg.metrics[name], "metric", f"metrics.{name}")
        value = getattr(cls, "higher_is_better", None)
        found[name] = metrics.direction_of(make() if value is None else cls)
    return found


def data_metrics(plan: Plan) -> dict[str, Any]:
    """The metrics mlproj's data brings for its kind of data (DataSource.metrics: forecasting's MASE, ...)."""
    if plan.prepared is None or not isinstance(plan.source, DataSource):
        return {}
    return dict(plan.source.metrics(plan.prepared))


def data_directions(plan: Plan) -> dict[str, bool]:
    return {name: metrics.direction_of(make()) for name, make in data_metrics(plan).items()}


def metric_factories(cfg: DictConfig, kind: str, num_classes: int) -> dict[str, Any]:
    """The config's extra metrics as factories (one fresh object per stage); `task` and `num_classes` offered."""
    offered: dict[str, Any] = {}
    if kind == metrics.CLASSIFICATION:
        offered = {"task": "binary" if num_classes == 2 else "multiclass", "num_classes": num_classes}

    def factory(name: str, node: Any) -> Any:
        return lambda: families.build(node, "metric", f"metrics.{name}", offered=offered)

    return {str(name): factory(str(name), node) for name, node in cfg.metrics.items()}


def build_task(cfg: DictConfig, plan: Plan) -> tuple[Any, dict[str, Any]]:
    """The LightningModule, and what the packaged model rebuilds it from: {"family", "node", "required"}."""
    from mlproj.tasks.supervised import outputs

    if not plan.builtin:
        sizes = {"in_features": plan.in_features, "num_classes": plan.num_classes}
        sizes["out_features"] = outputs(plan.kind, plan.num_classes, None, plan.targets)
        node = families.container(cfg.task)
        module = families.build(cfg.task, "task", "task", offered=sizes)
        passed = {k: v for k, v in sizes.items() if _takes(type(module), k) and k not in node}
        return module, {"family": "task", "node": node, "required": passed}
    loss = families.build(cfg.loss, "loss", "loss") if _is_set(cfg.loss) else None
    sizes = model_sizes(plan, loss, cfg)
    network = families.build(cfg.model, "model", "model", required=sizes)
    scheduler = families.build(cfg.scheduler, "scheduler", "scheduler") if _is_set(cfg.scheduler) else None
    from mlproj.config.flags import task_options

    pre = plan.pre
    module = families.build(
        cfg.task,
        "task",
        "task",
        required={
            "model": network,
            "task": plan.kind,
            "num_classes": max(plan.num_classes, 2) if plan.kind == metrics.CLASSIFICATION else 0,
            "optimizer": families.build(cfg.optimizer, "optimizer", "optimizer"),
            "scheduler": scheduler,
            "loss": loss,
            "metrics": {**data_metrics(plan), **metric_factories(cfg, plan.kind, plan.num_classes)},
            "target_mean": pre.target_mean if pre is not None else 0.0,
            "target_std": pre.target_std if pre is not None else 1.0,
            "class_counts": class_counts(plan),
            **task_options(cfg.trainer),
        },
    )
    return module, {"family": "model", "node": families.container(cfg.model), "required": sizes}


def _takes(cls: type, name: str) -> bool:
    import inspect

    return name in inspect.signature(cls).parameters


def _is_set(node: Any) -> bool:
    return node is not None and not (OmegaConf.is_dict(node) and len(node) == 0)
