"""Which process this is under DDP, known before Lightning sets up the process group.

Every rank runs mlproj's whole entry point: Lightning's own launcher re-runs the command for ranks > 0 (with
LOCAL_RANK set), torchrun and SLURM start every process themselves (RANK / SLURM_PROCID). Only rank 0
creates the MLflow run, logs, packages and registers; the other ranks train and evaluate.
"""

from __future__ import annotations

import os


def is_rank_zero() -> bool:
    env = os.environ
    if env.get("RANK", "").isdigit():  # torchrun (and Lightning once it set up DDP): the global rank
        return int(env["RANK"]) == 0
    if int(env.get("LOCAL_RANK") or 0) > 0:  # a process Lightning's launcher started on this machine
        return False
    if env.get("SLURM_PROCID", "").isdigit():  # srun: one task per process (checked after LOCAL_RANK,
        return int(env["SLURM_PROCID"]) == 0  # which Lightning's launcher sets inside a SLURM allocation)
    return int(env.get("NODE_RANK") or 0) == 0  # the launching process of machine NODE_RANK
