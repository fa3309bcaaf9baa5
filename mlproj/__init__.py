"""mlproj: declarative, config-driven training with Hydra, PyTorch Lightning and MLflow."""

__version__ = "0.1.0"
