"""Research workflows over many runs: ``sweep`` (a grid of variants x seeds), ``compare`` (their curves
and spread) and ``report`` (one run's health), docs/research.md.

Nothing here trains: ``sweep`` starts ``olmo2-lit fit`` subprocesses, ``compare`` and ``report`` read the
TensorBoard event files and checkpoints those runs wrote.
"""
