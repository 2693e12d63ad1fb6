"""Judgement: PDM score v1.1 (PDMS) and v2 (EPDMS) sub-metrics, open-loop and perception metrics."""
