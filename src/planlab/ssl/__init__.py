"""Self-supervised pre-training: I-JEPA masks, predictor, EMA target encoder, the pre-training loop."""
