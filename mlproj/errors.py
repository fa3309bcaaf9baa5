"""The errors users see: one short message and an exit code, no traceback (unless HYDRA_FULL_ERROR=1).

Every entry point (`python -m mlproj`, `mlproj.register`, `mlproj.predict`, `mlproj.upload`, ...) catches
`MlprojError` once and exits with the error's `exit_code`; the README's exit-code table is `exit_code_table()`.
`Interrupted` is the one exception outside the family: an interrupt must pass through `except Exception`
(Lightning's and the libraries' own handlers), so it stays a KeyboardInterrupt and carries the same contract.
Nothing here imports anything heavy: the config-validation path imports this module.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

EXIT_CONFIG = 2  # bad configuration or input: nothing was created
EXIT_FAILED = 1  # the run, the tracking server or the registry failed
EXIT_KEPT_LOCALLY = 75  # EX_TEMPFAIL: nothing lost, the results wait on disk for `mlproj.upload`


class MlprojError(Exception):
    """mlproj's errors: a one-line message for users and the process's exit code."""

    exit_code = EXIT_FAILED
    # In a Hydra sweep, False: this error ends one trial (recorded FAILED), the sweep goes on.
    stops_sweep = True
    label = "error"  # how the one line starts: "mlproj: error: ..."


class ConfigError(MlprojError, ValueError):
    """A bad configuration, argument or input file: reported before any side effect (no store, no run)."""

    exit_code = EXIT_CONFIG


class InputError(ConfigError):
    """Rows a model or the preprocessing cannot take (missing columns, non-numeric values, no usable feature)."""


class ModelLoadError(MlprojError, RuntimeError):
    """A packaged model that is missing, damaged, of an unknown format, or names a class it may not."""

    exit_code = EXIT_CONFIG


class TrackingUnreachable(MlprojError, RuntimeError):
    """The tracking server did not answer at start: nothing was created or trained."""


class TrackingLost(MlprojError, RuntimeError):
    """The tracking server stopped answering mid-run and did not come back within tracking.retry_for."""


class KeptLocally(MlprojError, RuntimeError):
    """The run's results are on local disk because the server never came back (`mlproj.upload` sends them)."""

    exit_code = EXIT_KEPT_LOCALLY
    stops_sweep = False  # only under sweep.fail_fast
    label = "results kept locally"

    def __init__(self, folder: Path, run_id: str) -> None:
        self.folder, self.run_id = folder, run_id
        super().__init__(
            f"the tracking server was lost and did not come back; nothing is lost: the trained model and the "
            f"unsent results of run {run_id} are in {folder}. When the server is back, log them with: "
            f"python -m mlproj.upload {folder}"
        )


class RegistryError(MlprojError, RuntimeError):
    """Registration failed after the run finished (the run stays FINISHED; the message says how to retry)."""


class TrainingDiverged(MlprojError, FloatingPointError):
    """The loss became NaN or infinite: the run is marked FAILED."""

    stops_sweep = False


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during a run: the run ends KILLED; exit 128 + the signal, as a shell reports it."""

    def __init__(self, signum: int = signal.SIGINT, message: str = "") -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)
        self.message = message  # the one line to print instead of the default (e.g. during the registry gate)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def exit_code(exc: BaseException) -> int:
    """The exit code for anything an entry point ends on: an MlprojError's own, 128 + signal for an interrupt."""
    if isinstance(exc, MlprojError):
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return 128 + int(getattr(exc, "signum", signal.SIGINT))
    return EXIT_FAILED


def report(exc: MlprojError, prog: str = "mlproj", message: str | None = None) -> int:
    """The one way an entry point ends on an error: one line on stderr (`message`, e.g. masked, or the error's
    own); returns the exit code to exit with."""
    print(f"{prog}: {exc.label}: {message if message is not None else exc}", file=sys.stderr)
    return exc.exit_code


FAMILY = (
    ConfigError,
    InputError,
    ModelLoadError,
    TrackingUnreachable,
    TrackingLost,
    RegistryError,
    TrainingDiverged,
    KeptLocally,
)


def exit_code_table() -> str:
    """The README's exit-code table, from the classes above (tests/test_errors.py keeps the README in step)."""
    rows = [("0", "", "Success; a gate that declines to register is a success too (the run is FINISHED).")]
    rows.append(("1", "any other exception", "A bug in a model or a bad batch: the run is FAILED with its traceback."))
    rows += [(str(cls.exit_code), f"`{cls.__name__}`", _summary(cls)) for cls in sorted(FAMILY, key=_code)]
    rows.append(("130 / 143", f"`{Interrupted.__name__}`", _summary(Interrupted)))
    lines = ["| exit | error | meaning |", "|---|---|---|", *(f"| {c} | {e} | {m} |" for c, e, m in rows)]
    return "\n".join(lines)


def _code(cls: type[MlprojError]) -> int:
    return cls.exit_code


def _summary(cls: type) -> str:
    return " ".join((cls.__doc__ or "").split())
