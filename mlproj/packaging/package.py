"""The packaged model of a trained run: what predicts (the built-in task's network, or a task of your own), how
to rebuild it, the preprocessing or the example shape it takes, the user's code it needs; and the test plots."""

from __future__ import annotations

from typing import Any

from mlproj.metrics import CLASSIFICATION
from mlproj.packaging.code import user_code
from mlproj.packaging.predictors import PROBABILITIES_PARAM
from mlproj.packaging.pyfunc import INPUT_PREDICTORS, Package, input_example
from mlproj.plan import Plan


def package_of(plan: Plan, module: Any, recipe: dict[str, Any], requirements: list[str] | None = None) -> Package:
    network = (module.model if recipe["family"] == "model" else module).cpu()
    threshold = getattr(module, "decision_threshold", None)  # chosen on validation (mlproj.tasks.imbalance)
    if threshold is not None and plan.pre is not None and hasattr(plan.pre, "threshold"):
        plan.pre.threshold = float(threshold)
    code = user_code(recipe["node"])
    package = _package(plan, network, _packaged_recipe(recipe, network), code)
    package.requirements = [*package.requirements, *(requirements or [])]
    table = getattr(plan.prepared, "table", None)
    package.target = str(table.target.name) if table is not None and table.target.name is not None else None
    return package


def _packaged_recipe(recipe: dict[str, Any], network: Any) -> dict[str, Any]:
    """The recipe without the network's INIT_ONLY arguments (a starting-weights file): the packaged weights
    hold the trained values, and that file need not exist where the model loads."""
    drop = getattr(type(network), "INIT_ONLY", ())
    return {**recipe, "node": {k: v for k, v in recipe["node"].items() if k not in drop}}


def _package(plan: Plan, network: Any, recipe: dict[str, Any], code: list[str]) -> Package:
    inputs = getattr(plan.prepared, "inputs", None)
    if inputs is not None:  # a data family with an input of its own (a series' recent history, ...)
        return Package(network, recipe, None, plan.kind, [], example=plan.prepared.example, code=code, inputs=inputs)
    if plan.prepared is not None:
        pre = plan.prepared.pre
        example = input_example(pre, plan.prepared.splits["train"].raw)
        if hasattr(pre, "inputs"):  # images, text (other kinds): their own predictor, pyfunc.INPUT_PREDICTORS
            inputs = pre.inputs()
            predictor = INPUT_PREDICTORS[inputs["kind"]]
            needs = predictor.requirements() if hasattr(predictor, "requirements") else []
            return Package(network, recipe, None, pre.task, list(pre.labels), example=example, code=code,
                           requirements=needs, inputs=inputs)  # fmt: skip
        return Package(network, recipe, pre, pre.task, list(pre.labels), example=example, code=code)
    # The data decides what the outputs mean (num_classes: class scores), whoever wrote the task.
    labels = list(getattr(plan.source, "labels", None) or range(plan.num_classes))
    package = Package(network, recipe, None, plan.kind, labels, shape=plan.input_shape, code=code)
    package.example = package.predictor().example(plan.example)
    return package


def test_figures(plan: Plan, package: Package, history: dict[str, Any]) -> dict[str, Any]:
    """Learning curves; and for mlproj's tables with the built-in task, the test diagnostics on raw rows."""
    from mlproj import importance, plots

    if plan.prepared is None or not plan.builtin:
        return plots.figures(plan.metric_task, history, None, None, [])
    predictor = package.predictor()
    if hasattr(predictor, "test_figures"):  # a data family's own test plots (the forecast plot)
        return {**plots.figures(plan.metric_task, history, None, None, []), **predictor.test_figures(plan.prepared)}
    test = plan.prepared.splits["test"]
    params = {PROBABILITIES_PARAM: True} if package.kind == CLASSIFICATION else None
    predictions = package.predictor().predict(test.raw, params=params)
    figures = plots.figures(plan.kind, history, test.raw_target, predictions, package.labels)
    figures.update(importance.figures(plan, package))  # raw-row tables only: {} for the others
    if package.inputs is not None and package.inputs["kind"] == "image":
        pixels = package.predictor().pixels(test.raw)
        figures["plots/test_images.png"] = plots.image_grid(pixels, test.raw_target, predictions["prediction"])
    return figures
