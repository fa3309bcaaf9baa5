"""The config: schema.py (dataclasses in Hydra's ConfigStore), checks.py (cross-field checks at startup),
families.py (typed instantiation: the class family each `_target_` must belong to)."""
