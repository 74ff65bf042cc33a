"""WikiText raw text (``wiki.*.raw``), from a data folder or the ``datasets`` hub.

The hub's ``Salesforce/wikitext`` rows are the raw file's lines, except that every blank line (``" \\n"``
in ``wiki.test.raw``) is served as ``""``; joining the rows would drop those bytes and shift every
perplexity block. :func:`raw_from_hub_rows` writes them back, and the rebuilt WikiText-2 test text must
have the sha256 of ``wiki.test.raw`` (:data:`WIKITEXT2_TEST_SHA256`), so hub and ``--data-dir`` runs read
the same bytes.

The validation split (:func:`read_wikitext_valid`) is the text a masked-LM head is *fitted* on for an encoder
published without one (:mod:`probeft.diagnostics.mlm_head`), so that the test split stays unseen. A data folder
may hold it raw (``wiki.valid.raw``) or only in the tokenised release (``wiki.valid.tokens``: the same
articles with rare words replaced by ``<unk>``); the raw file is preferred.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from pathlib import Path

from probeft.core.data_reads import read_data_text
from probeft.data.hub_datasets import HUB_DATASETS, load_hub_dataset
from probeft.data.locations import data_location, required_data_dir

__all__ = ["VALID_FILES", "WIKITEXT2_TEST_SHA256", "raw_from_hub_rows", "read_wikitext", "read_wikitext_test",
           "read_wikitext_valid", "resolve_wikitext_file", "resolve_wikitext_valid_file"]

# wiki.test.raw of wikitext-2-raw-v1: 4,358 lines, 1,290,590 bytes (the hub's 4,358 test rows with blank
# rows written as " \n", which is how the official file and wiki.test.tokens have them).
WIKITEXT2_TEST_SHA256 = "173c87a53759e0201f33e0ccf978e510c2042d7f2cb78229d9a50d79b9e7dd08"
# The validation split in a data folder, in order of preference: raw, else the tokenised release.
VALID_FILES = ("wiki.valid.raw", "wiki.valid.tokens")


def raw_from_hub_rows(rows: Iterable[str]) -> str:
    """The raw WikiText text from the hub's rows: each row is one line, a blank one served as ``""``."""
    return "".join(row if row else " \n" for row in rows)


def read_wikitext_test(data_dir: str | Path | None = None) -> tuple[str, str]:
    """WikiText-2 raw test text and where it came from: ``wikitext-2/wiki.test.raw`` or the hub.

    Args:
        data_dir: data folder, ``"hub"`` or None (see :func:`probeft.data.locations.data_location`).
    """
    text, path, digest = _local_or_hub(data_dir, "test", resolve_wikitext_file)
    if digest is None:
        return text, path
    if digest != WIKITEXT2_TEST_SHA256:
        raise ValueError(
            f"the hub's WikiText-2 test rows (Salesforce/wikitext, wikitext-2-raw-v1) do not rebuild wiki.test.raw: "
            f"sha256 {digest}, expected {WIKITEXT2_TEST_SHA256}; the data set changed, so its perplexities would not "
            "compare with the paper's. Pass a data dir holding wikitext-2/wiki.test.raw instead"
        )
    return text, f"hub:Salesforce/wikitext/wikitext-2-raw-v1/test sha256:{digest}"


def read_wikitext_valid(data_dir: str | Path | None = None) -> tuple[str, str]:
    """WikiText-2 validation text and where it came from: ``wikitext-2/wiki.valid.raw`` or ``.tokens``, or the hub.

    Args:
        data_dir: data folder, ``"hub"`` or None (see :func:`probeft.data.locations.data_location`).

    Returns:
        ``(text, source)``; ``source`` is the file's path, or the hub split with the text's sha256.

    Raises:
        FileNotFoundError: the data folder has neither file (naming both).
        ValueError: the file holds no text.
    """
    text, path, digest = _local_or_hub(data_dir, "validation", resolve_wikitext_valid_file)
    if digest is None:
        return text, path
    return text, f"hub:Salesforce/wikitext/wikitext-2-raw-v1/validation sha256:{digest}"


def _local_or_hub(data_dir: str | Path | None, split: str, resolve: Callable[[Path], Path]
                  ) -> tuple[str, str, str | None]:
    """``(text, path, None)`` from the data folder's file, else ``(text, "", sha256)`` from the hub's split."""
    root = data_location(data_dir)
    if root is not None:
        path = resolve(root)
        return read_wikitext(path), str(path), None
    repo_id, config = HUB_DATASETS["wikitext"]
    rows = load_hub_dataset(repo_id, config, what=f"WikiText-2 ({repo_id})", split=split)["text"]
    text = raw_from_hub_rows(rows)
    return text, "", hashlib.sha256(text.encode("utf-8")).hexdigest()


def resolve_wikitext_valid_file(data_dir: str | Path | None = None) -> Path:
    """``<data_dir>/wikitext-2/wiki.valid.raw``, else ``wiki.valid.tokens`` (data_dir None: ``$PROBEFT_DATA_DIR``).

    Raises:
        ValueError: no data folder.
        FileNotFoundError: naming both paths if neither exists.
    """
    folder = required_data_dir(data_dir, "WikiText files") / "wikitext-2"
    for name in VALID_FILES:
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"WikiText-2 validation text not found: neither {folder / VALID_FILES[0]} nor "
                            f"{folder / VALID_FILES[1]} exists")


def resolve_wikitext_file(data_dir: str | Path | None = None, split: str = "test") -> Path:
    """``<data_dir>/wikitext-2/wiki.<split>.raw`` (data_dir None: ``$PROBEFT_DATA_DIR``).

    Raises:
        ValueError: no data folder.
        FileNotFoundError: naming the path if absent.
    """
    path = required_data_dir(data_dir, "WikiText files") / "wikitext-2" / f"wiki.{split}.raw"
    if not path.is_file():
        raise FileNotFoundError(f"WikiText file not found: {path}")
    return path


def read_wikitext(path: str | Path) -> str:
    """The raw text of a WikiText file (``wiki.*.raw``), unchanged.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: if it holds no text.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"WikiText file {path} does not exist")
    text = read_data_text(path, encoding="utf-8")
    if not text.strip():
        raise ValueError(f"{path}: no text")
    return text
