"""Benchmark: one ordinary probing fit (probeft.probing.probe.fit_probes) vs the online code (probeft.probing.mdl).

Both see the same random features: ``P`` probes of ``N`` train examples and ``D`` features, with
binary labels from a random linear teacher plus label noise (so probes neither fail nor fit
perfectly). ``fit_probes`` gets extra dev and test splits of ``N // 8`` examples each and fits the
whole L2 grid (4 strengths); ``online_codelength`` fits ``S - 1 = 10`` prefixes with one fixed
L2 each. Shapes: the demo (P=10, N=600, D=32) and all-MiniLM-L6-v2 (P=14 = 7 layers x 2
poolings, N=8000, D=384).

Run ``.venv/bin/python benchmarks/bench_mdl.py [--sizes demo minilm] [--minilm-n 8000]
[--device cpu] [--threads 2]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from probeft.probing import mdl, probe

SIZES: dict[str, tuple[int, int, int]] = {"demo": (10, 600, 32), "minilm": (14, 8000, 384)}


def _random_task(num_probes: int, n: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(P, n, D)`` float32 features and ``(n,)`` labels from a noisy linear teacher."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(num_probes, n, dim)).astype(np.float32)
    teacher = rng.normal(size=dim) / np.sqrt(dim)
    margin = features[0] @ teacher + 0.5 * rng.normal(size=n)  # probe 0 is the informative one
    labels = (margin > 0).astype(np.int64)
    # Other probes: the informative features mixed with noise, more noise for later probes.
    for index in range(1, num_probes):
        weight = 1.0 - index / num_probes
        features[index] = weight * features[0] + (1.0 - weight) * features[index]
    return features, labels


def _time_case(name: str, num_probes: int, n: int, dim: int, device: str) -> dict[str, float]:
    """Time ``fit_probes`` and ``online_codelength`` on one size; return the timings."""
    n_eval = max(n // 8, 2)
    features, labels = _random_task(num_probes, n + 2 * n_eval, dim, seed=0)
    train_x, train_y = features[:, :n], labels[:n]
    dev_x, dev_y = features[:, n : n + n_eval], labels[n : n + n_eval]
    test_x, test_y = features[:, n + n_eval :], labels[n + n_eval :]

    start = time.perf_counter()
    probes = probe.fit_probes(train_x, train_y, dev_x, dev_y, test_x, test_y, device=device)
    probe_seconds = time.perf_counter() - start

    start = time.perf_counter()
    code = mdl.online_codelength(train_x, train_y, device=device)
    mdl_seconds = time.perf_counter() - start

    print(f"[{name}] P={num_probes} N={n} D={dim} device={device}")
    print(f"  fit_probes (4 L2 values, + dev/test of {n_eval}): {probe_seconds:8.2f} s   "
          f"test acc {probes.test_acc.min():.3f}..{probes.test_acc.max():.3f}")
    print(f"  online_codelength ({code.block_ends.size - 1} prefix fits):  {mdl_seconds:8.2f} s   "
          f"compression {code.compression.min():.2f}..{code.compression.max():.2f}, "
          f"max L-BFGS iterations {int(code.n_iter.max())}, "
          f"fits not converged: {int((~code.converged).sum())}/{code.converged.size} "
          f"(fit_probes: {int((~probes.converged).sum())}/{probes.converged.size})")
    print(f"  ratio online_codelength / fit_probes: {mdl_seconds / probe_seconds:.2f}")
    return {"fit_probes_s": probe_seconds, "online_codelength_s": mdl_seconds}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--minilm-n", type=int, default=SIZES["minilm"][1], help="N of the MiniLM-sized case")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    for name in args.sizes:
        num_probes, n, dim = SIZES[name]
        if name == "minilm":
            n = args.minilm_n
        _time_case(name, num_probes, n, dim, args.device)


if __name__ == "__main__":
    main()
