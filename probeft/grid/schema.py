"""The grid's YAML schema: typed, strict sections validated with pydantic, and :func:`load_config`.

Unknown keys and bad values are errors naming the file and the key (``finetune.tasks.0: ...``). Types
are strict: ``epochs: true``, ``seeds: [1.0]`` or ``batch_size: "32"`` are errors, not 1, 1 and 32;
a key given twice in one mapping is an error naming its line; lists that expand into cells must not
be empty; model names become folder names, so they are restricted to letters, digits, ``_ . -``.
Task, head and pooling names are normalised through :mod:`probeft.core.names`, so ``SST-2``, ``sst_2``
and ``sst2`` are one task everywhere; ``device`` is checked by :func:`probeft.core.devices.check_device`
(``"auto"`` or any torch device string, e.g. ``cuda:1``). Expansion into cells is in
:mod:`probeft.grid`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from probeft.core import devices, names

__all__ = [
    "STAGES",
    "AttentionSection",
    "FinetuneSection",
    "GridConfig",
    "HeadFitSection",
    "ModelEntry",
    "PerplexitySection",
    "ProbingSection",
    "TaskOverrides",
    "load_config",
    "slug",
]

STAGES: tuple[str, ...] = ("finetune", "probing", "attention", "perplexity")
_SLUG = re.compile(r"[^A-Za-z0-9_.-]+")


def _no_repeats(values: list[Any]) -> list[Any]:
    """``values`` unchanged; ValueError naming the entries listed more than once."""
    repeated = sorted({str(v) for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"lists {repeated} more than once")
    return values


# Field types that normalise names on the way in (the validators raise ValueError listing valid names).
FinetuneTask = Annotated[str, AfterValidator(names.normalise_finetune_task)]
FinetuneState = Annotated[str, AfterValidator(lambda task: names.normalise_finetune_task(task, allow_none=True))]
Head = Annotated[str, AfterValidator(names.normalise_head)]
Pooling = Annotated[str, AfterValidator(names.normalise_pooling)]
# A list naming one thing twice (after normalisation) would give two cells one output folder.
Unique = AfterValidator(_no_repeats)
# A list that expands into cells: empty would silently run nothing of that stage.
NonEmpty = Field(min_length=1)
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def _not_bool(value: Any) -> Any:
    """YAML ``true`` must not pass as the number 1."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    return value


def _one_or_list(value: Any) -> Any:
    """``probe: mlp`` means ``[mlp]``."""
    return [value] if isinstance(value, str) else value


# The probes of the probing stage (probeft.probing.stage.PROBES): a name or a list of names.
ProbeKinds = Annotated[list[Literal["linear", "mlp"]], BeforeValidator(_one_or_list)]

# Floats stay lax (PyYAML reads ``2e-5`` without a dot as a string) but refuse booleans.
LearningRate = Annotated[float, BeforeValidator(_not_bool), Field(gt=0, strict=False)]


def slug(text: str) -> str:
    """A file-name-safe form of ``text`` (e.g. ``org/model`` -> ``org-model``)."""
    return _SLUG.sub("-", text).strip("-.") or "x"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ModelEntry(_Strict):
    """A model: ``name`` labels it in tables and file names; ``spec`` is a hub id, path or tiny name."""

    name: str
    spec: str

    @field_validator("name")
    @classmethod
    def _safe_name(cls, name: str) -> str:
        if not _SAFE_NAME.fullmatch(name) or ".." in name:
            raise ValueError(f"model name {name!r} must be letters, digits, '_', '.' or '-' (it names folders), "
                             "start with a letter or digit and contain no '..'")
        return name


class TaskOverrides(_Strict):
    """Settings of one fine-tuning task that differ from the section's (e.g. SQuAD's batch size)."""

    epochs: int | None = Field(default=None, ge=1)
    learning_rate: LearningRate = 2e-5
    batch_size: int = Field(default=32, ge=1)
    max_length: int | None = Field(default=None, ge=8)
    max_train: int | None = Field(default=None, ge=1)
    max_eval: int | None = Field(default=None, ge=1)


class FinetuneSection(_Strict):
    """Fine-tuning runs: every model x task x head x seed (plus what later stages need)."""

    tasks: Annotated[list[FinetuneTask], Unique] = Field(default_factory=list)
    heads: Annotated[list[Head], Unique, NonEmpty] = Field(default_factory=lambda: ["cls"])
    seeds: Annotated[list[int], Unique, NonEmpty] = Field(default_factory=lambda: [0])
    models: list[str] | None = None
    epochs: int | None = Field(default=None, ge=1)
    learning_rate: LearningRate = 2e-5
    batch_size: int = Field(default=32, ge=1)
    max_length: int | None = Field(default=None, ge=8)  # None: 128 for GLUE, 384 for SQuAD (the paper's)
    max_train: int | None = Field(default=None, ge=1)
    max_eval: int | None = Field(default=None, ge=1)
    per_task: dict[FinetuneTask, TaskOverrides] = Field(default_factory=dict)


    def settings(self, task: str) -> dict[str, Any]:
        """The training settings of ``task``: the section's, then its ``per_task`` entry on top."""
        base = {k: getattr(self, k) for k in TaskOverrides.model_fields}
        override = self.per_task.get(task)
        return {**base, **(override.model_dump(exclude_unset=True) if override else {})}


class ProbingSection(_Strict):
    """Probing cells: every model x fine-tuning state (``none`` = pre-trained) x fine-tuning seed."""

    tasks: Annotated[list[str], Unique] = Field(default_factory=lambda: list(names.PROBING_TASKS))
    poolings: Annotated[list[Pooling], Unique, NonEmpty] = Field(default_factory=lambda: list(names.POOLINGS))
    finetune_tasks: Annotated[list[FinetuneState], Unique, NonEmpty] = Field(
        default_factory=lambda: [names.NO_FINETUNE])
    finetune_head: Head = "cls"
    models: list[str] | None = None
    max_train: int | None = Field(default=None, ge=2)
    max_eval: int | None = Field(default=None, ge=2)
    batch_size: int = Field(default=64, ge=1)
    max_length: int = Field(default=128, ge=8)
    control: bool = True  # control task + selectivity rows (probeft.probing.control), same features
    control_seed: int = 0  # seed of the control labelling (and of the random-label control)
    # several control labellings (pages average them); None: [control_seed]
    control_seeds: Annotated[list[int], Unique, NonEmpty] | None = None
    random_control: bool = False  # per-sentence random-label control: the probe's memorisation capacity
    # linear (the paper's logistic regression), mlp (one hidden layer, probeft.probing.probe_mlp) or both
    probe: Annotated[ProbeKinds, Unique, NonEmpty] = Field(default_factory=lambda: ["linear"])
    mlp_seed: int = 0  # seed of the MLP probes' initial weights, example order and dropout
    mlp_models: list[str] | None = None  # with probe [linear, mlp]: the models that also get the MLP (None: all)
    mdl: bool = True  # online-code MDL rows of the train split (probeft.probing.mdl)
    mdl_l2: Literal["fixed", "dev"] = "fixed"  # online code's L2: one fixed prior, or chosen per prefix on dev
    refits: int = Field(default=0, ge=0)  # probe refits on bootstrap resamples of the train sentences (Delta intervals)
    cka: bool = True  # linear CKA of fine-tuned vs pre-trained features (probeft.verdicts.similarity), needs "none" probed too
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"  # extraction autocast on CUDA; CPU stays float32
    cache_dtype: Literal["float32", "float16"] = "float32"  # feature cache storage; probes compute in float32
    keep_finetuned_features: bool = False  # False: a fine-tuned encoder's cached features go once its cell is complete

    @field_validator("tasks")
    @classmethod
    def _tasks_nonempty(cls, tasks: list[str]) -> list[str]:
        if not tasks:
            raise ValueError("probing.tasks must name at least one probing task")
        return tasks

    @model_validator(mode="after")
    def _mlp_models_need_both_probes(self) -> ProbingSection:
        if self.mlp_models is not None and self.probe != ["linear", "mlp"]:
            raise ValueError(f"mlp_models restricts the MLP of probe [linear, mlp] to some models, but probe is "
                             f"{self.probe}")
        return self

    def probes_for(self, model: str) -> list[str]:
        """The probes a probing cell of ``model`` fits: ``probe``, without the MLP for a model not in ``mlp_models``."""
        if self.mlp_models is None or model in self.mlp_models:
            return list(self.probe)
        return [probe for probe in self.probe if probe != "mlp"]


class AttentionSection(_Strict):
    """Attention cells: pre-trained vs models fine-tuned on ``finetune_task`` with each head (and seed)."""

    models: list[str] | None = None
    finetune_task: FinetuneTask = "cola"
    heads: Annotated[list[Head], Unique, NonEmpty] = Field(default_factory=lambda: list(names.HEADS))
    seed: int = 0
    seeds: Annotated[list[int], Unique, NonEmpty] | None = None  # several fine-tuning seeds (replaces seed)
    probe_task: str = "bigram_shift"
    max_sentences: int | None = Field(default=1000, ge=1)
    batch_size: int = Field(default=32, ge=1)
    max_length: int = Field(default=128, ge=8)

    @model_validator(mode="after")
    def _one_way_to_name_seeds(self) -> AttentionSection:
        if self.seeds is not None and "seed" in self.model_fields_set:
            raise ValueError("attention: give either seed or seeds, not both")
        return self

    def finetune_seeds(self) -> list[int]:
        """The fine-tuning seeds compared: ``seeds``, else ``[seed]``."""
        return list(self.seeds) if self.seeds is not None else [self.seed]



# A share strictly between 0 and 1 (lax like LearningRate: YAML may give 0.1 as a float or an int-looking string).
Fraction = Annotated[float, BeforeValidator(_not_bool), Field(gt=0, lt=1, strict=False)]


class HeadFitSection(_Strict):
    """How ``perplexity.mlm_head: fitted`` fits a masked-LM head on each frozen pre-trained encoder, once per
    model (:class:`probeft.diagnostics.mlm_head.HeadFitSettings`; the block size is the perplexity's)."""

    max_blocks: int | None = Field(default=1000, ge=2)  # fitting blocks of WikiText-2 valid (None: all)
    heldout_fraction: Fraction = 0.1  # the last blocks, held out to choose the epoch
    epochs: int = Field(default=10, ge=1)
    patience: int = Field(default=2, ge=1)  # epochs without a lower held-out perplexity before stopping
    learning_rate: LearningRate = 1e-3
    batch_size: int = Field(default=256, ge=1)  # masked positions per Adam step
    seed: int = 0  # head initialisation and minibatch order
    mask_seed: int = 1  # masks of the fitting text (its own, not the evaluation's)


class PerplexitySection(_Strict):
    """Perplexity cells: per model x fine-tuning task, over fine-tuning seeds and epochs.

    ``mlm_head``: ``pretrained`` puts each model's own pre-trained masked-LM head on the fine-tuned encoders
    (the paper's); ``fitted`` first fits a head on the frozen pre-trained encoder (one cell per model,
    ``head_fit`` settings, WikiText-2 valid) and uses it instead: an analogue for encoders published without
    a head. ``bottom_layers`` also restores the bottom k layers (the F7 contrast), besides the top k.
    """

    models: list[str] | None = None
    finetune_tasks: Annotated[list[FinetuneTask], Unique, NonEmpty] = Field(default_factory=lambda: ["cola", "sst2"])
    head: Head = "cls"
    seeds: Annotated[list[int], Unique, NonEmpty] = Field(default_factory=lambda: [0, 1, 2, 3, 4])
    block_size: int = Field(default=128, ge=8)
    max_blocks: int | None = Field(default=None, ge=1)
    mask_seed: int = 0
    batch_size: int = Field(default=16, ge=1)
    mlm_head: Literal["pretrained", "fitted"] = "pretrained"
    head_fit: HeadFitSection | None = None  # only with mlm_head: fitted (None there: the defaults)
    bottom_layers: bool = True

    @model_validator(mode="after")
    def _head_fit_needs_a_fitted_head(self) -> PerplexitySection:
        if self.head_fit is not None and self.mlm_head != "fitted":
            raise ValueError(f"head_fit sets how a masked-LM head is fitted, but mlm_head is {self.mlm_head!r}; "
                             "set mlm_head: fitted or drop head_fit")
        return self

    def fit_settings(self) -> HeadFitSection:
        """The head-fitting settings: ``head_fit``, else the defaults."""
        return self.head_fit or HeadFitSection()



class GridConfig(_Strict):
    """A whole experiment grid (one YAML file)."""

    name: str
    description: str = ""
    data_dir: str | None = None
    demo_data: bool = False
    output_dir: str
    device: Annotated[str, AfterValidator(devices.check_device)] = "auto"
    kernel_name: str = "python3"
    models: list[ModelEntry]
    finetune: FinetuneSection | None = None
    probing: ProbingSection | None = None
    attention: AttentionSection | None = None
    perplexity: PerplexitySection | None = None

    @field_validator("models", mode="before")
    @classmethod
    def _models_from_strings(cls, models: Any) -> Any:
        if not isinstance(models, list) or not models:
            raise ValueError("models must be a non-empty list of specs or {name, spec} entries")
        return [{"name": slug(m), "spec": m} if isinstance(m, str) else m for m in models]

    @model_validator(mode="after")
    def _check_references(self) -> GridConfig:
        model_names = [m.name for m in self.models]
        if len(set(model_names)) != len(model_names):
            raise ValueError(f"model names must be unique, got {model_names}")
        for section_name in STAGES:
            section = getattr(self, section_name)
            unknown = [m for m in (getattr(section, "models", None) or []) if m not in model_names]
            if unknown:
                raise ValueError(f"{section_name}.models names unknown model(s) {unknown}; known: {model_names}")
        unknown = [m for m in ((self.probing.mlp_models if self.probing else None) or []) if m not in model_names]
        if unknown:
            raise ValueError(f"probing.mlp_models names unknown model(s) {unknown}; known: {model_names}")
        return self


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in first_line:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} given twice (first on line {first_line[key]})", key_node.start_mark)
            first_line[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def load_config(path: str | Path) -> GridConfig:
    """Read and validate a grid YAML file.

    Raises:
        FileNotFoundError: no such file.
        ValueError: invalid YAML or schema violations, naming the file and the offending keys.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"grid config not found: {path}")
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML ({error})") from error
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    try:
        return GridConfig.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<top>'}: {e['msg']}" for e in error.errors()
        )
        raise ValueError(f"{path}: invalid grid config: {problems}") from error
