"""Shared fixtures: a hermetic cache, tiny models, generated demo data, the optional real data."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    # Tests (and the notebook kernels nbval starts) never write to the user's cache or the hub.
    if "PROBEFT_CACHE" not in os.environ:
        os.environ["PROBEFT_CACHE"] = tempfile.mkdtemp(prefix="probeft-test-cache-")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.pop("PROBEFT_DATA_DIR", None)  # notebooks under test use generated data
    os.environ.pop("PROBEFT_HUB_PINS", None)  # a grid sets it for its own cells only
    # Notebooks run without an output_dir write under $PROBEFT_RUNS_DIR/hand: not the checkout's runs/.
    if "PROBEFT_RUNS_DIR" not in os.environ:
        os.environ["PROBEFT_RUNS_DIR"] = tempfile.mkdtemp(prefix="probeft-test-runs-")


@pytest.fixture(autouse=True)
def _fresh_data_read_record():
    """Each test starts a new record of data files read, as each notebook kernel (one grid cell) does."""
    from probeft.core import data_reads, pins

    data_reads.forget_data_files_read()
    pins.forget_sources_read()


@pytest.fixture(scope="session")
def tiny_models() -> dict[str, Path]:
    """Tiny random BERT / RoBERTa / ALBERT (4 layers) built once per session."""
    from probeft import models
    from probeft.models import tiny

    return {name: Path(models.resolve_model(name)) for name in tiny.TINY_MODEL_NAMES}


@pytest.fixture(scope="session")
def demo_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated data dir in the layout of a real one."""
    from probeft.data.demo import write_demo_data

    return write_demo_data(tmp_path_factory.mktemp("demo-data"), n_probing=400, n_glue=200, n_squad=60, n_wiki_lines=60)


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The real validation data (PROBEFT_SHARED_DATA or ../shared/data); tests using it skip when absent."""
    candidate = Path(os.environ.get("PROBEFT_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
    if not (candidate / "senteval").is_dir():
        pytest.skip(f"real data not found at {candidate} (set PROBEFT_SHARED_DATA)")
    return candidate


@pytest.fixture(scope="session")
def bert_dir(tiny_models: dict[str, Path]) -> str:
    """The tiny BERT's folder (it has a pre-trained masked-LM head)."""
    return str(tiny_models["tiny-bert"])


@pytest.fixture(scope="session")
def tokenizer(bert_dir: str):
    """The tiny BERT's tokenizer."""
    from probeft import models

    return models.load_tokenizer(bert_dir)
