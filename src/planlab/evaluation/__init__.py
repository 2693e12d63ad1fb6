"""Scoring runs: the per-scene metric cache (npz), parallel/sharded evaluation, NAVSIM-format CSVs, trajectory-file scoring."""
