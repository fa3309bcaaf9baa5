"""A `config.yaml` in `--config-dir` is the user's primary config, as a Hydra user expects.

Hydra appends `--config-dir` after the application's own config folder, so mlproj's `conf/config.yaml` would
win silently. Instead such a folder becomes the primary config path (`--config-path`), with mlproj's own
folder after it on the search path (its groups: data=wine, model=mlp, ...). The user's config must compose
under mlproj's schema: its defaults list starts with `mlproj_schema`, else one line says so.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from mlproj.errors import ConfigError

CONFIG_DIR_FLAGS = ("--config-dir", "-cd")
NAME_FLAGS = ("--config-name", "-cn", "--config-path", "-cp")
# What mlproj's own primary config sets under `hydra:` and a run needs: the multirun's parent run and summary.
MLPROJ_HYDRA = ["++hydra.callbacks.mlproj._target_=mlproj.sweeps.callback.SweepCallback", "++hydra.job.name=mlproj"]


def user_primary(argv: list[str], package_conf: str) -> list[str]:
    """argv with `--config-dir D` turned into D as the primary config path when D holds a config.yaml."""
    folder, at = _flag_value(argv, CONFIG_DIR_FLAGS)
    if folder is None or _flag_value(argv, NAME_FLAGS)[0] is not None:
        return argv
    primary = Path(folder).resolve() / "config.yaml"
    if not primary.is_file():
        return argv
    check_schema_in_defaults(primary)
    searchpath = f"hydra.searchpath=[file://{Path(package_conf).resolve()}]"
    rest = [a for i, a in enumerate(argv) if i not in at]
    return ["--config-path", str(primary.parent), *rest, searchpath, *MLPROJ_HYDRA]


def check_schema_in_defaults(primary: Path) -> None:
    try:
        loaded = yaml.safe_load(primary.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{primary}: not YAML ({str(exc).splitlines()[0]})") from None
    defaults = loaded.get("defaults", []) if isinstance(loaded, dict) else []
    if "mlproj_schema" not in defaults:
        raise ConfigError(
            f"{primary} replaces mlproj's primary config: its defaults list must start with `- mlproj_schema` "
            "(then `- _self_` and the groups, as in mlproj's conf/config.yaml), or rename it and use --config-name"
        )


def _flag_value(argv: list[str], flags: tuple[str, ...]) -> tuple[str | None, set[int]]:
    """The value of `--flag V` or `--flag=V`, and the argv positions it takes."""
    for i, arg in enumerate(argv):
        if arg in flags and i + 1 < len(argv):
            return argv[i + 1], {i, i + 1}
        name, eq, value = arg.partition("=")
        if eq and name in flags:
            return value, {i}
    return None, set()
