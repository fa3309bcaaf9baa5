"""`python -m mlproj` / `mlproj`: compose the config with Hydra, validate, hand over to the train path.

Imports only Hydra and the schema here, so `--help` and `--cfg job` answer fast.
"""

from __future__ import annotations

import itertools
import os
import signal
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf, open_dict

from mlproj.config.primary import user_primary
from mlproj.config.schema import config_dir
from mlproj.errors import EXIT_FAILED, ConfigError, MlprojError, exit_code, report


@hydra.main(config_path=config_dir(), config_name="config", version_base="1.3")
def _main(cfg: DictConfig) -> float | str | None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from mlproj.config.naming import fill_default_experiment
    from mlproj.cv import cross_validate
    from mlproj.sweeps.runs import note_failure
    from mlproj.tracking.masking import mark_secrets, redact, redact_hydra_outputs
    from mlproj.train import run

    hydra_cfg = HydraConfig.get()
    # tracking.experiment's default (mlproj-<data name>), also in the config Hydra's own nodes interpolate
    # (hydra.sweeper.study_name: ${tracking.experiment}, read by an Optuna trial)
    for config in (cfg, hydra_cfg._get_parent()):
        if isinstance(config, DictConfig):
            fill_default_experiment(config)
    mark_secrets(cfg)
    if hydra_cfg.output_subdir:
        redact_hydra_outputs(Path(hydra_cfg.runtime.output_dir) / hydra_cfg.output_subdir)
    sweep = hydra_cfg.sweep.dir if hydra_cfg.mode == RunMode.MULTIRUN else None
    try:
        if sweep is not None:
            assign_gpu(cfg, hydra_cfg.job.num)
        runner = cross_validate if cfg.cv.folds else run  # cv.folds=K: a parent run, one nested run per fold
        result = runner(cfg, list(hydra_cfg.overrides.task), Path(hydra_cfg.runtime.output_dir), sweep=sweep)
    except MlprojError as exc:
        note_failure()
        if isinstance(exc, ConfigError) and os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        if sweep is not None and not exc.stops_sweep and not cfg.sweep.fail_fast:
            print(f"mlproj: trial failed ({redact(str(exc))}); the sweep goes on", file=sys.stderr)
            return None  # Hydra records the trial; the sweep goes on
        sys.exit(report(exc, message=redact(str(exc))))
    except Exception as exc:
        note_failure()
        if sweep is None:
            raise
        if cfg.sweep.fail_fast:
            # Hydra's launchers record a job's exception and run the next job; exiting stops the sweep.
            print(
                f"mlproj: trial failed ({type(exc).__name__}: {exc}); sweep.fail_fast stops the sweep", file=sys.stderr
            )
            sys.exit(EXIT_FAILED)
        # A failing trial is recorded FAILED (with its traceback) and the sweep goes on.
        print(f"mlproj: trial failed ({type(exc).__name__}: {exc}); the sweep goes on", file=sys.stderr)
        return None
    except KeyboardInterrupt as exc:
        line = getattr(exc, "message", "")
        name = signal.Signals(exit_code(exc) - 128).name
        print(line or f"mlproj: interrupted ({name}); the run was marked KILLED", file=sys.stderr)
        sys.exit(exit_code(exc))
    # The return value is what Hydra sweepers optimise: sweep.objective (default: the main val metric),
    # or "pruned" for a trial Optuna stopped early.
    return result.extra.get("objective")


def assign_gpu(cfg: DictConfig, job_num: int) -> None:
    """A multirun job: one device only; with several GPUs, each job its own (job number mod GPU count)."""
    from mlproj.config.schema import plain
    from mlproj.sweeps import runs as sweeps

    sweeps.check_devices(cfg)
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    chosen = sweeps.device_for_job(job_num, gpus, cfg.trainer.devices, plain(cfg.trainer.accelerator))
    if chosen is not None:
        cfg.trainer.devices = chosen


def main() -> None:
    argv = sys.argv[1:]
    key = help_key(argv)
    if key is not None:
        from mlproj.config.keyhelp import key_help

        try:
            print(key_help(key))
        except ConfigError as exc:
            sys.exit(report(exc))
        return
    try:
        argv = user_primary(argv, config_dir())  # a config.yaml in --config-dir is the primary config
    except ConfigError as exc:
        sys.exit(report(exc))
    sys.argv[1:] = argv
    from mlproj import outputs

    outputs.register()
    outputs.new_command()
    check_hydra_nodes(argv)
    try:
        _main()
    except SystemExit as exc:
        if exc.code in (0, None) and ("--help" in argv or "-h" in argv):
            from mlproj.config.keyhelp import overview

            print(overview())  # after Hydra's own help: every key, its default and description
        raise


def help_key(argv: list[str]) -> str | None:
    """`--help KEY` / `-h KEY`: the KEY (a word without `=`, not a flag); None for anything else."""
    for flag, value in itertools.pairwise(argv):
        if flag in ("--help", "-h") and "=" not in value and not value.startswith("-"):
            return value
    return None


def check_hydra_nodes(argv: list[str]) -> None:
    """Refuse a hydra.callbacks / hydra.launcher / hydra.sweeper `_target_` outside its family, before Hydra
    instantiates it (Hydra does so before the task function, so `_main` would be too late).

    The config is composed as Hydra is about to (same search path, --config-dir/--config-name, run or multirun
    mode; in multirun the sweep overrides are skipped, as Hydra does). A single run's config is checked whole
    here too (plan.check_startup), before Hydra makes the run's folder. An override that does not compose is
    explained in one line where mlproj.config.typos knows the cause (a misspelt key or option, a wrong type);
    anything else Hydra would refuse is left for Hydra to report. --help, --cfg, --info and shell completion
    instantiate nothing, so they are not checked."""
    import contextlib
    import io

    from hydra._internal.utils import get_args_parser

    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            args = get_args_parser().parse_args(argv)
    except SystemExit:
        return
    if args.help or args.hydra_help or args.cfg or args.info or args.shell_completion:
        return
    full_error = os.environ.get("HYDRA_FULL_ERROR") == "1"
    try:
        cfg = _compose_like_hydra(args)
    except _Refused as exc:  # a misspelt key or option: mlproj's line with a did-you-mean
        if full_error:
            return
        sys.exit(report(ConfigError(str(exc))))
    if cfg is None:
        return
    from hydra.types import RunMode

    from mlproj.config.families import check_hydra_targets

    try:
        check_hydra_targets(cfg)
        if OmegaConf.select(cfg, "hydra.mode") == RunMode.RUN:  # a sweep's jobs are checked one by one
            from mlproj.plan import check_startup

            with open_dict(cfg):
                check_startup(cfg)  # before Hydra makes the run's folder: a bad value leaves nothing behind
    except ConfigError as exc:
        if full_error:
            raise
        sys.exit(report(exc))


class _Refused(Exception):
    """The composition failed on an unknown key or group option (mlproj.config.typos says which)."""


def _compose_like_hydra(args: object) -> DictConfig | None:
    """hydra/_internal/utils.py `_run_hydra`'s composition; None where it fails (Hydra will say why), _Refused
    where it fails on an unknown key or option."""
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import (
        create_automatic_config_search_path,
        detect_calling_file_or_module_from_task_function,
        detect_task_name,
    )
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    config_name = getattr(args, "config_name", None) or "config"
    config_path = getattr(args, "config_path", None) or config_dir()
    try:
        calling_file, calling_module = detect_calling_file_or_module_from_task_function(_main)
        search_path = create_automatic_config_search_path(calling_file, calling_module, config_path)
        config_dir_arg = getattr(args, "config_dir", None)
        if config_dir_arg is not None:
            from hydra.core.config_search_path import SearchPathQuery

            abs_dir = os.path.abspath(config_dir_arg)
            if not os.path.isdir(abs_dir):
                return None
            search_path.prepend(provider="command-line", path=f"file://{abs_dir}", anchor=SearchPathQuery("schema"))
        hydra = Hydra.create_main_hydra2(
            task_name=detect_task_name(calling_file, calling_module), config_search_path=search_path
        )
        overrides = list(getattr(args, "overrides", []))
        mode = RunMode.MULTIRUN if getattr(args, "multirun", False) else hydra.get_mode(config_name, overrides)

        def compose(chosen: list[str]) -> DictConfig:
            return hydra.compose_config(config_name, chosen, run_mode=mode or RunMode.RUN)

        try:
            cfg = compose(overrides)
            cfg.hydra.mode = mode or RunMode.RUN  # as Hydra sets it for the job
            return cfg
        except Exception as exc:
            from mlproj.config.typos import explain

            message = explain(exc, overrides, compose, hydra.config_loader.get_group_options)
            if message:
                raise _Refused(message) from None
            raise
    except _Refused:
        raise
    except Exception:  # Hydra reports it, as it does today
        return None
    finally:
        GlobalHydra.instance().clear()


def command() -> None:
    """The process entry (`python -m mlproj`, the `mlproj` script): `main` with a quick start (mlproj.startup)."""
    from mlproj.startup import quick_start

    with quick_start():
        main()


if __name__ == "__main__":
    command()
