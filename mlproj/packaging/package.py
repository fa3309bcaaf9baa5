"""The packaged model of a trained run: what predicts (the built-in task's network, or a task of your own), how
to rebuild it, the preprocessing or the example shape it takes, the user's code it needs; and the test plots."""

from __future__ import annotations

from typing import Any

from mlproj.metrics import CLASSIFICATION
from mlproj.packaging.code import user_code
from mlproj.packaging.predictors import PROBABILITIES_PARAM
from mlproj.packaging.pyfunc import Package, input_example
from mlproj.plan import Plan


def package_of(plan: Plan, module: Any, recipe: dict[str, Any], requirements: list[str] | None = None) -> Package:
    network = (module.model if recipe["family"] == "model" else module).cpu()
    code = user_code(recipe["node"])
    package = _package(plan, network, recipe, code)
    package.requirements = list(requirements or [])
    return package


def _package(plan: Plan, network: Any, recipe: dict[str, Any], code: list[str]) -> Package:
    if plan.prepared is not None and hasattr(plan.pre, "inputs"):  # a family's own inputs (text): INPUT_PREDICTORS
        pre = plan.prepared.pre
        example = input_example(pre, plan.prepared.splits["train"].raw)
        return Package(
            network, recipe, None, pre.task, list(pre.labels), example=example, code=code, inputs=pre.inputs()
        )
    if plan.prepared is not None:
        pre = plan.prepared.pre
        example = input_example(pre, plan.prepared.splits["train"].raw)
        return Package(network, recipe, pre, pre.task, list(pre.labels), example=example, code=code)
    # The data decides what the outputs mean (num_classes: class scores), whoever wrote the task.
    labels = list(getattr(plan.source, "labels", None) or range(plan.num_classes))
    package = Package(network, recipe, None, plan.kind, labels, shape=plan.input_shape, code=code)
    package.example = package.predictor().example(plan.example)
    return package


def test_figures(plan: Plan, package: Package, history: dict[str, Any]) -> dict[str, Any]:
    """Learning curves; and for mlproj's tables with the built-in task, the test diagnostics on raw rows."""
    from mlproj import plots

    if plan.prepared is None or not plan.builtin:
        return plots.figures(plan.metric_task, history, None, None, [])
    test = plan.prepared.splits["test"]
    params = {PROBABILITIES_PARAM: True} if package.kind == CLASSIFICATION else None
    predictions = package.predictor().predict(test.raw, params=params)
    return plots.figures(plan.kind, history, test.raw_target, predictions, package.labels)
