"""The probing stage (paper Sec. 3.2, 4.1): features of every layer (:mod:`~probeft.probing.extract`,
cached by :mod:`~probeft.probing.feature_cache`), batched logistic-regression probes
(:mod:`~probeft.probing.probe`, optimiser :mod:`~probeft.probing.probe_lbfgs`), batched one-hidden-layer MLP
probes (:mod:`~probeft.probing.probe_mlp`), control tasks
(:mod:`~probeft.probing.control`), online-code MDL (:mod:`~probeft.probing.mdl`), and the stage itself
(:mod:`~probeft.probing.stage`, re-exported here).

May import: :mod:`probeft.core`, :mod:`probeft.data`, :mod:`probeft.models`, :mod:`probeft.results`,
:mod:`probeft.verdicts`.
"""

from __future__ import annotations

from probeft.probing.stage import (
    CI_CONFIDENCE,
    CI_RESAMPLES,
    CI_SEED,
    CONTROL_POSITION,
    MDL_SHUFFLE_SEED,
    PROBES,
    ProbingRun,
    cka_rows,
    mdl_task_rows,
    probe_encoder,
    probe_task_rows,
    probing_table,
    run_probing,
    selectivity_rows,
)

__all__ = [
    "CI_CONFIDENCE",
    "CI_RESAMPLES",
    "CI_SEED",
    "CONTROL_POSITION",
    "MDL_SHUFFLE_SEED",
    "PROBES",
    "ProbingRun",
    "cka_rows",
    "mdl_task_rows",
    "probe_encoder",
    "probe_task_rows",
    "probing_table",
    "run_probing",
    "selectivity_rows",
]
