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
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from mlproj import __version__
from mlproj.data.preprocess import Preprocessor
from mlproj.metrics import REGRESSION

FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
META_FILE = "mlproj.json"
PROBABILITIES_PARAM = "probabilities"


class ModelLoadError(RuntimeError):
    """A packaged model that is missing, damaged or of an unknown format."""


class TabularPredictor:
    """Raw rows in, predictions out. Preprocessing and the network travel together."""

    def __init__(self, network: torch.nn.Module, pre: Preprocessor) -> None:
        self.network = network.eval()
        self.pre = pre

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> pd.DataFrame:
        frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame(data)
        x = torch.from_numpy(self.pre.transform(frame))
        with torch.inference_mode():
            out = self.network(x).float()
        if self.pre.task == REGRESSION:
            return pd.DataFrame({"prediction": self.pre.decode_regression(out.squeeze(-1).double().numpy())})
        if out.shape[-1] == 1:
            positive = torch.sigmoid(out.squeeze(-1))
            probs = torch.stack([1 - positive, positive], dim=-1).numpy()
        else:
            probs = torch.softmax(out, dim=-1).numpy()
        labels = np.asarray(self.pre.labels, dtype=object)
        result = pd.DataFrame({"prediction": labels[probs.argmax(axis=1)].tolist()})
        if (params or {}).get(PROBABILITIES_PARAM):
            for i, label in enumerate(self.pre.labels):
                result[f"probability_{label}"] = probs[:, i]
        return result


def save(network: torch.nn.Module, model_cfg: dict[str, Any], pre: Preprocessor, path: Path) -> None:
    """Write the two files that make the model: weights (safetensors) and metadata (JSON)."""
    from safetensors.torch import save_file

    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()}
    save_file(state, str(path / WEIGHTS_FILE))
    meta = {
        "format_version": FORMAT_VERSION,
        "mlproj_version": __version__,
        "model": model_cfg,
        "in_features": pre.num_features,
        "out_features": pre.num_outputs,
        "preprocessing": pre.to_dict(),
    }
    (path / META_FILE).write_text(json.dumps(meta, indent=1))


def load(path: str | Path) -> TabularPredictor:
    path = Path(path)
    try:
        meta = json.loads((path / META_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{path / META_FILE} is missing or not valid JSON: {exc}") from exc
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelLoadError(f"{path}: unknown model format {meta.get('format_version')!r}")
    network = build_network(meta, path)
    try:
        from safetensors.torch import load_file

        state = load_file(str(path / WEIGHTS_FILE))
        network.load_state_dict(state, strict=True)
    except Exception as exc:  # safetensors and torch raise several types for a damaged file
        raise ModelLoadError(f"{path / WEIGHTS_FILE} is damaged or does not match the model: {exc}") from exc
    return TabularPredictor(network, Preprocessor.from_dict(meta["preprocessing"]))


def _load_pyfunc(data_path: str) -> TabularPredictor:
    """MLflow's loader_module hook."""
    return load(data_path)


def build_network(meta: dict[str, Any], path: Path) -> torch.nn.Module:
    """The network the JSON names, checked before anything is called: its class (and any nested one) must be a
    torch.nn.Module from the model's own code folder or an installed package / the standard library."""
    from mlproj.config import families
    from mlproj.errors import ConfigError

    try:
        return families.build(
            meta["model"],
            "model",
            f"{META_FILE} model",
            required={"in_features": meta["in_features"], "out_features": meta["out_features"]},
            origin=code_folder(path),
        )
    except ConfigError as exc:
        raise ModelLoadError(f"{path / META_FILE}: {exc}") from None
    except (KeyError, TypeError) as exc:
        raise ModelLoadError(
            f"{path / META_FILE}: not an mlproj model description ({type(exc).__name__}: {exc})"
        ) from None
    except Exception as exc:  # the model's own constructor failed: one line, the cause kept for HYDRA_FULL_ERROR users
        message = " ".join(str(exc).split())
        raise ModelLoadError(f"{path / META_FILE}: building the model failed: {type(exc).__name__}: {message}") from exc


def code_folder(path: Path) -> Path:
    """The folder whose modules the model may name besides installed packages and the standard library.

    In MLflow's layout the data is <model>/data/<name>/ and mlproj's code <model>/code/: that code folder. A bare
    model folder (`save` output, no MLmodel) has no code of its own: the folder itself, which holds no module,
    so only installed packages, the standard library and the mlproj that is loading it qualify."""
    model_root = path.resolve().parent.parent
    if (model_root / "MLmodel").is_file() and (model_root / "code").is_dir():
        return model_root / "code"
    return path.resolve()


def pip_requirements() -> list[str]:
    """Explicit (inferring them costs ~16 s per run): what loading and predicting import."""
    import mlflow
    import safetensors

    torch_version = torch.__version__.split("+")[0]  # drop the local tag (+cpu, +cu126)
    return [
        f"mlflow=={mlflow.__version__}",
        f"torch=={torch_version}",
        f"numpy=={np.__version__}",
        f"pandas=={pd.__version__}",
        f"safetensors=={safetensors.__version__}",
    ]


def signature(example: pd.DataFrame, predictor: TabularPredictor) -> Any:
    """The training table's own column types, widened (int -> long, float -> double), so rows read from
    the same kind of file pass MLflow's strict schema check; strings stay strings, missing values allowed.
    """
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    columns = [ColSpec(_mlflow_type(example[name]), name) for name in example.columns]
    with integer_schema_hint_silenced():
        outputs = infer_signature(example, predictor.predict(example)).outputs
    params = None
    if predictor.pre.task != REGRESSION:
        params = ParamSchema([ParamSpec(PROBABILITIES_PARAM, "boolean", False)])
    return ModelSignature(inputs=Schema(columns), outputs=outputs, params=params)


def _mlflow_type(column: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(column):
        return "boolean"
    if pd.api.types.is_integer_dtype(column):
        return "long"
    if pd.api.types.is_float_dtype(column):
        return "double"
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


def _pyfunc_kwargs(data: Path, example: pd.DataFrame) -> dict[str, Any]:
    return {
        "loader_module": __name__,
        "data_path": str(data),
        "code_paths": [str(Path(__file__).resolve().parents[1])],  # the mlproj package
        "signature": signature(example, load(data)),
        "input_example": example,
        "pip_requirements": pip_requirements(),
    }


def log_model(network: torch.nn.Module, model_cfg: dict[str, Any], pre: Preprocessor, raw: pd.DataFrame) -> Any:
    """Log the packaged model into the active run; returns MLflow's ModelInfo (`models:/<id>`)."""
    import mlflow

    with tempfile.TemporaryDirectory() as tmp, integer_schema_hint_silenced():
        data = Path(tmp) / "mlproj_model"
        save(network, model_cfg, pre, data)
        return mlflow.pyfunc.log_model(name="model", **_pyfunc_kwargs(data, input_example(pre, raw)))


def save_model(
    path: Path, network: torch.nn.Module, model_cfg: dict[str, Any], pre: Preprocessor, raw: pd.DataFrame
) -> None:
    """The same model as a local MLflow model folder (no tracking server needed): mlflow.pyfunc.load_model(path)."""
    import mlflow

    with tempfile.TemporaryDirectory() as tmp, integer_schema_hint_silenced():
        data = Path(tmp) / "mlproj_model"
        save(network, model_cfg, pre, data)
        mlflow.pyfunc.save_model(str(path), **_pyfunc_kwargs(data, input_example(pre, raw)))


def log_saved(path: Path) -> Any:
    """Log a model folder written by `save_model` into the active run (after a tracking-server outage)."""
    import mlflow
    from mlflow.models import Model

    saved = Model.load(str(path))
    data = path / saved.flavors["python_function"]["data"]
    example = saved.load_input_example(str(path))
    with integer_schema_hint_silenced():
        kwargs = _pyfunc_kwargs(data, example)
        kwargs["signature"] = saved.signature  # as trained, not re-derived
        return mlflow.pyfunc.log_model(name="model", **kwargs)
