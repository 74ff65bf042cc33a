"""Numbers reported in the paper (Mosbach et al., BlackboxNLP 2020), quoted for comparison.

Table 1: dev-set performance after fine-tuning (CoLA: MCC; SST-2, RTE: accuracy; SQuAD v1.1: EM/F1),
in percent. Keys are the paper's model ids and this project's task names.
"""

from __future__ import annotations

TABLE1: dict[str, dict[str, str]] = {
    "bert-base-cased": {"cola": "59.5", "sst2": "92.4", "rte": "64.6", "squad": "78.6 / 86.5"},
    "roberta-base": {"cola": "60.3", "sst2": "93.6", "rte": "73.6", "squad": "81.7 / 89.3"},
    "albert-base-v1": {"cola": "45.8", "sst2": "88.5", "rte": "69.6", "squad": "79.9 / 87.6"},
}
# Which metric each task reports in Table 1 (SQuAD shows exact match / F1).
TABLE1_METRICS: dict[str, tuple[str, ...]] = {
    "cola": ("mcc",),
    "sst2": ("accuracy",),
    "rte": ("accuracy",),
    "squad": ("exact_match", "f1"),
}
