"""Task data for the Trainer: tokenised train / dev sets and the dev metric of each task.

Classification (CoLA, SST-2, RTE) comes from :func:`probeft.data.read_glue`; SQuAD from
:func:`probeft.data.read_squad_splits`, split into windows by :mod:`probeft.finetune.squad`. Caps
(``max_train`` / ``max_eval``) keep the same seeded random subset, in file order, for every model
and seed (:func:`probeft.data.seeded_subset`), since the files are ordered (CoLA by source, SQuAD by
article) and their first lines would be a biased sample.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import EvalPrediction, PreTrainedTokenizerBase

from probeft import data
from probeft.core import metrics
from probeft.finetune.config import FinetuneConfig
from probeft.finetune.squad import postprocess_squad, prepare_squad_features

__all__ = ["FeatureDataset", "TaskData", "load_task_data", "model_input_keys"]


class FeatureDataset(torch.utils.data.Dataset):
    """Rows of pre-tokenised features (lists of ints) as dicts, padded later by the collator.

    Args:
        columns: column name -> one value per row; all columns equally long.

    Raises:
        ValueError: columns of different lengths.
    """

    def __init__(self, columns: Mapping[str, Sequence[Any]]) -> None:
        lengths = {len(values) for values in columns.values()}
        if len(lengths) != 1:
            raise ValueError(f"feature columns differ in length: { {k: len(v) for k, v in columns.items()} }")
        self.columns = dict(columns)
        self.length = lengths.pop()

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {name: values[index] for name, values in self.columns.items()}


@dataclass
class TaskData:
    """Everything the Trainer needs for one task."""

    train: FeatureDataset
    dev: FeatureDataset
    num_labels: int
    label_names: list[str]
    compute_metrics: Callable[[EvalPrediction], dict[str, float]]
    sizes: dict[str, int] = field(default_factory=dict)


def model_input_keys(tokenizer: PreTrainedTokenizerBase, encoder_config: Any) -> list[str]:
    """The model inputs to build: token types exactly where the encoder has several (``type_vocab_size > 1``).

    The encoder's config decides, not ``tokenizer.model_input_names``: transformers 5's ALBERT tokenizer no
    longer lists ``token_type_ids`` (huggingface/transformers#48128), which would train albert-base-v1 on
    sentence pairs with every segment id 0. The pair encoders ask the tokenizer for them explicitly.
    """
    keys = ["input_ids", "attention_mask"]
    if getattr(encoder_config, "type_vocab_size", 0) > 1:
        keys.append("token_type_ids")
    return keys


def classification_dataset(
    split: data.ClassificationSplit, tokenizer: PreTrainedTokenizerBase, keys: Sequence[str], max_length: int
) -> FeatureDataset:
    """Tokenised sentences (or sentence pairs, with the tokenizer's pair encoding) plus ``labels``."""
    options = {"truncation": True, "max_length": max_length, "return_token_type_ids": "token_type_ids" in keys}
    if split.texts_b is not None:  # sentence pairs (RTE)
        encoded = tokenizer(list(split.texts_a), list(split.texts_b), **options)
    else:
        encoded = tokenizer(list(split.texts_a), **options)
    columns = {key: encoded[key] for key in keys}
    columns["labels"] = [int(label) for label in split.labels]
    return FeatureDataset(columns)


def classification_metrics(task: str) -> Callable[[EvalPrediction], dict[str, float]]:
    """The Trainer's ``compute_metrics`` for a GLUE task: accuracy, plus MCC for CoLA."""

    def compute(prediction: EvalPrediction) -> dict[str, float]:
        logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        predicted = np.asarray(logits).argmax(axis=-1)
        gold = np.asarray(prediction.label_ids)
        scores = {"accuracy": metrics.accuracy(gold, predicted)}
        if task == "cola":
            scores["mcc"] = metrics.matthews_corrcoef(gold, predicted)
        return scores

    return compute


def _load_classification(
    config: FinetuneConfig, data_dir: str | Path | None, tokenizer: PreTrainedTokenizerBase, keys: Sequence[str]
) -> TaskData:
    glue = data.read_glue(config.task, data_dir, max_train=config.max_train, max_eval=config.max_eval)
    for name, split in (("train", glue.train), ("dev", glue.dev)):
        if len(split.labels) == 0:
            raise ValueError(f"task {config.task!r}: the {name} split is empty (data_dir={data_dir!r})")
    return TaskData(
        train=classification_dataset(glue.train, tokenizer, keys, config.max_length),
        dev=classification_dataset(glue.dev, tokenizer, keys, config.max_length),
        num_labels=len(glue.label_names),
        label_names=list(glue.label_names),
        compute_metrics=classification_metrics(config.task),
        sizes={"train_examples": len(glue.train.labels), "dev_examples": len(glue.dev.labels)},
    )


def _capped(examples: list[data.SquadExample], cap: int | None) -> list[data.SquadExample]:
    return [examples[i] for i in data.seeded_subset(len(examples), cap)]


def _load_squad(
    config: FinetuneConfig, data_dir: str | Path | None, tokenizer: PreTrainedTokenizerBase, keys: Sequence[str]
) -> TaskData:
    train_all, dev_all = data.read_squad_splits(data_dir)
    train_examples = _capped(train_all, config.max_train)
    dev_examples = _capped(dev_all, config.max_eval)
    for name, examples in (("train", train_examples), ("dev", dev_examples)):
        if not examples:
            raise ValueError(f"task 'squad': the {name} split is empty (data_dir={data_dir})")
    windows = {"max_length": config.max_length, "doc_stride": config.doc_stride}
    train_features = prepare_squad_features(train_examples, tokenizer, keys, **windows)
    dev_features = prepare_squad_features(dev_examples, tokenizer, keys, **windows)
    references = {example.id: list(example.answers) for example in dev_examples}

    def compute(prediction: EvalPrediction) -> dict[str, float]:
        start_logits, end_logits = prediction.predictions[:2]
        answers = postprocess_squad(
            dev_examples, dev_features, start_logits, end_logits,
            n_best=config.n_best, max_answer_length=config.max_answer_length,
        )
        return metrics.squad_scores(answers, references)

    return TaskData(
        train=FeatureDataset(train_features.columns()),
        # Dev windows carry first-answer positions too: they give a dev loss, and the Trainer only calls
        # compute_metrics when the evaluation data has labels. Scores use all gold answers.
        dev=FeatureDataset(dev_features.columns()),
        num_labels=0,
        label_names=[],
        compute_metrics=compute,
        sizes={
            "train_examples": len(train_examples), "train_windows": len(train_features),
            "dev_examples": len(dev_examples), "dev_windows": len(dev_features),
        },
    )


def load_task_data(
    config: FinetuneConfig, data_dir: str | Path | None, tokenizer: PreTrainedTokenizerBase, keys: Sequence[str]
) -> TaskData:
    """Train / dev sets and metric for ``config.task`` (resolved config; ``data_dir`` None = the hub).

    Raises:
        ValueError: an empty split, or the readers' errors naming the file and line.
    """
    loader = _load_squad if config.task == "squad" else _load_classification
    return loader(config, data_dir, tokenizer, keys)
