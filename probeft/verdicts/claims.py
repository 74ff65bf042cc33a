"""The paper's findings F1-F9 as executable checks on a run, each verdict backed by an interval.

:func:`evaluate_claims` reads a run's results table (and, for the probing findings, its cells'
``probe_predictions.npz``) and returns one tidy row per *check* (:data:`CHECK_COLUMNS`): a finding
is checked once per model, task, head or pooling that the run holds, so a run with two models gets
two F1 checks per probing task. :func:`summarise` folds them into one row per finding.

Intervals (95%):
    * Probing findings (F1-F5, F9): percentile bootstrap over test sentences. The test sentences of
      one probing task are resampled once (:func:`probeft.verdicts.uncertainty.resampled_accuracies`) for
      every probe of the run on them, so a statistic combining several probes of a task (a Delta, a
      layer-group mean, a difference of best layers) is a paired bootstrap; different tasks are
      resampled independently. Best layers are chosen on dev accuracy (ties: the lower layer) and
      held fixed in the resamples. Seeds are averaged inside each resample.
    * Perplexity (F6, F7): a t interval over fine-tuning seeds (Welch's for the SST-2 vs CoLA
      difference); with one seed there is no interval.
    * Attention (F8): no interval (the attention rows are means over inputs, not per-sentence values).
    Without an interval (no ``probe_predictions.npz``, one seed, attention) the verdict follows the
    point estimate and ``reason`` says so.

Verdicts (:func:`judge`): a strict claim (``>``, ``<``: "raises", "lowers", "exceeds") *holds* when
its interval lies entirely on the claimed side of 0. A non-strict claim (``>=``, ``<=``: "at least
as good", "does not exceed") *holds* unless its interval lies entirely on the wrong side, i.e. unless
the run shows a significant violation. A finding the run cannot evaluate is *not computable*, with
the reason (what the run lacks).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from probeft import results
from probeft.core import files
from probeft.core.names import NO_FINETUNE
from probeft.results import analysis, predictions
from probeft.verdicts import delta_intervals, uncertainty

__all__ = ["CHECK_COLUMNS", "CLAIMS", "CLAIMS_FILE", "SUMMARY_COLUMNS", "TIE", "Accuracies", "RunClaims",
           "claims_of_run", "evaluate_claims", "judge", "load_claims", "summarise", "write_claims"]

CLAIMS_FILE = "claims.csv"
HOLDS, FAILS, NOT_COMPUTABLE = "holds", "does not hold", "not computable"
CLAIMS: dict[str, str] = {
    "F1": "Mean pooling is at least as good as CLS pooling at the best layer, per model and probing task.",
    "F2": "Bigram shift is probed more accurately than coordination inversion and than odd-man-out.",
    "F3": "Fine-tuning changes mostly the upper layer group: |Delta| upper > |Delta| lower.",
    "F4": "CoLA fine-tuning raises bigram-shift accuracy under CLS pooling, much less under mean pooling.",
    "F5": "SST-2 fine-tuning lowers bigram-shift and odd-man-out accuracy.",
    "F6": "MLM perplexity rises with fine-tuning, more for SST-2 than for CoLA.",
    "F7": "Replacing the last fine-tuned layers by pre-trained ones recovers the perplexity.",
    "F8": "CLS-head fine-tuning raises the first token's attention entropy in the last layers more than "
          "mean-head fine-tuning.",
    "F9": "The gains under CLS pooling do not exceed the pre-trained mean-pooling baseline (Fig. 4).",
}
CHECK_COLUMNS = ["claim", "model", "scope", "quantity", "direction", "estimate", "ci_low", "ci_high", "interval",
                 "unit", "verdict", "reason"]
SUMMARY_COLUMNS = ["claim", "finding", "checks", "holding", "verdict", "reason"]
BOOTSTRAP = "95% bootstrap over test sentences"
ACCURACY = "accuracy"
_CONFIDENCE = 0.95
_STRICT = {">": True, "<": True, ">=": False, "<=": False}
# Statistics within this of 0 are 0: a difference of equal accuracies computed in two orders can come out as
# 2.8e-17, which would otherwise decide a strict claim. Accuracy statistics are multiples of 1/N_test >= 1e-6.
TIE = 1e-9


def judge(estimate: float, low: float, high: float, direction: str) -> tuple[str, str]:
    """Verdict and reason of one check (module docstring); ``low``/``high`` NaN = no interval.

    Args:
        estimate: the statistic, e.g. a Delta.
        low, high: its interval.
        direction: the claim about the statistic: ``">"``, ``"<"`` (strict), ``">="`` or ``"<="``.
    """
    if direction not in _STRICT:
        raise ValueError(f"direction must be one of {list(_STRICT)}, got {direction!r}")
    sign = 1.0 if direction.startswith(">") else -1.0
    strict = _STRICT[direction]
    if not np.isfinite(estimate):
        return NOT_COMPUTABLE, "the estimate is not finite"
    estimate, low, high = (0.0 if abs(value) <= TIE else value for value in (estimate, low, high))
    if not (np.isfinite(low) and np.isfinite(high)):
        holds = sign * estimate > 0 if strict else sign * estimate >= 0
        return (HOLDS if holds else FAILS), "point estimate only, no interval"
    low, high = sorted((sign * low, sign * high))
    if strict:
        if low > 0:
            return HOLDS, "interval excludes 0 on the claimed side"
        return FAILS, "interval on the opposite side of 0" if high < 0 else "interval includes 0"
    if high < 0:
        return FAILS, "interval entirely on the wrong side of 0"
    return HOLDS, "no significant violation" if low < 0 else "interval on the claimed side"


class Accuracies:
    """Test accuracies of every probe of a run: the point value and, where possible, bootstrap replicates.

    ``get`` returns a ``(1 + R,)`` array (index 0: the results table's test accuracy; then ``R``
    resampled accuracies) or ``(1,)`` when the cell has no ``probe_predictions.npz``; seeds averaged.
    """

    def __init__(self, table: pd.DataFrame, cells: Sequence[predictions.CellPredictions], *,
                 resamples: int = 1000, seed: int = 0) -> None:
        table = analysis.probe_rows(table)  # the linear probe's rows: the paper's claims
        rows = table[(table["stage"] == "probing") & (table["metric"] == ACCURACY)]
        self._dev = rows[rows["split"] == "dev"].groupby(
            ["model", "finetune_task", "finetune_head", "probe_task", "pooling", "layer"])["value"].mean()
        test = rows[rows["split"] == "test"]
        self._values: dict[tuple[Any, ...], list[np.ndarray]] = {}
        replicates = self._replicates(cells, resamples, seed)
        for row in test.itertuples(index=False):
            key = (row.model, row.finetune_task, row.finetune_head, int(row.seed), row.probe_task, row.pooling,
                   int(row.layer))
            boot = replicates.get(key)
            value = np.array([float(row.value)]) if boot is None else np.concatenate([[float(row.value)], boot])
            self._values.setdefault(key[:3] + key[4:], []).append(value)

    @staticmethod
    def _replicates(cells: Sequence[predictions.CellPredictions], resamples: int, seed: int
                    ) -> dict[tuple[Any, ...], np.ndarray]:
        """(model, ft task, head, seed, task, pooling, layer) -> (R,) accuracies, one draw per test set."""
        by_test_set: dict[str, list[tuple[tuple[Any, ...], np.ndarray]]] = {}
        for cell in cells:
            c = cell.cell
            for task, entry in cell.tasks.items():
                for (pooling, layer), correct in zip(entry.probes, entry.correct, strict=True):
                    key = (c["model"], c["finetune_task"], c["finetune_head"], int(c["seed"]), task, pooling, int(layer))
                    by_test_set.setdefault(entry.test_sha256, []).append((key, correct))
        out: dict[tuple[Any, ...], np.ndarray] = {}
        for index, sha in enumerate(sorted(by_test_set)):
            keys, correct = zip(*by_test_set[sha], strict=True)
            accuracies = uncertainty.resampled_accuracies(np.stack(correct), resamples=resamples, seed=seed + index)
            out.update(zip(keys, accuracies, strict=True))
        return out

    def get(self, model: str, finetune_task: str, finetune_head: str, probe_task: str, pooling: str,
            layer: int) -> np.ndarray | None:
        """Seed-averaged point + replicates of one probe, or None when the run lacks it."""
        values = self._values.get((model, finetune_task, finetune_head, probe_task, pooling, int(layer)))
        return None if not values else _mean(values)

    def layers(self, model: str, finetune_task: str, finetune_head: str, probe_task: str, pooling: str) -> list[int]:
        """The probed layers of one (encoder, task, pooling), ascending."""
        key = (model, finetune_task, finetune_head, probe_task, pooling)
        return sorted(k[5] for k in self._values if k[:5] == key)

    def best_layer(self, model: str, finetune_task: str, finetune_head: str, probe_task: str, pooling: str) -> int | None:
        """The layer of highest dev accuracy (ties: the lower layer), or None without dev rows."""
        try:
            dev = self._dev.loc[(model, finetune_task, finetune_head, probe_task, pooling)]
        except KeyError:
            return None
        return int(dev.sort_index().idxmax())

    def best(self, model: str, finetune_task: str, finetune_head: str, probe_task: str, pooling: str
             ) -> np.ndarray | None:
        """Test accuracy (+ replicates) at the dev-best layer."""
        layer = self.best_layer(model, finetune_task, finetune_head, probe_task, pooling)
        return None if layer is None else self.get(model, finetune_task, finetune_head, probe_task, pooling, layer)

    def group_delta(self, model: str, finetune_task: str, finetune_head: str, probe_task: str, pooling: str,
                    group: str) -> np.ndarray | None:
        """Mean Delta (fine-tuned minus pre-trained) over a layer group (:func:`analysis.layer_groups`)."""
        layers = self.layers(model, finetune_task, finetune_head, probe_task, pooling)
        if not layers:
            return None
        low, high = analysis.layer_groups(max(layers))[group]
        deltas = []
        for layer in (lay for lay in layers if low <= lay <= high):
            pre = self.get(model, NO_FINETUNE, NO_FINETUNE, probe_task, pooling, layer)
            post = self.get(model, finetune_task, finetune_head, probe_task, pooling, layer)
            if pre is None or post is None:
                return None
            pre, post = _aligned(pre, post)
            deltas.append(post - pre)
        return _mean(deltas) if deltas else None


def _aligned(*arrays: np.ndarray) -> list[np.ndarray]:
    """Cut arrays to a common length: where one has no replicates, all fall back to the point value."""
    length = min(len(a) for a in arrays)
    return [a[:length] for a in arrays]


def _mean(arrays: Sequence[np.ndarray]) -> np.ndarray:
    return np.mean(np.stack(_aligned(*arrays)), axis=0)


def _group_names(accuracies: Accuracies, model: str, probe_task: str, pooling: str) -> tuple[str, str] | None:
    layers = accuracies.layers(model, NO_FINETUNE, NO_FINETUNE, probe_task, pooling)
    return tuple(analysis.layer_groups(max(layers))) if layers else None  # (lower, upper)


def _check(claim: str, model: str, scope: str, quantity: str, direction: str, values: np.ndarray | None = None,
           *, estimate: float = np.nan, low: float = np.nan, high: float = np.nan, interval: str = BOOTSTRAP,
           unit: str = ACCURACY, why_no_interval: str = "") -> dict[str, Any]:
    """One check row; ``values`` = point + replicates (bootstrap), or the explicit numbers."""
    if values is not None:
        estimate = float(values[0])
        if len(values) > 1:
            low, high = uncertainty.percentile_interval(values[1:], _CONFIDENCE)
        else:
            interval, why_no_interval = "none", why_no_interval or "no probe_predictions.npz"
    if not (np.isfinite(low) and np.isfinite(high)):
        interval = "none"
    verdict, reason = judge(estimate, low, high, direction)
    if interval == "none" and why_no_interval:
        reason = f"{reason} ({why_no_interval})"
    return {"claim": claim, "model": model, "scope": scope, "quantity": quantity, "direction": direction,
            "estimate": estimate, "ci_low": low, "ci_high": high, "interval": interval, "unit": unit,
            "verdict": verdict, "reason": reason}


def _not_computable(claim: str, why: str) -> dict[str, Any]:
    return {"claim": claim, "model": "", "scope": "", "quantity": "", "direction": "", "estimate": np.nan,
            "ci_low": np.nan, "ci_high": np.nan, "interval": "none", "unit": "", "verdict": NOT_COMPUTABLE,
            "reason": why}


def _finetuned(table: pd.DataFrame, stage: str) -> pd.DataFrame:
    rows = table[(table["stage"] == stage) & (table["finetune_task"] != NO_FINETUNE)]
    return rows[["model", "finetune_task", "finetune_head"]].drop_duplicates().sort_values(["model", "finetune_task",
                                                                                           "finetune_head"])


def _pretrained_tasks(table: pd.DataFrame) -> pd.DataFrame:
    table = analysis.probe_rows(table)
    rows = table[(table["stage"] == "probing") & (table["finetune_task"] == NO_FINETUNE) & (table["metric"] == ACCURACY)]
    return rows[["model", "probe_task", "pooling"]].drop_duplicates().sort_values(["model", "probe_task", "pooling"])


def _f1(table: pd.DataFrame, acc: Accuracies) -> list[dict[str, Any]]:
    checks = []
    for (model, task), _ in _pretrained_tasks(table).groupby(["model", "probe_task"]):
        mean, cls = (acc.best(model, NO_FINETUNE, NO_FINETUNE, task, p) for p in ("mean", "cls"))
        if mean is not None and cls is not None:
            mean, cls = _aligned(mean, cls)
            checks.append(_check("F1", model, f"probe_task={task}", "best-layer accuracy: mean - CLS pooling", ">=",
                                 mean - cls))
    return checks


def _f2(table: pd.DataFrame, acc: Accuracies) -> list[dict[str, Any]]:
    checks = []
    for (model, pooling), rows in _pretrained_tasks(table).groupby(["model", "pooling"]):
        tasks = set(rows["probe_task"])
        for other in ("coordination_inversion", "odd_man_out"):
            if "bigram_shift" not in tasks or other not in tasks:
                continue
            bigram, rest = (acc.best(model, NO_FINETUNE, NO_FINETUNE, t, pooling) for t in ("bigram_shift", other))
            if bigram is not None and rest is not None:
                bigram, rest = _aligned(bigram, rest)
                checks.append(_check("F2", model, f"pooling={pooling}", f"best-layer accuracy: bigram_shift - {other}",
                                     ">", bigram - rest))
    return checks


def _delta_scopes(table: pd.DataFrame) -> Iterable[tuple[str, str, str, str, str]]:
    table = analysis.probe_rows(table)
    rows = table[(table["stage"] == "probing") & (table["finetune_task"] != NO_FINETUNE) & (table["metric"] == ACCURACY)]
    keys = ["model", "finetune_task", "finetune_head", "probe_task", "pooling"]
    yield from rows[keys].drop_duplicates().sort_values(keys).itertuples(index=False, name=None)


def _f3(table: pd.DataFrame, acc: Accuracies) -> list[dict[str, Any]]:
    checks = []
    for model, ft, head, task, pooling in _delta_scopes(table):
        groups = _group_names(acc, model, task, pooling)
        deltas = groups and [acc.group_delta(model, ft, head, task, pooling, g) for g in groups]
        if deltas and all(d is not None for d in deltas):
            lower, upper = _aligned(*deltas)
            checks.append(_check("F3", model, f"ft={ft}-{head}, probe_task={task}, pooling={pooling}",
                                 f"|Delta {groups[1]}| - |Delta {groups[0]}|", ">", np.abs(upper) - np.abs(lower)))
    return checks


def _upper_delta(acc: Accuracies, model: str, ft: str, head: str, task: str, pooling: str) -> tuple[str, np.ndarray] | None:
    groups = _group_names(acc, model, task, pooling)
    delta = groups and acc.group_delta(model, ft, head, task, pooling, groups[1])
    return None if delta is None or not groups else (groups[1], delta)


def _f4(table: pd.DataFrame, acc: Accuracies) -> list[dict[str, Any]]:
    checks = []
    for model, ft, head in _finetuned(table, "probing").itertuples(index=False, name=None):
        if ft != "cola":
            continue
        cls, mean = (_upper_delta(acc, model, ft, head, "bigram_shift", p) for p in ("cls", "mean"))
        scope = f"ft=cola-{head}, probe_task=bigram_shift"
        if cls is not None:
            checks.append(_check("F4", model, scope, f"Delta {cls[0]}, CLS pooling", ">", cls[1]))
        if cls is not None and mean is not None:
            a, b = _aligned(cls[1], mean[1])
            checks.append(_check("F4", model, scope, f"Delta {cls[0]}: CLS - mean pooling", ">", a - b))
    return checks


def _f5(table: pd.DataFrame, acc: Accuracies) -> list[dict[str, Any]]:
    checks = []
    for model, ft, head, task, pooling in _delta_scopes(table):
        if ft == "sst2" and task in ("bigram_shift", "odd_man_out"):
            upper = _upper_delta(acc, model, ft, head, task, pooling)
            if upper is not None:
                checks.append(_check("F5", model, f"ft=sst2-{head}, probe_task={task}, pooling={pooling}",
                                     f"Delta {upper[0]}", "<", upper[1]))
    return checks


def _f9(table: pd.DataFrame, acc: Accuracies) -> list[dict[str, Any]]:
    checks = []
    for model, ft, head, task, pooling in _delta_scopes(table):
        if pooling != "cls":
            continue
        tuned = acc.best(model, ft, head, task, "cls")
        baseline = acc.best(model, NO_FINETUNE, NO_FINETUNE, task, "mean")
        if tuned is not None and baseline is not None:
            tuned, baseline = _aligned(tuned, baseline)
            checks.append(_check("F9", model, f"ft={ft}-{head}, probe_task={task}",
                                 "best fine-tuned CLS-pooling accuracy - best pre-trained mean-pooling accuracy", "<=",
                                 tuned - baseline))
    return checks


def _t_interval(values: np.ndarray) -> tuple[float, float, float]:
    """Mean and 95% t interval over seeds (NaN ends for one seed)."""
    values = np.asarray(values, dtype=np.float64)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, np.nan, np.nan
    half = stats.t.ppf(0.5 + _CONFIDENCE / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return mean, mean - half, mean + half


def _perplexity_rises(table: pd.DataFrame) -> dict[tuple[str, str, str], np.ndarray]:
    """(model, ft task, head) -> per-seed perplexity rise, final epoch minus pre-trained."""
    rows = table[(table["stage"] == "perplexity") & (table["metric"] == "perplexity")]
    plain = rows[rows["k_replaced"] == -1] if "k_replaced" in rows else rows
    pre = plain[plain["finetune_task"] == NO_FINETUNE].groupby("model")["value"].mean()
    tuned = plain[(plain["finetune_task"] != NO_FINETUNE) & (plain["epoch"] > 0)]
    rises = {}
    for (model, ft, head), runs in tuned.groupby(["model", "finetune_task", "finetune_head"]):
        if model in pre:
            final = runs.loc[runs.groupby("seed")["epoch"].idxmax()].sort_values("seed")
            rises[(model, ft, head)] = final["value"].to_numpy() - pre[model]
    return rises


def _f6(table: pd.DataFrame) -> list[dict[str, Any]]:
    checks = []
    rises = _perplexity_rises(table)
    one_seed = {"why_no_interval": "one seed", "interval": "95% t interval over seeds", "unit": "perplexity"}
    for (model, ft, head), rise in sorted(rises.items()):
        mean, low, high = _t_interval(rise)
        checks.append(_check("F6", model, f"ft={ft}-{head}", "perplexity after the last epoch - pre-trained", ">",
                             estimate=mean, low=low, high=high, **one_seed))
    for (model, ft, head), sst in sorted(rises.items()):
        cola = rises.get((model, "cola", head))
        if ft != "sst2" or cola is None:
            continue
        estimate = float(sst.mean() - cola.mean())
        low = high = np.nan
        if len(sst) > 1 and len(cola) > 1:  # Welch's t interval
            v1, v2 = sst.var(ddof=1) / len(sst), cola.var(ddof=1) / len(cola)
            dof = (v1 + v2) ** 2 / (v1**2 / (len(sst) - 1) + v2**2 / (len(cola) - 1)) if v1 + v2 > 0 else 1
            half = stats.t.ppf(0.5 + _CONFIDENCE / 2, dof) * np.sqrt(v1 + v2)
            low, high = estimate - half, estimate + half
        checks.append(_check("F6", model, f"head={head}", "perplexity rise: SST-2 - CoLA", ">", estimate=estimate,
                             low=low, high=high, **{**one_seed, "interval": "95% Welch t interval over seeds"}))
    return checks


def _f7(table: pd.DataFrame) -> list[dict[str, Any]]:
    rows = table[(table["stage"] == "perplexity") & (table["metric"] == "perplexity")]
    if "k_replaced" not in rows:
        return []
    swapped = rows[(rows["k_replaced"] >= 0) & (rows["finetune_task"] != NO_FINETUNE)]
    checks = []
    for (model, ft, head), runs in swapped.groupby(["model", "finetune_task", "finetune_head"]):
        k_max = int(runs["k_replaced"].max())
        by_seed = runs.pivot_table(index="seed", columns="k_replaced", values="value")
        change = (by_seed[k_max] - by_seed[0]).dropna().to_numpy()
        if k_max == 0 or not len(change):
            continue
        mean, low, high = _t_interval(change)
        checks.append(_check("F7", model, f"ft={ft}-{head}", f"perplexity with the last {k_max} layers pre-trained - "
                             "fine-tuned", "<", estimate=mean, low=low, high=high, unit="perplexity",
                             interval="95% t interval over seeds", why_no_interval="one seed"))
    return checks


def _f8(table: pd.DataFrame) -> list[dict[str, Any]]:
    rows = table[(table["stage"] == "attention") & (table["metric"] == "entropy")]
    if "position" in rows:
        rows = rows[rows["position"] == "first"]
    checks = []
    for model, own in rows.groupby("model"):
        pre = own[own["finetune_task"] == NO_FINETUNE].groupby("layer")["value"].mean()
        if pre.empty:
            continue
        upper_name, (low, high) = list(analysis.layer_groups(int(pre.index.max())).items())[1]
        upper = own[(own["layer"] >= low) & (own["layer"] <= high)]
        base = float(pre.loc[low:high].mean())
        for ft in sorted(set(upper["finetune_task"]) - {NO_FINETUNE}):
            heads = upper[upper["finetune_task"] == ft].groupby("finetune_head")["value"].mean() - base
            no_interval = {"unit": "entropy", "why_no_interval": "attention rows are means over inputs"}
            if "cls" in heads:
                checks.append(_check("F8", model, f"ft={ft}, {upper_name}", "first-token entropy: CLS head - "
                                     "pre-trained", ">", estimate=float(heads["cls"]), **no_interval))
            if "cls" in heads and "mean" in heads:
                checks.append(_check("F8", model, f"ft={ft}, {upper_name}", "entropy change: CLS head - mean head",
                                     ">", estimate=float(heads["cls"] - heads["mean"]), **no_interval))
    return checks


_NEEDS = {
    "F1": "pre-trained probing rows with both CLS and mean pooling (and dev accuracies)",
    "F2": "pre-trained probing of bigram_shift and of coordination_inversion or odd_man_out",
    "F3": "fine-tuned and pre-trained probing rows of the same probes",
    "F4": "CoLA-fine-tuned probing of bigram_shift with the pre-trained reference",
    "F5": "SST-2-fine-tuned probing of bigram_shift or odd_man_out with the pre-trained reference",
    "F6": "perplexity rows of the pre-trained and a fine-tuned encoder",
    "F7": "layer-replacement perplexity rows (k_replaced > 0)",
    "F8": "first-token attention entropy of the pre-trained and a CLS-head fine-tuned encoder",
    "F9": "fine-tuned CLS-pooling and pre-trained mean-pooling probing rows",
}


def evaluate_claims(table: pd.DataFrame, cells: Sequence[predictions.CellPredictions] = (), *,
                    resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Every check of F1-F9 that the run allows; a ``not computable`` row for each finding it does not.

    Args:
        table: a run's results table (:func:`probeft.results.load_results`).
        cells: the run's loaded ``probe_predictions.npz`` (:func:`probeft.verdicts.delta_intervals.load_cell_predictions`);
            without them the probing checks have point estimates only.
        resamples, seed: bootstrap settings (test set ``i`` in sha order uses ``seed + i``).

    Returns:
        Rows of :data:`CHECK_COLUMNS`, in claim order.
    """
    accuracies = Accuracies(table, cells, resamples=resamples, seed=seed)
    found = {"F1": _f1(table, accuracies), "F2": _f2(table, accuracies), "F3": _f3(table, accuracies),
             "F4": _f4(table, accuracies), "F5": _f5(table, accuracies), "F6": _f6(table), "F7": _f7(table),
             "F8": _f8(table), "F9": _f9(table, accuracies)}
    rows = []
    for claim in CLAIMS:
        rows += found[claim] or [_not_computable(claim, f"the run has no {_NEEDS[claim]}")]
    return pd.DataFrame(rows, columns=CHECK_COLUMNS)


def summarise(checks: pd.DataFrame) -> pd.DataFrame:
    """One row per finding: ``holds`` when every check holds, ``does not hold`` when any fails."""
    rows = []
    for claim, finding in CLAIMS.items():
        own = checks[checks["claim"] == claim]
        computable = own[own["verdict"] != NOT_COMPUTABLE]
        holding = int((computable["verdict"] == HOLDS).sum())
        if computable.empty:
            verdict, reason = NOT_COMPUTABLE, "; ".join(own["reason"]) or "not evaluated"
        else:
            verdict = HOLDS if holding == len(computable) else FAILS
            reason = f"{holding} of {len(computable)} checks hold"
        rows.append({"claim": claim, "finding": finding, "checks": len(computable), "holding": holding,
                     "verdict": verdict, "reason": reason})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def write_claims(table: pd.DataFrame, cells: Sequence[predictions.CellPredictions], out_path: str | Path,
                 **options: Any) -> pd.DataFrame:
    """:func:`evaluate_claims` written atomically to ``out_path`` (``claims.csv``)."""
    checks = evaluate_claims(table, cells, **options)
    files.atomic_write_text(Path(out_path), checks.to_csv(index=False))
    return checks


@dataclass(frozen=True)
class RunClaims:
    """A run's checks and where they come from: what ``probeft claims``, ``claims.csv`` and the book all show.

    Attributes:
        checks: one row per check (:data:`CHECK_COLUMNS`).
        source: ``"computed"`` (from the complete cells' per-sentence predictions: bootstrap intervals, the
            same numbers the grid wrote), ``"stored"`` (the run's ``claims.csv``: an exported run, whose
            cells are gone) or ``"point estimates"`` (neither: verdicts from point estimates only).
        note: one sentence saying so, for the reader.
    """

    checks: pd.DataFrame
    source: str
    note: str


def claims_of_run(run_dir: str | Path, *, resamples: int = 1000, seed: int = 0,
                  point_estimates: bool = False) -> RunClaims:
    """The paper's findings on a run, from the same function and inputs as the grid's ``claims.csv``.

    The complete cells' ``probe_predictions.npz`` give intervals (as the grid's gather step computes them);
    an exported run without cells keeps its stored ``claims.csv``; only without both, or when asked
    (``point_estimates``), are the verdicts recomputed from the results table's point estimates.

    Raises:
        FileNotFoundError: the run has no ``results.csv``.
    """
    run_dir = Path(run_dir)
    table = results.load_results(run_dir / results.RESULTS_FILE)
    complete = [d for d in sorted((run_dir / "cells").glob("*")) if results.cell_complete(d)]
    cells = delta_intervals.load_cell_predictions(complete)
    stored = load_claims(run_dir / CLAIMS_FILE)
    if cells and not point_estimates:
        return RunClaims(evaluate_claims(table, cells, resamples=resamples, seed=seed), "computed",
                         f"95% bootstrap intervals from the per-sentence predictions of {len(cells)} complete cells")
    if stored is not None and not point_estimates:
        return RunClaims(stored, "stored", f"{run_dir / CLAIMS_FILE}: the verdicts computed with intervals when the "
                         "run's cells existed (an exported run); the book shows the same")
    why = "asked for" if point_estimates else "no cells' per-sentence predictions and no stored claims.csv"
    return RunClaims(evaluate_claims(table, [], resamples=resamples, seed=seed), "point estimates",
                     f"POINT ESTIMATES ONLY ({why}): no intervals, so noise can decide a verdict")


def load_claims(path: str | Path) -> pd.DataFrame | None:
    """Read a ``claims.csv``; None when absent.

    Raises:
        ValueError: the file lacks columns of :data:`CHECK_COLUMNS` (names the file).
    """
    path = Path(path)
    if not path.is_file():
        return None
    # Empty means NaN only in the numbers; an empty model or scope (a not-computable row) stays "".
    checks = pd.read_csv(path, keep_default_na=False, na_values={c: [""] for c in ("estimate", "ci_low", "ci_high")})
    missing = [c for c in CHECK_COLUMNS if c not in checks.columns]
    if missing:
        raise ValueError(f"{path}: not a claims table, missing column(s) {missing}")
    for column in ("claim", "model", "scope", "quantity", "direction", "interval", "unit", "verdict", "reason"):
        checks[column] = checks[column].astype(str)
    return checks
