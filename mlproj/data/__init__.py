"""Data: raw sources, fitted preprocessing, splits and on-device batches."""
