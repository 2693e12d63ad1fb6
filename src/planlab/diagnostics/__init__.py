"""The doctor: checkpoint validation, training-log analysis, preflight smoke runs, memory estimates.

- :mod:`.checkpoint` — ``validate(target)``: is this checkpoint (or every checkpoint of a run) good? One exit
  code per failure class (``planlab ckpt validate``).
- :mod:`.logs` and :mod:`.signatures` — ``analyze(target)``: what happened in this run? The progress table,
  speed, NaN/Inf, and recognised failures with their fixes (``planlab logs analyze``).
- :mod:`.smoke` — ``run_smoke(cfg, run_dir)``: will this job survive? A short real run with a pre-flight
  job's success criteria and a 5-scene evaluation (``planlab smoke``, the preflight of ``planlab exp submit``).
- :mod:`.memory` — ``MemoryMonitor`` and ``estimate(cfg, …)``: peak memory of a process tree, a fit over
  measured runs, advice for a budget (``planlab memory estimate``).
"""
