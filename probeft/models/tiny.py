"""Random encoders (BERT, RoBERTa, ALBERT), tiny or base-sized, and their word-level tokenizers, built once into the cache.

Specs look like ``"tiny-bert"``, ``"tiny-roberta"``, ``"tiny-albert"`` (hidden 32, 2 heads, 4 layers, seed 0),
with optional suffixes for layers and seed: ``"tiny-bert-L2"``, ``"tiny-roberta-L2-s1"``.
``"random-bert-base"``, ``"random-roberta-base"``, ``"random-albert-base"`` (same suffixes) have the paper's
base sizes (hidden 768, 12 heads, intermediate 3072, 12 layers, 512 positions, init std 0.02; ALBERT's
embedding 128) with the same small tokenizers: for timing GPU runs at paper scale without the hub (speed
hardly depends on the weights; the vocabulary is small, so only the embedding and MLM-head matrices are
smaller than the real models'). A build is
deterministic (same spec -> byte-identical weights and tokenizer files) and lands in
``cache_root("models")/<name>-L<layers>-s<seed>``; the demo results depend on those exact weights.

Tiny models are saved as ``*ForMaskedLM`` checkpoints (so a "pre-trained" MLM head exists) plus the encoder's
pooler (as real BERT/ALBERT/RoBERTa checkpoints have), so both ``AutoModel`` and ``AutoModelForMaskedLM`` load them
with no missing weights. Their tokenizers know :data:`TINY_VOCABULARY_WORDS` as whole words and fall back to single
characters, so any ASCII text tokenizes without an unknown token. The word list lives here, next to the builder,
and must cover every word of the demo-data grammar (:mod:`probeft.data.demo`; a test checks it), so a demo
sentence is one token per word.

Imports from :mod:`probeft`: ``files`` and ``quiet`` only (:mod:`probeft.models` calls into this module).
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from probeft.core.files import atomic_directory, cache_root
from probeft.core.quiet import quiet_transformers

__all__ = [
    "TINY_DEFAULT_LAYERS",
    "TINY_HIDDEN_SIZE",
    "TINY_INITIALIZER_RANGE",
    "TINY_INTERMEDIATE_SIZE",
    "TINY_MAX_LENGTH",
    "TINY_MODEL_NAMES",
    "TINY_NUM_HEADS",
    "TINY_VOCABULARY_WORDS",
    "RANDOM_BASE_MODEL_NAMES",
    "build_tiny_model",
    "models_cache_dir",
    "parse_tiny_spec",
    "tiny_model_dir",
]

TINY_MODEL_NAMES = ("tiny-bert", "tiny-roberta", "tiny-albert")
RANDOM_BASE_MODEL_NAMES = ("random-bert-base", "random-roberta-base", "random-albert-base")

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


@dataclass(frozen=True)
class _Sizes:
    """The sizes of one family of random models (the tiny ones' values are part of the demo's exact weights)."""

    hidden: int
    heads: int
    intermediate: int
    max_length: int
    albert_embedding: int
    initializer_range: float
    default_layers: int


_TINY_SIZES = _Sizes(TINY_HIDDEN_SIZE, TINY_NUM_HEADS, TINY_INTERMEDIATE_SIZE, TINY_MAX_LENGTH, _ALBERT_EMBEDDING_SIZE,
                     TINY_INITIALIZER_RANGE, TINY_DEFAULT_LAYERS)
# bert-base / roberta-base / albert-base-v1 (BERT's init std 0.02 is right at this width).
_BASE_SIZES = _Sizes(768, 12, 3072, 512, 128, 0.02, 12)


def _sizes(name: str) -> _Sizes:
    return _BASE_SIZES if name in RANDOM_BASE_MODEL_NAMES else _TINY_SIZES


def _architecture(name: str) -> str:
    """``"tiny-roberta"`` / ``"random-roberta-base"`` -> ``"roberta"``."""
    return name.split("-")[1]

# Bump when the way tiny models are built changes: cached builds with another version are rebuilt.
_TINY_BUILD_VERSION = 2
_TINY_MARKER = "probeft_tiny_model.json"
_TINY_SPEC = re.compile(
    r"^(?P<name>tiny-(?:bert|roberta|albert)|random-(?:bert|roberta|albert)-base)(?:-L(?P<layers>\d+))?"
    r"(?:-s(?P<seed>\d+))?$", re.IGNORECASE
)

# Whole-word entries of the tiny tokenizers: common English words plus every word the demo-data grammar
# (probeft.data.demo) uses, so demo sentences become one token per word. Other words fall back to characters.
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


def _ascii_characters(lowercase: bool) -> list[str]:
    """Printable non-space ASCII characters (lower-case only if the tokenizer lower-cases) + a few extras."""
    chars = [c for c in string.printable if not c.isspace() and not (lowercase and c.isupper())]
    return chars + [c for c in _EXTRA_CHARACTERS if c not in chars]


def _tiny_bert_tokenizer(max_length: int) -> PreTrainedTokenizerBase:
    """Uncased WordPiece: whole words, then single characters and ``##`` characters as fallback."""
    from transformers import BertTokenizer

    vocab: dict[str, int] = {}
    for token in ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]:
        vocab[token] = len(vocab)
    chars = _ascii_characters(lowercase=True)
    for token in chars + ["##" + c for c in chars] + list(TINY_VOCABULARY_WORDS):
        vocab.setdefault(token, len(vocab))
    return BertTokenizer(vocab=vocab, do_lower_case=True, model_max_length=max_length)


def _tiny_albert_tokenizer(max_length: int) -> PreTrainedTokenizerBase:
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
    return AlbertTokenizer(vocab=pieces, do_lower_case=True, model_max_length=max_length)


def _tiny_roberta_tokenizer(max_length: int) -> PreTrainedTokenizerBase:
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
    return RobertaTokenizer(vocab=state["vocab"], merges=merges, model_max_length=max_length)


def _tiny_config(name: str, tokenizer: PreTrainedTokenizerBase, num_layers: int):
    """Config of a random model (tiny or base-sized) whose special-token ids match ``tokenizer``."""
    sizes = _sizes(name)
    common = dict(
        vocab_size=len(tokenizer),
        hidden_size=sizes.hidden,
        num_hidden_layers=num_layers,
        num_attention_heads=sizes.heads,
        intermediate_size=sizes.intermediate,
        pad_token_id=tokenizer.pad_token_id,
        initializer_range=sizes.initializer_range,
    )
    architecture = _architecture(name)
    if architecture == "bert":
        from transformers import BertConfig

        return BertConfig(max_position_embeddings=sizes.max_length, type_vocab_size=2, **common)
    if architecture == "roberta":
        from transformers import RobertaConfig

        # RoBERTa numbers positions from pad_token_id + 1, so 128 tokens need 130 position embeddings.
        return RobertaConfig(
            max_position_embeddings=sizes.max_length + tokenizer.pad_token_id + 1,
            type_vocab_size=1,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            **common,
        )
    if architecture == "albert":
        from transformers import AlbertConfig

        return AlbertConfig(
            embedding_size=sizes.albert_embedding,
            max_position_embeddings=sizes.max_length,
            type_vocab_size=2,
            num_hidden_groups=1,
            inner_group_num=1,
            hidden_act="gelu_new",
            bos_token_id=tokenizer.cls_token_id,
            eos_token_id=tokenizer.sep_token_id,
            **common,
        )
    raise ValueError(f"unknown random model {name!r}; expected one of {TINY_MODEL_NAMES + RANDOM_BASE_MODEL_NAMES}")


def _tiny_mlm_model(name: str, config) -> PreTrainedModel:
    """A randomly initialised ``*ForMaskedLM`` that also carries the encoder's pooler (as real checkpoints do)."""
    architecture = _architecture(name)
    if architecture == "bert":
        from transformers import BertForMaskedLM
        from transformers.models.bert.modeling_bert import BertPooler

        model = BertForMaskedLM(config)
        model.bert.pooler = BertPooler(config)
    elif architecture == "roberta":
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
    sizes = _sizes(name)
    recipe = json.dumps(
        [TINY_VOCABULARY_WORDS, _EXTRA_CHARACTERS, sizes.hidden, sizes.heads, sizes.intermediate,
         sizes.max_length, sizes.albert_embedding, sizes.initializer_range]
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


def models_cache_dir() -> Path:
    """Where tiny models are built: ``cache_root("models")`` (``$PROBEFT_CACHE/models``, else ``~/.cache/probeft/models``)."""
    return cache_root("models")


def parse_tiny_spec(spec: str) -> tuple[str, int, int] | None:
    """``"tiny-bert-L2-s1"`` -> ``("tiny-bert", 2, 1)``; ``None`` if ``spec`` is not a tiny-model name (case-insensitive)."""
    match = _TINY_SPEC.match(spec.strip().lower())
    if match is None:
        return None
    name = match["name"]
    layers = int(match["layers"]) if match["layers"] else _sizes(name).default_layers
    seed = int(match["seed"]) if match["seed"] else 0
    return name, layers, seed


def tiny_model_dir(spec: str) -> Path | None:
    """The cache folder of a tiny-model spec, built there first if needed; ``None`` if ``spec`` is not a tiny name.

    Args:
        spec: e.g. ``"tiny-bert"`` or ``"TINY-ROBERTA-L2-S1"``.

    Returns:
        ``models_cache_dir()/<name>-L<layers>-s<seed>``, holding a complete build, or None.
    """
    tiny = parse_tiny_spec(spec)
    if tiny is None:
        return None
    name, layers, seed = tiny
    out_dir = models_cache_dir() / f"{name}-L{layers}-s{seed}"
    if not _is_complete_tiny_build(out_dir, name, seed, layers):
        build_tiny_model(name, out_dir, seed=seed, num_layers=layers)
    return out_dir


def build_tiny_model(name: str, out_dir: Path, *, seed: int = 0, num_layers: int | None = None) -> Path:
    """Build a random ``*ForMaskedLM`` model and its tokenizer into ``out_dir`` (deterministic; tiny: < 2 s).

    The build happens in a temporary sibling folder that replaces ``out_dir`` only when complete
    (:func:`probeft.core.files.atomic_directory`), so an interrupted or concurrent build never leaves a half-written
    model. If ``out_dir`` already holds the same build it is reused, also when another process finished it while
    this one was building. The global torch RNG state is left untouched.

    Args:
        name: one of :data:`TINY_MODEL_NAMES` or :data:`RANDOM_BASE_MODEL_NAMES`.
        out_dir: target folder (created; a different model already there is replaced).
        seed: seed of the random initialisation (same seed -> identical weights).
        num_layers: number of transformer layers L (hidden states: L + 1); default 4 (tiny) or 12 (base).

    Returns:
        ``out_dir`` as a Path.

    Raises:
        ValueError: unknown ``name`` or ``num_layers`` < 1.
    """
    if name not in TINY_MODEL_NAMES + RANDOM_BASE_MODEL_NAMES:
        raise ValueError(f"unknown random model {name!r}; expected one of {TINY_MODEL_NAMES + RANDOM_BASE_MODEL_NAMES}")
    num_layers = _sizes(name).default_layers if num_layers is None else num_layers
    if int(num_layers) < 1:
        raise ValueError(f"num_layers must be >= 1, got {num_layers}")
    out_dir = Path(out_dir)
    if _is_complete_tiny_build(out_dir, name, seed, num_layers):
        return out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tokenizer = {
        "bert": _tiny_bert_tokenizer,
        "roberta": _tiny_roberta_tokenizer,
        "albert": _tiny_albert_tokenizer,
    }[_architecture(name)](_sizes(name).max_length)
    config = _tiny_config(name, tokenizer, int(num_layers))
    with torch.random.fork_rng(devices=[]):  # do not disturb the caller's RNG stream
        torch.manual_seed(seed)
        model = _tiny_mlm_model(name, config)
    # A finished identical build of another process is kept: a reader may be loading it right now.
    with atomic_directory(out_dir, keep_existing=lambda d: _is_complete_tiny_build(d, name, seed, num_layers)) as staging:
        with quiet_transformers():
            model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / _TINY_MARKER).write_text(json.dumps(_tiny_marker(name, seed, int(num_layers)), indent=1))
    return out_dir
