"""Statistics that turn a run's numbers into verdicts: bootstrap intervals and McNemar tests
(:mod:`~probeft.verdicts.uncertainty`), paired Delta intervals of a run (:mod:`~probeft.verdicts.delta_intervals`),
linear CKA (:mod:`~probeft.verdicts.similarity`), and the paper's findings F1-F9 checked on a run
(:mod:`~probeft.verdicts.claims`).

May import: :mod:`probeft.core`, :mod:`probeft.results`.
"""
