"""Entry points of the MLproject file, for `mlflow run`.

MLflow substitutes each parameter as one shell-quoted word and cannot leave an optional flag out, so
`-P overrides="model=linear trainer.max_epochs=3"` arrives as one argument (split here with shell rules into
Hydra overrides; `sweep` adds -m) and the register entry point passes every parameter positionally (empty: not given).
"""

from __future__ import annotations

import shlex
import sys


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "register":
        sys.exit(_register(args[1:]))
    multirun = bool(args) and args[0] == "sweep"
    if multirun:
        args = args[1:]
    overrides = shlex.split(args[0]) if args else []
    sys.argv = [sys.argv[0], *(["-m"] if multirun else []), *overrides]
    from mlproj.__main__ import command

    command()  # as `python -m mlproj` (mlproj.startup's quick start: this is the process's command)


def _register(values: list[str]) -> int:
    from mlproj.register import main as register_main

    experiment, metric, filter_string, model_name, thresholds, dry_run = (values + [""] * 6)[:6]
    argv = ["--experiment", experiment]
    for flag, value in (("--metric", metric), ("--filter", filter_string), ("--model-name", model_name)):
        if value:
            argv += [flag, value]
    for threshold in shlex.split(thresholds):
        argv += ["--threshold", threshold]
    if dry_run.lower() in ("1", "true", "yes"):
        argv.append("--dry-run")
    return register_main(argv)


if __name__ == "__main__":
    main()
