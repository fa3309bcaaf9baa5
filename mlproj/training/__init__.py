"""Training: the Lightning Trainer mlproj builds (callbacks, progress, flags), its MLflow run logger, signals."""
