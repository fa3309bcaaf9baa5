"""The built-in LightningModule tasks (supervised learning on tensors), chunked manual optimization."""
