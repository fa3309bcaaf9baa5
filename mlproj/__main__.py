"""`python -m mlproj` / `mlproj`: compose the config with Hydra, validate, hand over to the train path.

Imports only Hydra and the schema here, so `--help` and `--cfg job` answer fast.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from mlproj.config.schema import config_dir
from mlproj.errors import ConfigError


@hydra.main(config_path=config_dir(), config_name="config", version_base="1.3")
def _main(cfg: DictConfig) -> float | str | None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from mlproj.registry.gate import RegistryError
    from mlproj.sweeps.runs import note_failure
    from mlproj.tracking.masking import mark_secrets, redact, redact_hydra_outputs
    from mlproj.tracking.outage import EXIT_KEPT_LOCALLY, KeptLocally, TrackingUnreachable
    from mlproj.train import run

    hydra_cfg = HydraConfig.get()
    mark_secrets(cfg)
    if hydra_cfg.output_subdir:
        redact_hydra_outputs(Path(hydra_cfg.runtime.output_dir) / hydra_cfg.output_subdir)
    sweep = hydra_cfg.sweep.dir if hydra_cfg.mode == RunMode.MULTIRUN else None
    try:
        if sweep is not None:
            assign_gpu(cfg, hydra_cfg.job.num)
        result = run(cfg, list(hydra_cfg.overrides.task), Path(hydra_cfg.runtime.output_dir), sweep=sweep)
    except ConfigError as exc:
        note_failure()
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"mlproj: error: {redact(str(exc))}", file=sys.stderr)
        sys.exit(2)
    except (RegistryError, TrackingUnreachable) as exc:
        note_failure()
        print(f"mlproj: error: {redact(str(exc))}", file=sys.stderr)
        sys.exit(1)
    except KeptLocally as exc:
        note_failure()
        print(f"mlproj: {redact(str(exc))}", file=sys.stderr)
        if sweep is None or cfg.sweep.fail_fast:
            sys.exit(EXIT_KEPT_LOCALLY)
        return None
    except Exception as exc:
        note_failure()
        if sweep is None and type(exc).__name__ == "TrainingDiverged":
            print(f"mlproj: error: {exc}; the run was marked FAILED", file=sys.stderr)
            sys.exit(1)
        if sweep is None:
            raise
        if cfg.sweep.fail_fast:
            # Hydra's launchers record a job's exception and run the next job; exiting stops the sweep.
            print(
                f"mlproj: trial failed ({type(exc).__name__}: {exc}); sweep.fail_fast stops the sweep", file=sys.stderr
            )
            sys.exit(1)
        # A failing trial is recorded FAILED (with its traceback) and the sweep goes on.
        print(f"mlproj: trial failed ({type(exc).__name__}: {exc}); the sweep goes on", file=sys.stderr)
        return None
    except KeyboardInterrupt as exc:
        # 128 + the signal, as a shell reports it: 130 for Ctrl-C, 143 for SIGTERM (a preemption).
        signum = int(getattr(exc, "signum", signal.SIGINT))
        print(f"mlproj: interrupted ({signal.Signals(signum).name}); the run was marked KILLED", file=sys.stderr)
        sys.exit(128 + signum)
    # The return value is what Hydra sweepers optimise: sweep.objective (default: the main val metric),
    # or "pruned" for a trial Optuna stopped early.
    return result.extra.get("objective")


def assign_gpu(cfg: DictConfig, job_num: int) -> None:
    """A multirun job: one device only; with several GPUs, each job its own (job number mod GPU count)."""
    from mlproj.sweeps import runs as sweeps

    sweeps.check_devices(cfg)
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    chosen = sweeps.device_for_job(job_num, gpus, cfg.trainer.devices, cfg.trainer.accelerator.value)
    if chosen is not None:
        cfg.trainer.devices = chosen


def main() -> None:
    _main()


if __name__ == "__main__":
    main()
