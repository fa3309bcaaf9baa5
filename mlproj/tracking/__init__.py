"""Tracking: the MLflow run (experiment, lifecycle, provenance), masking, outages, resume.

Nothing is re-exported here: importing masking must not import MLflow."""
