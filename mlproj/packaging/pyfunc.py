"""The self-contained pyfunc model: safetensors weights + a JSON document, rebuilt by mlproj's own code.

Logged as a pyfunc with `loader_module=mlproj.packaging.pyfunc`: MLflow stores no pickled object, only data, and
calls `_load_pyfunc(path)` on load. mlproj's source travels in the model's `code/` folder, so the model loads
where mlproj is not installed. The predictor takes raw columns (strings, missing values) and returns
predictions in the target's original units, or original labels. This module must stay light to import
(no Lightning, no Hydra): it is what serving imports.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from mlproj import __version__
from mlproj.data.preprocess import Preprocessor
from mlproj.errors import ModelLoadError
from mlproj.metrics import CLASSIFICATION, REGRESSION
from mlproj.packaging.images import ImagePredictor
from mlproj.packaging.predictors import PROBABILITIES_PARAM, TabularPredictor, TensorPredictor
from mlproj.packaging.text import TextPredictor
from mlproj.packaging.timeseries import SeriesPredictor

FORMAT_VERSION = 2  # 1: mlproj 0.1 (tables only), still loaded
WEIGHTS_FILE = "model.safetensors"
META_FILE = "mlproj.json"


# A packaged model whose JSON carries `inputs` ({"kind": ..., plain-JSON preprocessing state}) predicts with the
# class of that kind, built by `from_meta(network, meta)` (meta: the whole JSON document).
INPUT_PREDICTORS: dict[str, Any] = {"image": ImagePredictor, "text": TextPredictor, "series": SeriesPredictor}


@dataclass
class Package:
    """Everything a packaged model is made of."""

    network: torch.nn.Module  # what predicts: the built-in task's network, or a task module of your own
    recipe: dict[str, Any]  # how to rebuild it: {"family": "model"|"task", "node": {_target_...}, "required": {...}}
    pre: Preprocessor | None = None  # mlproj's tables: raw rows in
    kind: str = REGRESSION  # regression / classification / custom (outputs returned as they are)
    labels: list[Any] = field(default_factory=list)
    shape: list[int] = field(default_factory=list)  # a data module's example shape (tensor input)
    example: pd.DataFrame | None = None  # the input example: raw rows, or a few examples' columns
    code: list[str] = field(default_factory=list)  # the user's code to ship (packaging.code)
    requirements: list[str] = field(default_factory=list)  # what that code needs (tracking.extra_pip_requirements)
    inputs: dict[str, Any] | None = None  # a family's own inputs ({"kind": "text", ...}): INPUT_PREDICTORS
    target: str | None = None  # the target column named at training (mlproj.evaluate reads it from the JSON)

    def predictor(self) -> Any:
        if self.inputs is not None:
            return input_predictor(self.network, metadata(self))
        if self.pre is not None:
            return TabularPredictor(self.network, self.pre)
        return TensorPredictor(self.network, self.shape, self.kind, self.labels)


def save(package: Package, path: Path) -> None:
    """Write the two files that make the model: weights (safetensors) and metadata (JSON)."""
    from safetensors.torch import save_file

    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in package.network.state_dict().items()}
    save_file(state, str(path / WEIGHTS_FILE))
    (path / META_FILE).write_text(json.dumps(metadata(package), indent=1))


def metadata(package: Package) -> dict[str, Any]:
    """The JSON document of a packaged model."""
    meta = {
        "format_version": FORMAT_VERSION,
        "mlproj_version": __version__,
        **package.recipe,
        "preprocessing": package.pre.to_dict() if package.pre is not None else None,
        "kind": package.kind,
        "labels": package.labels,
        "shape": package.shape,
    }
    if package.inputs is not None:
        meta["inputs"] = package.inputs
    if package.target is not None:
        meta["target"] = package.target
    return meta


def input_predictor(network: torch.nn.Module, meta: dict[str, Any]) -> Any:
    """The predictor of a model whose JSON has `inputs`, by its kind; a damaged state is a ModelLoadError."""
    inputs = meta.get("inputs")
    kind = inputs.get("kind") if isinstance(inputs, dict) else None
    if kind not in INPUT_PREDICTORS:
        raise ModelLoadError(f"{META_FILE}: unknown inputs kind {kind!r}; known: {', '.join(INPUT_PREDICTORS)}")
    try:
        return INPUT_PREDICTORS[kind].from_meta(network, meta)
    except (ValueError, TypeError, KeyError) as exc:
        raise ModelLoadError(f"{META_FILE}: damaged {kind} inputs: {exc}") from None


def load(path: str | Path) -> Any:
    """Rebuild a packaged model. The JSON is untrusted data: each class it names must be of its family and come
    from the model's own code/ folder or an installed package (mlproj.config.families), checked before any call."""
    from mlproj.config import families
    from mlproj.errors import ConfigError

    path = Path(path)
    try:
        meta = json.loads((path / META_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{path / META_FILE} is missing or not valid JSON: {exc}") from exc
    version = meta.get("format_version")
    if version == 1:  # mlproj 0.1's tables: the model's node and its sizes
        meta = {**meta, "family": "model", "node": meta.get("model"), "kind": None, "labels": [], "shape": []}
        meta["required"] = {"in_features": meta.get("in_features"), "out_features": meta.get("out_features")}
    elif version != FORMAT_VERSION:
        raise ModelLoadError(f"{path}: unknown model format {version!r}")
    family, node, required = meta.get("family"), meta.get("node"), meta.get("required") or {}
    if family not in ("model", "task") or not isinstance(node, dict) or not isinstance(required, dict):
        raise ModelLoadError(f"{path / META_FILE}: no valid model recipe (family, node, required)")
    try:
        network = families.build(node, family, f"{META_FILE} {family}", required=required, origin=code_folder(path))
    except ConfigError as exc:
        raise ModelLoadError(f"{path / META_FILE}: {exc}") from None
    try:
        from safetensors.torch import load_file

        state = load_file(str(path / WEIGHTS_FILE))
        network.load_state_dict(state, strict=True)
    except Exception as exc:  # safetensors and torch raise several types for a damaged file
        raise ModelLoadError(f"{path / WEIGHTS_FILE} is damaged or does not match the model: {exc}") from exc
    if meta.get("inputs") is not None:
        return input_predictor(network, meta)
    if meta.get("preprocessing"):
        return TabularPredictor(network, Preprocessor.from_dict(meta["preprocessing"]))
    return TensorPredictor(network, meta.get("shape") or [], str(meta.get("kind")), meta.get("labels") or [])


def code_folder(data_path: Path) -> Path:
    """The one folder outside the installed packages whose modules the JSON may name. In MLflow's layout
    (<model>/data/<name>/ beside <model>/code/) that code folder; a bare model folder (`save`'s output) has no
    code of its own: the folder itself, which holds no module, so only installed packages qualify."""
    for parent in data_path.resolve().parents[:3]:
        if (parent / "MLmodel").is_file() and (parent / "code").is_dir():
            return parent / "code"
    return data_path.resolve()


def _load_pyfunc(data_path: str) -> Any:
    """MLflow's loader_module hook."""
    return load(data_path)


def pip_requirements(lightning: bool = False) -> list[str]:
    """Explicit (inferring them costs ~16 s per run): what loading and predicting import; with `lightning`, what a
    packaged LightningModule (a task of your own) imports too. Your own installed packages are not listed."""
    import mlflow
    import safetensors

    torch_version = torch.__version__.split("+")[0]  # drop the local tag (+cpu, +cu126)
    return [
        f"mlflow=={mlflow.__version__}",
        f"torch=={torch_version}",
        f"numpy=={np.__version__}",
        f"pandas=={pd.__version__}",
        f"safetensors=={safetensors.__version__}",
        *(_lightning_requirements() if lightning else []),
    ]


def _lightning_requirements() -> list[str]:
    from importlib.metadata import version

    return [f"pytorch-lightning=={version('pytorch-lightning')}", f"torchmetrics=={version('torchmetrics')}"]


def signature(example: pd.DataFrame, predictor: Any) -> Any:
    """The training table's own column types, widened (int -> long, float -> double), so rows read from
    the same kind of file pass MLflow's strict schema check; strings stay strings, missing values allowed.
    """
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    columns = [ColSpec(_mlflow_type(example[name]), name) for name in example.columns]
    with integer_schema_hint_silenced():
        outputs = infer_signature(example, predictor.predict(example)).outputs
    params = None
    if predictor.kind == CLASSIFICATION:
        params = ParamSchema([ParamSpec(PROBABILITIES_PARAM, "boolean", False)])
    return ModelSignature(inputs=Schema(columns), outputs=outputs, params=params)


def _mlflow_type(column: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(column):
        return "boolean"
    if pd.api.types.is_integer_dtype(column):
        return "long"
    if pd.api.types.is_float_dtype(column):
        return "double"
    if pd.api.types.is_datetime64_any_dtype(column):
        return "datetime"
    if len(column) and all(isinstance(v, bytes) for v in column):
        return "binary"  # encoded files (images): JSON carries them as base64, which MLflow decodes
    return "string"


def input_example(pre: Preprocessor, raw: pd.DataFrame) -> pd.DataFrame:
    return raw[pre.input_columns].head(5).reset_index(drop=True)


@contextmanager
def integer_schema_hint_silenced() -> Iterator[None]:
    """MLflow warns on every integer column that it cannot hold missing values. The schema is the
    training table's own, so that is the data's contract (documented in the README), not news per run."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Inferred schema contains integer column.*")
        yield


def _pyfunc_kwargs(data: Path, package: Package) -> dict[str, Any]:
    example = package.example
    return {
        "loader_module": __name__,
        "data_path": str(data),
        # mlproj itself, and the user's own code the network is built from (a class outside installed packages)
        "code_paths": [str(Path(__file__).resolve().parents[1]), *package.code],
        "signature": signature(example, package.predictor()) if example is not None else None,
        "input_example": example,
        "pip_requirements": pip_requirements(lightning=package.recipe.get("family") == "task") + package.requirements,
    }


def log_model(package: Package) -> Any:
    """Log the packaged model into the active run; returns MLflow's ModelInfo (`models:/<id>`)."""
    import mlflow

    with tempfile.TemporaryDirectory() as tmp, integer_schema_hint_silenced():
        data = Path(tmp) / "mlproj_model"
        save(package, data)
        return mlflow.pyfunc.log_model(name="model", **_pyfunc_kwargs(data, package))


def save_model(path: Path, package: Package) -> None:
    """The same model as a local MLflow model folder (no tracking server needed): mlflow.pyfunc.load_model(path)."""
    import mlflow

    with tempfile.TemporaryDirectory() as tmp, integer_schema_hint_silenced():
        data = Path(tmp) / "mlproj_model"
        save(package, data)
        mlflow.pyfunc.save_model(str(path), **_pyfunc_kwargs(data, package))


def log_saved(path: Path) -> Any:
    """Log a model folder written by `save_model` into the active run (after a tracking-server outage)."""
    import mlflow
    from mlflow.models import Model

    saved = Model.load(str(path))
    data = path / saved.flavors["python_function"]["data"]
    code = [str(p) for p in sorted((path / "code").iterdir())] if (path / "code").is_dir() else []
    with integer_schema_hint_silenced():
        return mlflow.pyfunc.log_model(
            name="model",
            loader_module=__name__,
            data_path=str(data),
            code_paths=code,  # as saved: mlproj and the user's code
            signature=saved.signature,  # as trained, not re-derived
            input_example=saved.load_input_example(str(path)),
            pip_requirements=str(path / "requirements.txt"),  # as saved
        )
