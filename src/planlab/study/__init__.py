"""The label-efficiency study: does a self-supervised encoder let a planner reach a good PDMS with fewer labels?

``config`` (the study schema), ``runner`` (encoder, sweeps, caches, local or SLURM execution), ``evaluate``
(scoring frozen-encoder runs from the embedding cache, parity-checked), ``results`` (tables, CIs, curve).
A study sits above training, evaluation, ssl and experiments: every run is an experiment of the manager.
"""
