"""Fine-tuning pre-trained encoders on CoLA, SST-2, RTE and SQuAD v1.1 (paper Sec. 3.4, Table 1).

One module per concern:

* :mod:`~probeft.finetune.config`: :class:`FinetuneConfig`, the paper's hyper-parameters, validation.
* :mod:`~probeft.finetune.heads`: encoder + fresh head (tanh CLS / mean for classification, span for SQuAD).
* :mod:`~probeft.finetune.squad`: SQuAD context windows, answer positions, answer post-processing.
* :mod:`~probeft.finetune.task_data`: tokenised train / dev sets and each task's dev metric.
* :mod:`~probeft.finetune.checkpoints`: the checkpoint store's layout and its read side (re-exported here).
* :mod:`~probeft.finetune.store`: writing per-epoch checkpoints, restart and resume.
* :mod:`~probeft.finetune.train`: Trainer arguments, devices and the entry point :func:`run_finetune`.

After every epoch the dev set is evaluated and the *encoder* and tokenizer are saved to
``output_dir/epoch-<e>/`` (``AutoModel.from_pretrained`` loads it alone), with the head weights in
``heads.safetensors`` and ``checkpoint.json`` (the completion marker, written last).

May import: :mod:`probeft.core`, :mod:`probeft.data`, :mod:`probeft.models`, :mod:`probeft.results`.
"""

from __future__ import annotations

from probeft.core.names import CLASSIFICATION_TASKS, HEADS, SQUAD_HEAD, TASK_METRICS
from probeft.core.names import FINETUNE_TASKS as TASKS
from probeft.finetune.checkpoints import (
    CHECKPOINT_MARKER,
    HEADS_FILE,
    checkpoint_dir,
    completed_epochs,
    final_checkpoint,
    read_checkpoint_info,
)
from probeft.finetune.config import FinetuneConfig
from probeft.finetune.heads import SequenceClassifier, SpanQuestionAnsweringModel, load_encoder_for_finetuning
from probeft.finetune.squad import SquadFeatures, postprocess_squad, prepare_squad_features, squad_answer_positions
from probeft.finetune.store import RESUME_DIR, run_signature
from probeft.finetune.train import resolved_precision, run_finetune, training_arguments

__all__ = [
    "CHECKPOINT_MARKER",
    "CLASSIFICATION_TASKS",
    "HEADS",
    "HEADS_FILE",
    "RESUME_DIR",
    "SQUAD_HEAD",
    "TASKS",
    "TASK_METRICS",
    "FinetuneConfig",
    "SequenceClassifier",
    "SpanQuestionAnsweringModel",
    "SquadFeatures",
    "checkpoint_dir",
    "completed_epochs",
    "final_checkpoint",
    "load_encoder_for_finetuning",
    "postprocess_squad",
    "prepare_squad_features",
    "read_checkpoint_info",
    "resolved_precision",
    "run_finetune",
    "run_signature",
    "squad_answer_positions",
    "training_arguments",
]
