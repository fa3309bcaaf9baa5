"""Entry points of the MLproject file, for `mlflow run`.

MLflow substitutes a parameter as one shell-quoted word, so `-P overrides="model=linear trainer.max_epochs=3"`
arrives as a single argument; it is split here with shell rules into Hydra overrides.
"""

from __future__ import annotations

import shlex
import sys


def main() -> None:
    overrides = shlex.split(sys.argv[1]) if len(sys.argv) > 1 else []
    sys.argv = [sys.argv[0], *overrides]
    from mlproj.__main__ import main as mlproj_main

    mlproj_main()


if __name__ == "__main__":
    main()
