"""The PDM score: NAVSIM v1.1 PDMS and v2 EPDMS sub-metrics on simulated ego states, batched over scenes."""
