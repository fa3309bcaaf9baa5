"""The user's own code a packaged model needs: the module files or package folders of every `_target_` its
network is rebuilt from that is not mlproj and not an installed package, so `mlflow.pyfunc.load_model` works in
a fresh process, in another folder, without PYTHONPATH (MLflow puts the model's `code/` first on sys.path)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

from mlproj.config.families import installed


def targets(node: Any) -> list[str]:
    """Every `_target_` in a config node, nested ones included."""
    if isinstance(node, dict):
        found = [str(node["_target_"])] if "_target_" in node else []
        return found + [t for v in node.values() for t in targets(v)]
    if isinstance(node, list | tuple):
        return [t for v in node for t in targets(v)]
    return []


def user_code(node: Any) -> list[str]:
    """Paths to ship in the model's code_paths for the classes `node` names: a top-level package's folder, or a
    single module's file, when it lies outside mlproj and the installed packages."""
    paths: list[str] = []
    for target in targets(node):
        top = target.split(".")[0]
        if top == "mlproj":
            continue  # shipped whole
        module = sys.modules.get(top) or importlib.import_module(top)
        file = getattr(module, "__file__", None)
        if file is None or installed(Path(file)):
            continue
        path = Path(file).resolve()
        shipped = str(path.parent if path.name == "__init__.py" else path)
        if shipped not in paths:
            paths.append(shipped)
    return paths
