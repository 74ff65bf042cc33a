"""Statistics that turn a run's numbers into verdicts: bootstrap intervals and McNemar tests
(:mod:`~probeft.verdicts.uncertainty`), paired Delta intervals of a run (:mod:`~probeft.verdicts.delta_intervals`),
linear CKA (:mod:`~probeft.verdicts.similarity`), minimum detectable effects (:mod:`~probeft.verdicts.power`),
the effect sizes and margins of the verdicts (:mod:`~probeft.verdicts.margins`), and the paper's findings F1-F9
checked on a run with three-valued verdicts (:mod:`~probeft.verdicts.claims`).

May import: :mod:`probeft.core`, :mod:`probeft.results`.
"""
