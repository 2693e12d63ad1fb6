"""Learning: LightningModule/DataModule around an Agent, callbacks, checkpoints with provenance, resume."""
