"""SentEval probing files (``tr|va|te <TAB> label <TAB> sentence``): reading, locating, downloading."""

from __future__ import annotations

import hashlib
import json
import os
import re
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from probeft.core import pins
from probeft.core.data_reads import decode_data, read_data_bytes
from probeft.core.files import atomic_write_bytes, cache_root
from probeft.core.hub import env_flag
from probeft.core.names import (
    PROBING_LABELS,
    PROBING_TASKS,
    SENTEVAL_CORPUS_LABEL_TASKS,
    SENTEVAL_LABELS,
    SENTEVAL_TASKS,
)
from probeft.data.caps import cap_text
from probeft.data.locations import data_location

__all__ = ["PROBING_TASKS", "PROBING_LABELS", "SENTEVAL_TASKS", "SENTEVAL_LABELS", "ProbingSplit", "ProbingData",
           "SentEvalBytesError", "downloads_disabled",
           "git_blob_sha1",
           "read_senteval", "resolve_probing_file", "senteval_blob_sha1s"]

_SPLIT_CODES = {"tr": "train", "va": "dev", "te": "test"}
# Pinned to a commit, not the moving main branch: the bytes behind the URL cannot change under a run.
SENTEVAL_COMMIT = "2a7c3da8fc6f16d8f7aa5acd13d98b0a052a27a9"
_SENTEVAL_URL = f"https://raw.githubusercontent.com/facebookresearch/SentEval/{SENTEVAL_COMMIT}/data/probing/{{task}}.txt"
# The commit's tree as GitHub's REST API lists it (path, type, git blob sha1 of every file): what a download
# is checked against. The raw files are served by another host, so this is an independent check of the bytes.
SENTEVAL_TREE_URL = f"https://api.github.com/repos/facebookresearch/SentEval/git/trees/{SENTEVAL_COMMIT}?recursive=1"
_BLOB_SHA1S: dict[str, str] = {}  # task -> git blob sha1 at SENTEVAL_COMMIT, fetched once per process
_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # what SentEval's own reader (a text-mode file) splits on


def _lines(text: str) -> list[str]:
    """``text`` split into lines as SentEval's loader reads them (``str.splitlines`` also splits on form feeds,
    ``\\x1c``-``\\x1e``, ``\\x85``, U+2028 and U+2029, which may occur inside a sentence)."""
    lines = _LINE_BREAK.split(text)
    return lines[:-1] if lines and lines[-1] == "" else lines


def _label_order(task: str, labels: set[str]) -> list[str]:
    """Class ids of a file's labels: SentEval's order for a task whose file has exactly its label set, else sorted
    (numerically when every label is an integer, so tree_depth's ``"10"`` follows ``"9"``)."""
    known = SENTEVAL_LABELS.get(task)
    if known is not None and set(known) == labels:
        return list(known)
    if all(label.lstrip("-").isdigit() for label in labels):
        return sorted(labels, key=int)
    return sorted(labels)


def downloads_disabled() -> bool:
    """No download: ``PROBEFT_OFFLINE`` or either Hugging Face offline switch, read as those libraries do."""
    return any(env_flag(name) for name in ("PROBEFT_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


class SentEvalBytesError(ValueError):
    """A SentEval probing file whose bytes are not those of the pinned commit."""


def _fetch(url: str, *, headers: dict[str, str] | None = None, timeout: float = 30.0) -> bytes:
    """The body of ``url`` (SentEval probing files are a few MB)."""
    request = urllib.request.Request(url, headers={"User-Agent": "probeft", **(headers or {})})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - fixed https URLs
        return response.read()


def git_blob_sha1(payload: bytes) -> str:
    """The git object id of a file with these bytes: sha1 of ``b"blob <size>\\0" + payload``."""
    return hashlib.sha1(b"blob %d\0" % len(payload) + payload).hexdigest()  # noqa: S324 - git's id, not security


def senteval_blob_sha1s() -> dict[str, str]:
    """``{task: git blob sha1}`` of the probing files at :data:`SENTEVAL_COMMIT`, from GitHub's tree listing.

    Fetched once per process (``GITHUB_TOKEN`` is sent when set: unauthenticated calls are rate-limited).

    Raises:
        OSError: GitHub's API could not be reached.
        ValueError: the listing is not a git tree (naming the URL).
    """
    if not _BLOB_SHA1S:
        headers = {"Accept": "application/vnd.github+json"}
        if os.environ.get("GITHUB_TOKEN"):
            headers["Authorization"] = f"Bearer {os.environ['GITHUB_TOKEN']}"
        try:
            listing = json.loads(_fetch(SENTEVAL_TREE_URL, headers=headers))
            entries = listing["tree"]
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{SENTEVAL_TREE_URL}: not a git tree listing ({error})") from None
        for entry in entries:
            path = str(entry.get("path", ""))
            if entry.get("type") == "blob" and path.startswith("data/probing/") and path.endswith(".txt"):
                _BLOB_SHA1S[path.removeprefix("data/probing/").removesuffix(".txt")] = str(entry["sha"])
    return dict(_BLOB_SHA1S)


def _expected_blob_sha1(task: str) -> str:
    """The blob sha1 ``task``'s file must have: the run's pin, else GitHub's listing of the pinned commit."""
    pinned = pins.pinned_revision("senteval", task)
    if pinned is not None:
        return pinned
    try:
        listed = senteval_blob_sha1s()
    except OSError as error:
        raise SentEvalBytesError(
            f"cannot check the SentEval file of {task!r}: GitHub's tree listing {SENTEVAL_TREE_URL} is unreachable "
            f"({error}); retry, set GITHUB_TOKEN if rate-limited, or pass a data dir holding senteval/{task}.txt"
        ) from error
    if task not in listed:
        raise SentEvalBytesError(f"SentEval commit {SENTEVAL_COMMIT} has no data/probing/{task}.txt")
    return listed[task]


def _download(task: str, url: str, target: Path) -> Path:
    """Download ``task``'s file from ``url``, check its git blob sha1, then write ``target`` atomically (a
    reader never sees half a file, and bytes that fail the check are never kept)."""
    payload = _fetch(url)
    expected, found = _expected_blob_sha1(task), git_blob_sha1(payload)
    if found != expected:
        raise SentEvalBytesError(
            f"{url}: downloaded bytes have git blob sha1 {found}, but data/probing/{task}.txt at SentEval commit "
            f"{SENTEVAL_COMMIT} has {expected}; not saved"
        )
    pins.note_read("senteval", task, found)
    return atomic_write_bytes(target, payload)


def _check_cached_download(task: str, path: Path) -> Path:
    """A file in the download cache, checked against the run's pinned blob sha1 when there is one."""
    pinned = pins.pinned_revision("senteval", task)
    found = git_blob_sha1(path.read_bytes())
    if pinned is not None and found != pinned:
        raise SentEvalBytesError(
            f"{path}: git blob sha1 {found}, but the run is pinned to {pinned} ({pins.pins_path()}); delete the file "
            "to download it again"
        )
    pins.note_read("senteval", task, found)
    return path


@dataclass(frozen=True)
class ProbingSplit:
    """One partition of a probing task: sentences and int64 class ids of shape (N,)."""

    sentences: list[str]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.sentences)


@dataclass(frozen=True)
class ProbingData:
    """A SentEval probing task: train (tr), dev (va) and test (te) splits.

    ``label_names[i]`` is the file's label for class id ``i``. ``sha256`` hashes the file bytes and the caps, so it
    can key feature caches.
    """

    task: str
    path: Path
    label_names: list[str]
    train: ProbingSplit
    dev: ProbingSplit
    test: ProbingSplit
    sha256: str

    def split(self, name: str) -> ProbingSplit:
        """The split called ``name`` (``"train"``, ``"dev"`` or ``"test"``)."""
        if name not in ("train", "dev", "test"):
            raise ValueError(f"unknown split {name!r}; expected train, dev or test")
        return getattr(self, name)


def read_senteval(
    path: str | Path, *, task: str | None = None, max_train: int | None = None, max_eval: int | None = None
) -> ProbingData:
    """Read a SentEval probing file (``partition<TAB>label<TAB>sentence`` per line).

    Extra middle columns are tolerated (the sentence is the last column). Blank lines are skipped. Caps keep the
    first ``max_train`` lines of ``tr`` and the first ``max_eval`` of ``va`` and of ``te`` (SentEval files are
    shuffled within each partition, so this is a deterministic random sample).

    Args:
        path: the file.
        task: task name (default: the file name without ``.txt``). For the SentEval tasks with a fixed label set
            (:data:`~probeft.core.names.SENTEVAL_LABELS`, except the corpus-derived sets of word_content, tree_depth
            and top_constituents) other labels are an error, and the label order is SentEval's.
        max_train: cap on training sentences.
        max_eval: cap on dev and on test sentences.

    Returns:
        The parsed task.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: naming file and line for a wrong column count, unknown partition or empty sentence; for fewer
            than two labels, a label missing from ``tr``, or a missing partition.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SentEval probing file {path} does not exist")
    caps = cap_text(max_train, max_eval)
    task = task or path.stem
    raw = read_data_bytes(path)
    columns: dict[str, tuple[list[str], list[str]]] = {split: ([], []) for split in _SPLIT_CODES.values()}
    # Corpus-derived label sets (a built tree_depth file has dependency depths, say) are taken as the file has them.
    known = None if task in SENTEVAL_CORPUS_LABEL_TASKS else SENTEVAL_LABELS.get(task)
    for number, line in enumerate(_lines(decode_data(raw, path, "utf-8-sig")), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 3:
            raise ValueError(
                f"{path}:{number}: expected 3 tab-separated columns (partition, label, sentence), got {len(fields)}"
            )
        code, label, sentence = fields[0].strip(), fields[1].strip(), fields[-1].strip()
        if code not in _SPLIT_CODES:
            raise ValueError(f"{path}:{number}: unknown partition {code!r}; expected one of tr, va, te")
        if not label:
            raise ValueError(f"{path}:{number}: empty label")
        if known is not None and label not in known:
            raise ValueError(f"{path}:{number}: label {label!r} is not one of {task}'s labels {list(known)}")
        if not sentence:
            raise ValueError(f"{path}:{number}: empty sentence")
        sentences, labels = columns[_SPLIT_CODES[code]]
        sentences.append(sentence)
        labels.append(label)

    for split, (sentences, _) in columns.items():
        if not sentences:
            code = {v: k for k, v in _SPLIT_CODES.items()}[split]
            raise ValueError(f"{path}: no lines for partition {code!r} ({split}); a probing file needs tr, va and te")
    all_labels = {label for _, labels in columns.values() for label in labels}
    if len(all_labels) < 2:
        raise ValueError(f"{path}: found fewer than two labels ({sorted(all_labels)}); a probing task needs >= 2")
    unseen = all_labels - set(columns["train"][1])
    if unseen:
        raise ValueError(f"{path}: labels {sorted(unseen)} occur in va/te but never in tr")
    label_names = _label_order(task, all_labels)
    label_ids = {name: index for index, name in enumerate(label_names)}

    def make_split(split: str, cap: int | None) -> ProbingSplit:
        sentences, labels = columns[split]
        sentences, labels = sentences[:cap], labels[:cap]
        return ProbingSplit(sentences, np.array([label_ids[x] for x in labels], dtype=np.int64))

    digest = hashlib.sha256(raw)
    digest.update(caps.encode())
    return ProbingData(
        task=task,
        path=path,
        label_names=label_names,
        train=make_split("train", max_train),
        dev=make_split("dev", max_eval),
        test=make_split("test", max_eval),
        sha256=digest.hexdigest(),
    )


def resolve_probing_file(task: str | Path, data_dir: str | Path | None = None, *, download: bool = True) -> Path:
    """Find the file of a probing task.

    Looks at ``task`` itself (if it is a file), ``<data_dir>/senteval/<task>.txt``, ``<data_dir>/<task>.txt`` and
    the download cache. If none exists, ``task`` is one of the ten :data:`SENTEVAL_TASKS`, ``download`` is true and we are
    not offline (``PROBEFT_OFFLINE``/``HF_HUB_OFFLINE``), the file is downloaded from the SentEval repository at
    :data:`SENTEVAL_COMMIT` into the cache, once its git blob sha1 matches the run's pin or GitHub's listing of
    that commit. A file already in the download cache is checked against the run's pin.

    Args:
        task: task name or path to a probing file.
        data_dir: data folder, ``"hub"`` (download cache only) or None (``$PROBEFT_DATA_DIR``, else the
            download cache); see :func:`probeft.data.locations.data_location`.
        download: allow downloading.

    Raises:
        FileNotFoundError: listing the places looked at (and the download error, if any), or naming a
            data folder that does not exist.
        SentEvalBytesError: downloaded or cached bytes are not those of the pinned commit.
    """
    as_path = Path(task).expanduser()
    if as_path.is_file():
        return as_path
    name = str(task)
    candidates: list[Path] = []
    root = data_location(data_dir)  # None: the hub, i.e. only the download cache
    if root is not None:
        candidates += [root / "senteval" / f"{name}.txt", root / f"{name}.txt"]
    cached = cache_root("data", "senteval", f"{name}.txt")
    candidates.append(cached)
    for candidate in candidates:
        if candidate.is_file():
            return _check_cached_download(name, candidate) if candidate == cached else candidate
    looked = ", ".join(str(c) for c in candidates)
    if name not in SENTEVAL_TASKS:
        raise FileNotFoundError(f"probing task {name!r} not found (known tasks: {SENTEVAL_TASKS}); looked at {looked}")
    if not download or downloads_disabled():
        raise FileNotFoundError(f"probing file for {name!r} not found (downloads disabled); looked at {looked}")
    url = _SENTEVAL_URL.format(task=name)
    try:
        return _download(name, url, cached)
    except OSError as error:
        raise FileNotFoundError(
            f"probing file for {name!r} not found at {looked}, and downloading {url} failed: {error}"
        ) from error
