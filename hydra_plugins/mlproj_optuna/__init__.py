"""mlproj's Optuna 5 sweeper for Hydra (hydra/sweeper=mlproj_optuna; preset: hparams_search=optuna)."""
