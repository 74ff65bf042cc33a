"""WikiText raw text (``wiki.*.raw``), from a data folder or the ``datasets`` hub."""

from __future__ import annotations

from pathlib import Path

from probeft.core.data_reads import read_data_text
from probeft.core.hub import require_hub
from probeft.data.locations import data_location, required_data_dir

__all__ = ["read_wikitext", "read_wikitext_test", "resolve_wikitext_file"]


def read_wikitext_test(data_dir: str | Path | None = None) -> tuple[str, str]:
    """WikiText-2 raw test text and where it came from: ``wikitext-2/wiki.test.raw`` or the hub.

    Args:
        data_dir: data folder, ``"hub"`` or None (see :func:`probeft.data.locations.data_location`).
    """
    root = data_location(data_dir)
    if root is not None:
        path = resolve_wikitext_file(root)
        return read_wikitext(path), str(path)
    import datasets

    require_hub("WikiText-2 (Salesforce/wikitext)", instead="pass a data dir (--data-dir or PROBEFT_DATA_DIR) in the layout of `probeft demo-data`")
    rows = datasets.load_dataset("Salesforce/wikitext", "wikitext-2-raw-v1", split="test")["text"]
    return "".join(rows), "hub:Salesforce/wikitext/wikitext-2-raw-v1/test"


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
