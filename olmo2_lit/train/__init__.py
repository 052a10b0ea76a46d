"""The training recipe on Lightning: the LightningModule, loss, optimizer groups, LR schedules,
the batch plan, checkpoint state, and the one place that wraps the model for training."""
