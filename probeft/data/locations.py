"""Where data comes from: the one data-location policy of every reader, notebook and the grid.

A data location is one of:

* a folder in the layout of :func:`probeft.data.demo.write_demo_data` (``senteval/``, ``glue/``,
  ``squad/``, ``wikitext-2/``);
* ``"hub"``: GLUE, SQuAD and WikiText from the Hugging Face hub, SentEval files downloaded into the
  cache (what the grid passes when a config names no data dir: it never falls back to demo data);
* unset (``None`` or ``""``): ``$PROBEFT_DATA_DIR`` if set, else the ``fallback`` (generated demo
  data for a notebook run by hand, the hub for readers called directly).

Precedence for the grid: ``--data-dir`` beats ``$PROBEFT_DATA_DIR`` beats the config's ``data_dir``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from probeft.core.files import cache_root

__all__ = ["DATA_DIR_ENV", "HUB", "data_location", "demo_data_dir", "grid_data_dir", "required_data_dir"]

DATA_DIR_ENV = "PROBEFT_DATA_DIR"
HUB = "hub"


def _unset(value: str | Path | None) -> bool:
    return value is None or str(value).strip() == ""


def _existing_dir(value: str | Path, source: str) -> Path:
    path = Path(value).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"data directory {path} (from the {source}) does not exist")
    return path


def demo_data_dir(seed: int = 0) -> Path:
    """Generated demo data in ``<cache>/demo-data-s<seed>``, written once (its last file marks it complete)."""
    from probeft.data.demo import write_demo_data  # the generator is large; import it only when needed

    target = cache_root(f"demo-data-s{seed}")
    if not (target / "wikitext-2" / "wiki.test.raw").is_file():  # written last by write_demo_data
        write_demo_data(target, seed=seed)
    return target


def data_location(
    data_dir: str | Path | None, *, fallback: Literal["demo", "hub"] = "hub", demo_seed: int = 0
) -> Path | None:
    """Resolve a data location; ``None`` means "read from the hub".

    Args:
        data_dir: a folder, ``"hub"``, or unset (then ``$PROBEFT_DATA_DIR``, then ``fallback``).
        fallback: what an unset location with no environment variable means: ``"demo"`` (generated
            demo data; notebooks run by hand) or ``"hub"``.
        demo_seed: seed of the generated demo data.

    Returns:
        The data folder, or None for the hub.

    Raises:
        FileNotFoundError: the folder (named with where it came from) does not exist.
        ValueError: an unknown ``fallback``.
    """
    if fallback not in ("demo", HUB):
        raise ValueError(f"fallback={fallback!r}; expected 'demo' or 'hub'")
    if not _unset(data_dir):
        if str(data_dir).strip() == HUB:
            return None
        return _existing_dir(data_dir, "data_dir argument")
    from_env = os.environ.get(DATA_DIR_ENV, "")
    if from_env.strip():
        return _existing_dir(from_env, f"${DATA_DIR_ENV}")
    return demo_data_dir(demo_seed) if fallback == "demo" else None


def required_data_dir(data_dir: str | Path | None, what: str) -> Path:
    """A data folder for readers of files that have no hub copy: ``data_dir``, else ``$PROBEFT_DATA_DIR``.

    Args:
        data_dir: a folder, or unset for ``$PROBEFT_DATA_DIR``.
        what: what is being looked for, for the error message (e.g. ``"SQuAD files"``).

    Raises:
        ValueError: no folder given (unset with the variable unset, or ``"hub"``).
        FileNotFoundError: the folder (named with where it came from) does not exist.
    """
    root = data_location(data_dir, fallback=HUB)
    if root is None:
        raise ValueError(
            f"{what} need a data folder, got data_dir={data_dir!r}: pass data_dir=... or set the "
            f"{DATA_DIR_ENV} environment variable"
        )
    return root


def grid_data_dir(cli_value: str | None, config_value: str | None) -> Path | None:
    """The grid's data folder: ``--data-dir``, else ``$PROBEFT_DATA_DIR``, else the config's; None = hub.

    Relative paths are taken from the current working directory and made absolute; existence is
    checked when the grid runs, not here (a dry run lists cells for a folder made later).
    """
    chosen = next((v for v in (cli_value, os.environ.get(DATA_DIR_ENV), config_value) if not _unset(v)), None)
    if chosen is None or str(chosen).strip() == HUB:
        return None
    return Path(chosen).expanduser().resolve()
