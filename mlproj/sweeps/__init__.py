"""Sweeps: Hydra multiruns as a parent MLflow run with nested trials, Optuna pruning, the Hydra callback."""
