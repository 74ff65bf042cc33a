"""Prepare what a GPU machine without internet needs to run the grid: wheels and a tokenizer, in ``.gpu-bundle/``.

The lent GPU machines (see ``benchmarks/README.md``, "On a lent GPU machine") have Python 3.12 with torch,
transformers, scikit-learn, pandas and most of the scientific stack, but not papermill, ipykernel, Dask or
pydantic, and they cannot reach PyPI. This script, run where pip works, downloads those packages and
everything they need for CPython 3.12 on manylinux x86-64, drops the ones the machine already has (so its
own builds, torch above all, are never shadowed), and copies the all-MiniLM-L6-v2 WordPiece tokenizer files
(``gpu_check.py`` times a BERT-base-sized encoder with a real vocabulary). ``benchmarks/gpu_session.sh`` then
installs the wheels with ``pip --no-index --target`` and runs the checks, in one call.

    .venv/bin/python benchmarks/gpu_bundle.py [--out .gpu-bundle] [--python-version 3.12]

``--python-version 3.11`` builds the same bundle for this machine's Python, to rehearse the session on a
CPU (``gpu_session.sh --rehearse``).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

# What probeft needs on such a machine beyond its image (jupyter-book and datasets are not needed to run cells).
NEEDED = ["papermill>=2.6", "ipykernel>=6.29", "distributed>=2024.1", "pydantic>=2.5"]

# The image's packages, as the device notes list them (../.library/device/KINDS.md, "nvidia-h200"), by
# canonical name. A wheel of one of these is not carried: the machine's own version is used.
IMAGE_PACKAGES = frozenset("""
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build certifi
charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core
cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock
flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx
huggingface-hub humanize hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin
jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax
llvmlite lxml markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack
multidict multipledispatch mypy-extensions nanobind narwhals networkx ninja numba numba-cuda numpy numpyro
nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft
nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13 nvidia-ml-py nvidia-nccl-cu13
nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript opencv-python-headless
optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec patsy peft pillow pip
pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyparsing
pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist
python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu safetensors scikit-build-core
scikit-image scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools shellingham simplejson
six sortedcontainers statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl
tifffile tiktoken timm tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics torchvision
tqdm transformers treescope triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig
werkzeug wheel wrapt xarray xxhash yarl zipp
""".split())

PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64", "manylinux_2_24_x86_64", "manylinux_2_31_x86_64", "manylinux_2_34_x86_64"]
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "config.json")


def canonical(name: str) -> str:
    """PEP 503 name of a project: ``Jupyter_Client`` -> ``jupyter-client``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_project(path: Path) -> str:
    """The canonical project name of a wheel file (the part of its name before the version)."""
    return canonical(path.name.split("-")[0])


def download_wheels(target: Path, python_version: str) -> list[Path]:
    """Download :data:`NEEDED` and their dependencies as wheels for ``python_version``; keep those not in the image."""
    target.mkdir(parents=True, exist_ok=True)
    abi = "cp" + python_version.replace(".", "")
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(target), "--only-binary=:all:",
               "--python-version", python_version, "--implementation", "cp", "--abi", abi, "--abi", "abi3",
               "--abi", "none", *[arg for p in PLATFORMS for arg in ("--platform", p)], *NEEDED]
    subprocess.run(command, check=True)
    kept = []
    for wheel in sorted(target.glob("*.whl")):
        if wheel_project(wheel) in IMAGE_PACKAGES:
            wheel.unlink()
        else:
            kept.append(wheel)
    return kept


def copy_tokenizer(target: Path) -> Path:
    """all-MiniLM-L6-v2's tokenizer files (the ``minilm`` extra's package folder) into ``target``."""
    from probeft import models

    source = Path(models.resolve_model(models.MINILM_ALIAS))
    if not source.is_dir():
        raise SystemExit(f"the minilm extra is not installed (pip install -e '.[minilm]'); resolved {source}")
    target.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, target / name)
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO_ROOT / ".gpu-bundle"), help="bundle folder (default .gpu-bundle)")
    parser.add_argument("--python-version", default="3.12", help="the GPU machine's Python (default 3.12)")
    args = parser.parse_args()
    out = Path(args.out)
    shutil.rmtree(out / "wheels", ignore_errors=True)
    wheels = download_wheels(out / "wheels", args.python_version)
    copy_tokenizer(out / "tokenizer")
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"{len(wheels)} wheels for Python {args.python_version} (the image's packages left out) and the tokenizer "
          f"in {out}: {size / 2**20:.1f} MiB")
    print("  " + " ".join(sorted(wheel_project(w) for w in wheels)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
