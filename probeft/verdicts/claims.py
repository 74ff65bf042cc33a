"""The paper's findings F1-F9 as executable checks on a run: three-valued verdicts, each with an interval and an MDE.

:func:`evaluate_claims` reads a run's results table (and, for the probing findings, its cells'
``probe_predictions.npz``, or an exported run's ``delta_intervals.csv``) and returns one tidy row per *check*
(:data:`CHECK_COLUMNS`): a finding is checked once per model, task, head or pooling that the run holds.
:func:`summarise` folds them into one row per finding. Every effect size and margin comes from
:mod:`probeft.verdicts.margins`, where each is justified.

Intervals (95%):
    * Probing findings, from the cells' predictions: percentile bootstrap, hierarchical where the run has
      several fine-tuning seeds or probe refits (:class:`Accuracies`): each replicate draws the seeds, one refit
      per drawn seed, and the test sentences. The test sentences of one probing task are resampled once
      (:func:`probeft.verdicts.uncertainty.resampled_accuracies`) for every probe of the run on them, so a
      statistic combining several probes of a task is a paired bootstrap; different tasks are resampled
      independently. Best layers are chosen on dev accuracy (ties: the lower layer) and held fixed in the
      resamples. The drawn seeds are averaged inside each replicate.
    * Probing findings of an exported run (no cells, but ``delta_intervals.csv``): a Delta (fine-tuned minus
      pre-trained, per layer or layer group) takes its stored paired interval; a contrast of two different
      probes (mean vs CLS pooling, two tasks) combines the results table's per-probe intervals as if the probes
      were independent, which widens the interval (the probes' errors are positively correlated): conservative.
      Both enter as normal draws matched to the stored interval ends (:func:`_normal_draws`).
    * Perplexity (F6, F7) and attention (F8): t intervals over fine-tuning seeds (Welch's for a difference of
      two sets of seeds; F7's last-k vs first-k contrast is paired by seed); with one seed there is no interval.
      Perplexity computed with a masked-LM head *fitted* on the frozen pre-trained encoder (``mlm_head`` =
      ``fitted``, for encoders published without a head) is checked separately from the pre-trained head's;
      its checks name it in the scope and say in the reason that they are an analogue, not the paper's head.
    Without an interval the verdict follows the point estimate and ``reason`` says so.

Verdicts (:func:`judge`): *supported*, *contradicted* (the interval excludes the claimed effect size or
direction), *inconclusive* (the interval includes both 0 and the claimed effect), or *not computable* (the run
lacks what the finding needs; the reason names it). Each check carries its minimum detectable effect
(:mod:`probeft.verdicts.power`), so an inconclusive check says whether the run was too small ("underpowered").
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from probeft import results
from probeft.core import files
from probeft.core.names import FITTED_HEAD_NOTE, MLM_HEAD_PRETRAINED, NO_FINETUNE, PRETRAINED_LABEL
from probeft.results import analysis, attention_sentences, predictions
from probeft.verdicts import delta_intervals, margins, power, uncertainty

__all__ = ["CHECK_COLUMNS", "CLAIMS", "CLAIMS_FILE", "CONTRADICTED", "INCONCLUSIVE", "NOT_COMPUTABLE",
           "SUMMARY_COLUMNS", "SUPPORTED", "TIE", "VERDICTS", "Accuracies", "RunClaims", "claims_of_run", "depth_trend",
           "evaluate_claims", "judge", "load_claims", "summarise", "with_effects", "write_claims"]

CLAIMS_FILE = "claims.csv"
SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_COMPUTABLE = "supported", "contradicted", "inconclusive", "not computable"
VERDICTS = (SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_COMPUTABLE)
# The findings in our words; quotation marks only around the paper's words as the audit (issue 26) cites them.
CLAIMS: dict[str, str] = {
    "F1": "Mean pooling is better than CLS pooling at the best layer (\"mean pooling consistently improves\"), "
          "per model and probing task.",
    "F2": "Bigram shift is probed more accurately than coordination inversion and than odd-man-out.",
    "F3": "Fine-tuning changes mostly the upper layers: per-layer |Delta| grows with depth above the noise floor, "
          "significant Deltas are more frequent in the upper layer group, and most of the 1 - CKA is there.",
    "F4": "CoLA fine-tuning raises bigram-shift accuracy under CLS pooling; under mean pooling the gain is "
          "\"negligible\" (below half the CLS gain).",
    "F5": "SST-2 fine-tuning lowers bigram-shift and odd-man-out accuracy.",
    "F6": "MLM perplexity rises with fine-tuning, more for SST-2 than for CoLA.",
    "F7": "Replacing only the last few fine-tuned layers (k <= L/4) by pre-trained ones recovers most of the "
          "perplexity rise (and, where the run restores the first k layers too, more than those do).",
    "F8": "CLS-head fine-tuning raises the first token's attention entropy in the last three layers, more than "
          "mean-head fine-tuning.",
    "F9": "Where fine-tuning gives CLS pooling a gain, CLS pooling still does not exceed the pre-trained "
          "mean-pooling baseline at any layer (Fig. 4), beyond a 2-point margin.",
}
CHECK_COLUMNS = ["claim", "model", "scope", "quantity", "direction", "effect", "estimate", "ci_low", "ci_high",
                 "interval", "unit", "mde", "verdict", "reason"]
SUMMARY_COLUMNS = ["claim", "finding", "checks", "supported", "contradicted", "inconclusive", "verdict", "mde",
                   "reason"]
BOOTSTRAP = "95% bootstrap over test sentences"
EXPORTED_PAIRED = "95% paired bootstrap (delta_intervals.csv)"
EXPORTED_UNPAIRED = "95% normal, probes taken as independent (exported run; conservative)"
SEEDS_T = "95% t interval over seeds"
ACCURACY = "accuracy"
_CONFIDENCE = margins.CONFIDENCE
_DIRECTIONS = {">": "strict", "<": "strict", "<=": "bounded", ">=": "bounded"}
# Statistics within this of 0 are 0: a difference of equal accuracies computed in two orders can come out as
# 2.8e-17, which would otherwise decide a strict claim. Accuracy statistics are multiples of 1/N_test >= 1e-6.
TIE = 1e-9


def _show(value: float, unit: str) -> str:
    """A number in a reason: accuracies in points, other units to 2 decimals."""
    return f"{100 * value:.1f} points" if unit == ACCURACY else f"{value:.2f}"


def judge(estimate: float, low: float, high: float, direction: str, effect: float = 0.0, *,
          mde: float = np.nan, unit: str = ACCURACY) -> tuple[str, str]:
    """Three-valued verdict and reason of one check; ``low``/``high`` NaN = no interval.

    Args:
        estimate: the statistic, e.g. a Delta.
        low, high: its 95% interval.
        direction: ``">"`` / ``"<"``: the statistic is claimed positive / negative, with (at least) size
            ``effect``; ``"<="``: claimed at most ``effect`` (a margin; non-superiority); ``">="``: claimed at
            least ``-effect`` (non-inferiority).
        effect: the claimed effect size or margin, >= 0 (:mod:`probeft.verdicts.margins`, or later the paper's
            own per-cell effect).
        mde: the check's minimum detectable effect (:mod:`probeft.verdicts.power`); only for the reason.
        unit: ``"accuracy"`` shows numbers in points.

    Returns:
        ``(verdict, reason)``: a strict claim is *supported* when the interval lies on the claimed side of 0,
        *contradicted* when it excludes the claimed effect (or lies on the wrong side of 0), else *inconclusive*;
        a bounded claim is *supported* below the margin, *contradicted* above it, else *inconclusive*.
        Without an interval the point estimate decides.
    """
    if direction not in _DIRECTIONS:
        raise ValueError(f"direction must be one of {list(_DIRECTIONS)}, got {direction!r}")
    if not effect >= 0:
        raise ValueError(f"effect must be >= 0 (a size or a margin), got {effect!r}")
    if not np.isfinite(estimate):
        return NOT_COMPUTABLE, "the estimate is not finite"
    sign = 1.0 if direction in (">", "<=") else -1.0
    strict = _DIRECTIONS[direction] == "strict"
    # Distances from the decision point (0 for a strict claim, the margin for a bounded one), ties at 0.
    origin = 0.0 if strict else effect
    est, lo, hi = (sign * value - origin for value in (estimate, low, high))
    est, lo, hi = (0.0 if abs(value) <= TIE else value for value in (est, lo, hi))
    if not (np.isfinite(lo) and np.isfinite(hi)):
        ok = est > 0 if strict else est <= 0
        return (SUPPORTED if ok else CONTRADICTED), "point estimate only, no interval"
    lo, hi = sorted((lo, hi))
    underpowered = (f"; underpowered: MDE {_show(mde, unit)} > {_show(effect, unit)}"
                    if effect > 0 and np.isfinite(mde) and mde > effect else "")
    if strict:
        if lo > 0:
            smaller = f" (but below the claimed {_show(effect, unit)})" if 0 < hi < effect else ""
            return SUPPORTED, "interval excludes 0 on the claimed side" + smaller
        if hi < 0:
            return CONTRADICTED, "interval on the opposite side of 0"
        if effect > 0 and hi < effect:
            return CONTRADICTED, f"interval excludes the claimed effect of {_show(effect, unit)}"
        what = f"0 and the claimed {_show(effect, unit)}" if effect > 0 else "0"
        return INCONCLUSIVE, f"interval includes {what}{underpowered}"
    if hi < 0:
        return SUPPORTED, f"interval below the margin {_show(effect, unit)}"
    if lo > 0:
        return CONTRADICTED, f"interval above the margin {_show(effect, unit)}"
    return INCONCLUSIVE, f"interval includes the margin {_show(effect, unit)}{underpowered}"


def _normal_draws(point: float, low: float, high: float, key: Any, resamples: int, seed: int) -> np.ndarray | None:
    """``(R,)`` pseudo-replicates of a statistic known by its point and 95% interval, or None without one.

    Stratified normal quantiles, scaled separately below and above ``point`` so that their percentile interval
    is (to interpolation) ``[low, high]``, in an order drawn from ``seed`` and ``key``: two keys' draws are
    independent.
    """
    if not (np.isfinite(point) and np.isfinite(low) and np.isfinite(high)):
        return None
    z = stats.norm.ppf((np.arange(resamples) + 0.5) / resamples)
    z = np.random.default_rng([seed, zlib.crc32(repr(key).encode())]).permutation(z)
    scale = np.where(z < 0, point - low, high - point) / stats.norm.ppf(0.5 + _CONFIDENCE / 2)
    return point + scale * z


class Accuracies:
    """Test accuracies and Deltas of every probe of a run: the point value and, where possible, replicates.

    ``get`` returns a ``(1 + R,)`` array (index 0: the results table's test accuracy, seeds averaged; then
    ``R`` bootstrap replicates) or ``(1,)`` when there is nothing to resample from.

    From the cells' predictions the replicates are hierarchical, as
    :func:`probeft.verdicts.uncertainty.hierarchical_bootstrap_delta` draws them: replicate ``r`` draws the
    encoder's ``S`` fine-tuning seeds with replacement, for each drawn seed one of its probe refits (centred on
    its full fit; the full fit where the cell made none), and the test sentences (one draw per test set,
    shared by every probe on it). The seed and refit draws of one encoder (model, fine-tuning task, head) are
    shared by all its probes, so a statistic of several probes of one encoder stays paired; different encoders
    (e.g. the pre-trained and a fine-tuned one) draw independently, as they were trained independently.

    With ``intervals`` (an exported run's ``delta_intervals.csv``) and no cells, the replicates are
    :func:`_normal_draws` from the stored intervals (module docstring).
    """

    def __init__(self, table: pd.DataFrame, cells: Sequence[predictions.CellPredictions], *,
                 intervals: pd.DataFrame | None = None, resamples: int = 1000, seed: int = 0) -> None:
        table = analysis.probe_rows(table)  # the linear probe's rows: the paper's claims
        rows = table[(table["stage"] == "probing") & (table["metric"] == ACCURACY)]
        self._dev = rows[rows["split"] == "dev"].groupby(
            ["model", "finetune_task", "finetune_head", "probe_task", "pooling", "layer"])["value"].mean()
        test = rows[rows["split"] == "test"]
        self.exported = not cells and intervals is not None
        self._resamples, self._seed = resamples, seed
        # (model, ft, head, task, pooling, layer) -> [(seed, point, replicate levels (K, R) or None), ...]
        self._values: dict[tuple[Any, ...], list[tuple[int, float, np.ndarray | None]]] = {}
        replicates = self._replicates(cells, resamples, seed)
        self._levels = _levels_label(replicates, test)
        has_ci = {"ci_low", "ci_high"} <= set(test.columns)
        for row in test.itertuples(index=False):
            key = (row.model, row.finetune_task, row.finetune_head, int(row.seed), row.probe_task, row.pooling,
                   int(row.layer))
            levels = replicates.get(key)
            if levels is None and self.exported and has_ci:
                draws = _normal_draws(float(row.value), float(row.ci_low), float(row.ci_high), key, resamples, seed)
                levels = None if draws is None else draws[None]
            self._values.setdefault(key[:3] + key[4:], []).append((int(row.seed), float(row.value), levels))
        self._draws: dict[tuple[str, str, str], tuple[np.ndarray, np.ndarray]] = {}
        self._deltas: dict[tuple[Any, ...], tuple[np.ndarray, float, float]] = {}
        if self.exported:
            self._index_intervals(intervals, resamples, seed)

    def _index_intervals(self, intervals: pd.DataFrame, resamples: int, seed: int) -> None:
        """Stored Deltas (all seeds pooled) -> (point + draws, ci_low, ci_high)."""
        pooled = intervals[intervals["seed"] == delta_intervals.POOLED_SEED]
        for row in (pooled if len(pooled) else intervals).itertuples(index=False):
            key = (row.model, row.finetune_task, row.finetune_head, row.probe_task, row.pooling, row.level,
                   int(row.layer), row.layer_group)
            draws = _normal_draws(float(row.delta), float(row.ci_low), float(row.ci_high), key, resamples, seed)
            values = np.array([float(row.delta)]) if draws is None else np.concatenate([[float(row.delta)], draws])
            self._deltas[key] = (values, float(row.ci_low), float(row.ci_high))

    def label(self, paired: bool = True) -> str:
        """The ``interval`` text of a statistic of this run (``paired``: a Delta of one probe)."""
        if not self.exported:
            return self._levels
        return EXPORTED_PAIRED if paired else EXPORTED_UNPAIRED

    @staticmethod
    def _replicates(cells: Sequence[predictions.CellPredictions], resamples: int, seed: int
                    ) -> dict[tuple[Any, ...], np.ndarray]:
        """(model, ft task, head, seed, task, pooling, layer) -> ``(K, R)`` resampled accuracies.

        Row 0 alone (``K = 1``) for a probe without refits: its full fit on each sentence resample. With
        ``K`` refits, the refits' accuracies on the same resamples, each shifted by the refits' mean
        all-sentence accuracy minus the full fit's (the refits contribute their spread, not the lower
        accuracy of a fit on ~63% distinct training sentences; as in ``hierarchical_bootstrap_delta``).
        """
        by_test_set: dict[str, list[tuple[tuple[Any, ...], np.ndarray, np.ndarray | None]]] = {}
        for cell in cells:
            c = cell.cell
            for task, entry in cell.tasks.items():
                for index, ((pooling, layer), correct) in enumerate(zip(entry.probes, entry.correct, strict=True)):
                    key = (c["model"], c["finetune_task"], c["finetune_head"], int(c["seed"]), task, pooling, int(layer))
                    refits = None if entry.refits is None else entry.refits[:, index]  # (K, N)
                    by_test_set.setdefault(entry.test_sha256, []).append((key, correct, refits))
        out: dict[tuple[Any, ...], np.ndarray] = {}
        for index, sha in enumerate(sorted(by_test_set)):
            entries = by_test_set[sha]
            rows = [correct[None] if refits is None else np.concatenate([correct[None], refits])
                    for _, correct, refits in entries]
            # One call: every row (full fits and refits) sees the same sentence resamples.
            accuracies = uncertainty.resampled_accuracies(np.concatenate(rows), resamples=resamples, seed=seed + index)
            start = 0
            for (key, correct, refits), block in zip(entries, rows, strict=True):
                own = accuracies[start : start + len(block)]
                start += len(block)
                if refits is None:
                    out[key] = own
                else:
                    shift = refits.mean() - correct.mean()  # mean refit accuracy - full fit's, all sentences
                    out[key] = own[1:] - shift
        return out

    def _seed_and_refit_draws(self, encoder: tuple[str, str, str], seeds: int) -> tuple[np.ndarray, np.ndarray]:
        """``(R, S)`` drawn seed positions and ``(R, S)`` uniform numbers picking a refit, one set per encoder."""
        cached = self._draws.get(encoder)
        if cached is None or cached[0].shape[1] != seeds:
            rng = np.random.default_rng([self._seed, 2, zlib.crc32(repr(encoder).encode())])
            drawn = rng.integers(0, seeds, size=(self._resamples, seeds)) if seeds > 1 else np.zeros(
                (self._resamples, 1), dtype=np.int64)
            cached = (drawn, rng.random((self._resamples, seeds)))
            self._draws[encoder] = cached
        return cached

    def get(self, model: str, finetune_task: str, finetune_head: str, probe_task: str, pooling: str,
            layer: int) -> np.ndarray | None:
        """Seed-averaged point + replicates of one probe, or None when the run lacks it."""
        values = self._values.get((model, finetune_task, finetune_head, probe_task, pooling, int(layer)))
        if not values:
            return None
        values = sorted(values, key=lambda v: v[0])
        point = float(np.mean([v[1] for v in values]))
        levels = [v[2] for v in values]
        if any(level is None for level in levels):
            return np.array([point])
        if self.exported:  # normal draws of each seed's stored interval: averaged, as before
            return np.concatenate([[point], np.mean(np.stack([level[0] for level in levels]), axis=0)])
        drawn, pick = self._seed_and_refit_draws((model, finetune_task, finetune_head), len(levels))
        sizes = np.array([len(level) for level in levels])  # refits per seed (1: the full fit)
        refit = np.minimum((pick * sizes[drawn]).astype(np.int64), sizes[drawn] - 1)  # (R, S)
        padded = np.stack([np.pad(level, ((0, sizes.max() - len(level)), (0, 0))) for level in levels])  # (S, K, R)
        drawn_accuracies = padded[drawn, refit, np.arange(self._resamples)[:, None]]  # (R, S)
        return np.concatenate([[point], drawn_accuracies.mean(axis=1)])

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

    def delta(self, model: str, finetune_task: str, finetune_head: str, probe_task: str, pooling: str,
              layer: int) -> np.ndarray | None:
        """Delta (fine-tuned minus pre-trained) at one layer: point + replicates."""
        stored = self._deltas.get((model, finetune_task, finetune_head, probe_task, pooling, "layer", int(layer), "none"))
        if stored is not None:
            return stored[0]
        pre = self.get(model, NO_FINETUNE, NO_FINETUNE, probe_task, pooling, layer)
        post = self.get(model, finetune_task, finetune_head, probe_task, pooling, layer)
        if pre is None or post is None:
            return None
        pre, post = _aligned(pre, post)
        return post - pre

    def delta_interval(self, model: str, finetune_task: str, finetune_head: str, probe_task: str, pooling: str,
                       layer: int) -> tuple[float, float]:
        """95% interval of one layer's Delta (the stored one of an exported run); NaNs without replicates."""
        stored = self._deltas.get((model, finetune_task, finetune_head, probe_task, pooling, "layer", int(layer), "none"))
        if stored is not None:
            return stored[1], stored[2]
        values = self.delta(model, finetune_task, finetune_head, probe_task, pooling, layer)
        if values is None or len(values) < 2:
            return np.nan, np.nan
        return uncertainty.percentile_interval(values[1:], _CONFIDENCE)

    def group_delta(self, model: str, finetune_task: str, finetune_head: str, probe_task: str, pooling: str,
                    group: str) -> np.ndarray | None:
        """Mean Delta (fine-tuned minus pre-trained) over a layer group (:func:`analysis.layer_groups`)."""
        stored = self._deltas.get((model, finetune_task, finetune_head, probe_task, pooling, "layer_group", -1, group))
        if stored is not None:
            return stored[0]
        layers = self.layers(model, finetune_task, finetune_head, probe_task, pooling)
        if not layers:
            return None
        low, high = analysis.layer_groups(max(layers))[group]
        deltas = []
        for layer in (lay for lay in layers if low <= lay <= high):
            delta = self.delta(model, finetune_task, finetune_head, probe_task, pooling, layer)
            if delta is None:
                return None
            deltas.append(delta)
        return _mean(deltas) if deltas else None


def _levels_label(replicates: Mapping[tuple[Any, ...], np.ndarray], test: pd.DataFrame) -> str:
    """The bootstrap's ``interval`` text: which levels a run's replicates draw (seeds, refits, sentences)."""
    seeds = test.groupby(["model", "finetune_task", "finetune_head"])["seed"].nunique()
    levels = (["fine-tuning seeds"] if len(seeds) and int(seeds.max()) > 1 else []) + (
        ["probe refits"] if any(len(r) > 1 for r in replicates.values()) else [])
    return BOOTSTRAP if not levels else f"95% bootstrap over {', '.join(levels)}, then test sentences"


def _aligned(*arrays: np.ndarray) -> list[np.ndarray]:
    """Cut arrays to a common length: where one has no replicates, all fall back to the point value."""
    length = min(len(a) for a in arrays)
    return [a[:length] for a in arrays]


def _mean(arrays: Sequence[np.ndarray]) -> np.ndarray:
    return np.mean(np.stack(_aligned(*arrays)), axis=0)


def _group_names(accuracies: Accuracies, model: str, probe_task: str, pooling: str) -> tuple[str, str] | None:
    layers = accuracies.layers(model, NO_FINETUNE, NO_FINETUNE, probe_task, pooling)
    return tuple(analysis.layer_groups(max(layers))) if layers else None  # (lower, upper)


def _mde(low: float, high: float) -> float:
    """Minimum detectable effect of a statistic with this 95% interval (NaN without one)."""
    se = power.se_from_interval(low, high, _CONFIDENCE)
    return power.minimum_detectable_effect(se, alpha=margins.ALPHA, power=margins.POWER) if np.isfinite(se) else np.nan


def _check(claim: str, model: str, scope: str, quantity: str, direction: str, values: np.ndarray | None = None,
           *, effect: float = margins.DIRECTION_ONLY, estimate: float = np.nan, low: float = np.nan,
           high: float = np.nan, interval: str = BOOTSTRAP, unit: str = ACCURACY, why_no_interval: str = "",
           note: str = "") -> dict[str, Any]:
    """One check row; ``values`` = point + replicates (bootstrap), or the explicit numbers."""
    if values is not None:
        estimate = float(values[0])
        if len(values) > 1:
            low, high = uncertainty.percentile_interval(values[1:], _CONFIDENCE)
        else:
            why_no_interval = why_no_interval or "no probe_predictions.npz"
    if not (np.isfinite(low) and np.isfinite(high)):
        interval, low, high = "none", np.nan, np.nan
    mde = _mde(low, high)
    verdict, reason = judge(estimate, low, high, direction, effect, mde=mde, unit=unit)
    if interval == "none" and why_no_interval:
        reason = f"{reason} ({why_no_interval})"
    if note:
        reason = f"{reason}; {note}"
    return {"claim": claim, "model": model, "scope": scope, "quantity": quantity, "direction": direction,
            "effect": effect, "estimate": estimate, "ci_low": low, "ci_high": high, "interval": interval,
            "unit": unit, "mde": mde, "verdict": verdict, "reason": reason}


def _not_computable(claim: str, why: str) -> dict[str, Any]:
    return {"claim": claim, "model": "", "scope": "", "quantity": "", "direction": "", "effect": np.nan,
            "estimate": np.nan, "ci_low": np.nan, "ci_high": np.nan, "interval": "none", "unit": "", "mde": np.nan,
            "verdict": NOT_COMPUTABLE, "reason": why}


def _finetuned(table: pd.DataFrame, stage: str) -> pd.DataFrame:
    rows = table[(table["stage"] == stage) & (table["finetune_task"] != NO_FINETUNE)]
    return rows[["model", "finetune_task", "finetune_head"]].drop_duplicates().sort_values(["model", "finetune_task",
                                                                                           "finetune_head"])


def _pretrained_tasks(table: pd.DataFrame) -> pd.DataFrame:
    table = analysis.probe_rows(table)
    rows = table[(table["stage"] == "probing") & (table["finetune_task"] == NO_FINETUNE) & (table["metric"] == ACCURACY)]
    return rows[["model", "probe_task", "pooling"]].drop_duplicates().sort_values(["model", "probe_task", "pooling"])


def _f1(table: pd.DataFrame, acc: Accuracies) -> list[dict[str, Any]]:
    """Mean minus CLS pooling at their dev-best layers, strictly positive, per model and task."""
    checks = []
    for (model, task), _ in _pretrained_tasks(table).groupby(["model", "probe_task"]):
        mean, cls = (acc.best(model, NO_FINETUNE, NO_FINETUNE, task, p) for p in ("mean", "cls"))
        if mean is not None and cls is not None:
            mean, cls = _aligned(mean, cls)
            checks.append(_check("F1", model, f"probe_task={task}", "best-layer accuracy: mean - CLS pooling", ">",
                                 mean - cls, effect=margins.EFFECT, interval=acc.label(paired=False)))
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
                                     ">", bigram - rest, effect=margins.EFFECT, interval=acc.label(paired=False)))
    return checks


def _delta_scopes(table: pd.DataFrame) -> Iterable[tuple[str, str, str, str, str]]:
    table = analysis.probe_rows(table)
    rows = table[(table["stage"] == "probing") & (table["finetune_task"] != NO_FINETUNE) & (table["metric"] == ACCURACY)]
    keys = ["model", "finetune_task", "finetune_head", "probe_task", "pooling"]
    yield from rows[keys].drop_duplicates().sort_values(keys).itertuples(index=False, name=None)


def _layer_deltas(acc: Accuracies, model: str, ft: str, head: str, task: str, pooling: str
                  ) -> tuple[list[int], np.ndarray] | None:
    """The probed layers and their Deltas ``(layers, 1 + R)`` of one scope, or None when one is missing."""
    layers = acc.layers(model, NO_FINETUNE, NO_FINETUNE, task, pooling)
    deltas = [acc.delta(model, ft, head, task, pooling, layer) for layer in layers]
    if len(layers) < 2 or any(d is None for d in deltas):
        return None
    return layers, np.stack(_aligned(*deltas))


def _depth_slope(layers: Sequence[int], values: np.ndarray) -> np.ndarray:
    """Least-squares slope of ``values`` ``(layers, K)`` on depth ``layer / L`` (0 at the bottom, 1 at the top)."""
    depth = np.asarray(layers, dtype=np.float64) / max(layers)
    centred = depth - depth.mean()
    return centred @ (values - values.mean(axis=0)) / (centred @ centred)


def depth_trend(scopes: Sequence[tuple[Sequence[int], np.ndarray]]) -> tuple[float, float, float, float]:
    """F3's pooled trend: mean over scopes of the slope of per-layer |Delta| on depth, above the noise floor.

    Args:
        scopes: ``(layers, deltas)`` per (fine-tuning, task, pooling); ``deltas`` ``(layers, 1 + R)``: point and
            replicates (``R`` may be 0).

    Returns:
        ``(estimate, low, high, floor)``: the observed pooled slope minus the noise floor, its 95% normal
        interval (estimate +- z * the replicates' SD) and the floor: the mean pooled slope of |replicate -
        point|, i.e. of |Delta| when fine-tuning changed nothing but the sentences resampled (the |.| of noise
        is positive, and grows with depth where the upper layers' Deltas are noisier). NaN interval and a 0
        floor without replicates.
    """
    length = min(d.shape[1] for _, d in scopes)
    observed = float(np.mean([_depth_slope(layers, np.abs(d[:, :1]))[0] for layers, d in scopes]))
    if length < 3:
        return observed, np.nan, np.nan, 0.0
    boot = np.mean([_depth_slope(layers, np.abs(d[:, 1:length])) for layers, d in scopes], axis=0)
    noise = np.mean([_depth_slope(layers, np.abs(d[:, 1:length] - d[:, :1])) for layers, d in scopes], axis=0)
    floor = float(noise.mean())
    half = float(stats.norm.ppf(0.5 + _CONFIDENCE / 2) * boot.std(ddof=1))
    return observed - floor, observed - floor - half, observed - floor + half, floor


def _significant_share(acc: Accuracies, scopes: Sequence[tuple[str, str, str, str, str]], lower: bool
                       ) -> tuple[int, int]:
    """(layers whose Delta interval excludes 0, layers) of the lower or upper group, over ``scopes``."""
    hits = total = 0
    for model, ft, head, task, pooling in scopes:
        layers = acc.layers(model, NO_FINETUNE, NO_FINETUNE, task, pooling)
        (lo_low, lo_high), (up_low, up_high) = analysis.layer_groups(max(layers)).values()
        for layer in layers:
            if (lo_low <= layer <= lo_high) != lower:
                continue
            low, high = acc.delta_interval(model, ft, head, task, pooling, layer)
            if not (np.isfinite(low) and np.isfinite(high)):
                return 0, 0
            hits += int(low > 0 or high < 0)
            total += 1
    return hits, total


def _f3(table: pd.DataFrame, acc: Accuracies) -> list[dict[str, Any]]:
    """Three pooled tests per model: |Delta| depth trend, share of significant layers, 1 - CKA by depth."""
    checks = []
    scopes = list(_delta_scopes(table))
    for model in sorted({s[0] for s in scopes}):
        own = [s for s in scopes if s[0] == model]
        per_scope = [d for d in (_layer_deltas(acc, *s) for s in own) if d is not None]
        if not per_scope:
            continue
        estimate, low, high, floor = depth_trend(per_scope)
        scope = f"{len(per_scope)} (fine-tuning, task, pooling) pooled"
        checks.append(_check("F3", model, scope, "depth slope of per-layer |Delta| (bottom to top) - noise floor",
                             ">", effect=margins.F3_TREND, estimate=estimate, low=low, high=high,
                             interval=f"95% normal, bootstrap SD ({acc.label(paired=False)})" if acc.exported
                             else f"95% normal, SD of the {acc.label(paired=False).removeprefix('95% ')}",
                             why_no_interval="no per-sentence predictions or delta_intervals.csv",
                             note=f"noise floor {_show(floor, ACCURACY)}"))
        (k_up, n_up), (k_low, n_low) = (_significant_share(acc, own, lower) for lower in (False, True))
        if n_up and n_low:
            p_up, p_low = k_up / n_up, k_low / n_low
            half = stats.norm.ppf(0.5 + _CONFIDENCE / 2) * np.sqrt(p_up * (1 - p_up) / n_up + p_low * (1 - p_low) / n_low)
            checks.append(_check("F3", model, scope, "share of layers with a significant Delta: upper - lower group",
                                 ">", estimate=p_up - p_low, low=p_up - p_low - half, high=p_up - p_low + half,
                                 interval="95% normal (Wald) over layers", unit="share",
                                 note=f"{k_up}/{n_up} upper, {k_low}/{n_low} lower"))
    checks += _f3_cka(table)
    return checks


def _f3_cka(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Share of the total 1 - CKA (fine-tuned vs pre-trained features) in the upper group, minus its share of layers.

    Per fine-tuned encoder, 1 - CKA is averaged over probing tasks and poolings per layer; the statistic is 0
    when the change is spread evenly over the depth and approaches the lower group's share of layers when it is
    confined to the upper group. The interval is a t interval over the fine-tuned encoders (independent
    fine-tunings).
    """
    rows = table[(table["stage"] == "probing") & (table["metric"] == "cka") & (table["finetune_task"] != NO_FINETUNE)]
    checks = []
    for model, own in rows.groupby("model"):
        (_, lower_top), _ = analysis.layer_groups(int(own["layer"].max())).values()
        per_encoder = []
        for _, encoder in own.groupby(["finetune_task", "finetune_head", "seed"]):
            change = 1 - encoder.groupby("layer")["value"].mean()
            upper = change.index > lower_top
            if change.sum() > TIE:
                per_encoder.append(float(change[upper].sum() / change.sum() - upper.mean()))
        if not per_encoder:
            continue
        mean, low, high = _t_interval(np.array(per_encoder))
        checks.append(_check("F3", model, f"{len(per_encoder)} fine-tuned encoders",
                             "share of the total 1 - CKA in the upper group - its share of layers", ">",
                             effect=margins.CKA_EFFECT, estimate=mean, low=low, high=high, unit="share",
                             interval="95% t interval over fine-tuned encoders", why_no_interval="one fine-tuned encoder"))
    return checks


def _upper_delta(acc: Accuracies, model: str, ft: str, head: str, task: str, pooling: str) -> tuple[str, np.ndarray] | None:
    groups = _group_names(acc, model, task, pooling)
    delta = groups and acc.group_delta(model, ft, head, task, pooling, groups[1])
    return None if delta is None or not groups else (groups[1], delta)


def _f4(table: pd.DataFrame, acc: Accuracies) -> list[dict[str, Any]]:
    """Both halves: a CLS-pooling gain, and a mean-pooling gain below ``F4_RATIO`` times it."""
    checks = []
    for model, ft, head in _finetuned(table, "probing").itertuples(index=False, name=None):
        if ft != "cola":
            continue
        cls, mean = (_upper_delta(acc, model, ft, head, "bigram_shift", p) for p in ("cls", "mean"))
        scope = f"ft=cola-{head}, probe_task=bigram_shift"
        if cls is not None:
            checks.append(_check("F4", model, scope, f"Delta {cls[0]}, CLS pooling", ">", cls[1],
                                 effect=margins.EFFECT, interval=acc.label()))
        if cls is not None and mean is not None:
            a, b = _aligned(cls[1], mean[1])
            ratio = b[0] / a[0] if abs(a[0]) > TIE else np.nan
            checks.append(_check("F4", model, scope, f"Delta {cls[0]}: mean pooling - {margins.F4_RATIO:g} x CLS pooling",
                                 "<=", b - margins.F4_RATIO * a, effect=0.0, interval=acc.label(paired=False),
                                 note=f"gain ratio mean/CLS {ratio:.2f} (margin {margins.F4_RATIO:g})"))
    return checks


def _f5(table: pd.DataFrame, acc: Accuracies) -> list[dict[str, Any]]:
    checks = []
    for model, ft, head, task, pooling in _delta_scopes(table):
        if ft == "sst2" and task in ("bigram_shift", "odd_man_out"):
            upper = _upper_delta(acc, model, ft, head, task, pooling)
            if upper is not None:
                checks.append(_check("F5", model, f"ft=sst2-{head}, probe_task={task}, pooling={pooling}",
                                     f"Delta {upper[0]}", "<", upper[1], effect=margins.EFFECT, interval=acc.label()))
    return checks


def _has_gain(acc: Accuracies, model: str, ft: str, head: str, task: str) -> bool:
    """Whether the upper-group CLS-pooling Delta is significantly positive (the point, without an interval)."""
    upper = _upper_delta(acc, model, ft, head, task, "cls")
    if upper is None:
        return False
    values = upper[1]
    return bool(uncertainty.percentile_interval(values[1:], _CONFIDENCE)[0] > 0 if len(values) > 1 else values[0] > 0)


def _f9(table: pd.DataFrame, acc: Accuracies) -> list[dict[str, Any]]:
    """Layer-wise non-superiority of fine-tuned CLS over pre-trained mean pooling, where there is a gain."""
    checks = []
    for model, ft, head, task, pooling in _delta_scopes(table):
        if pooling != "cls" or not _has_gain(acc, model, ft, head, task):
            continue
        layers = [layer for layer in acc.layers(model, ft, head, task, "cls")
                  if layer in acc.layers(model, NO_FINETUNE, NO_FINETUNE, task, "mean")]
        pairs = [(acc.get(model, ft, head, task, "cls", layer), acc.get(model, NO_FINETUNE, NO_FINETUNE, task, "mean", layer))
                 for layer in layers]
        if not pairs:
            continue
        differences = np.stack(_aligned(*(a - b for a, b in (_aligned(x, y) for x, y in pairs))))  # (layers, 1 + R)
        worst = int(np.argmax(differences[:, 0]))
        checks.append(_check("F9", model, f"ft={ft}-{head}, probe_task={task}",
                             "max over layers of (fine-tuned CLS - pre-trained mean pooling) accuracy", "<=",
                             differences.max(axis=0), effect=margins.F9_MARGIN, interval=acc.label(paired=False),
                             note=f"largest at layer {layers[worst]}"))
    return checks


def _t_interval(values: np.ndarray) -> tuple[float, float, float]:
    """Mean and 95% t interval over seeds (NaN ends for one seed)."""
    values = np.asarray(values, dtype=np.float64)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, np.nan, np.nan
    half = stats.t.ppf(0.5 + _CONFIDENCE / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return mean, mean - half, mean + half


def _welch(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """Difference of means ``a - b`` and its 95% Welch t interval (NaN ends with fewer than 2 of either)."""
    estimate = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return estimate, np.nan, np.nan
    v1, v2 = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    dof = (v1 + v2) ** 2 / (v1**2 / (len(a) - 1) + v2**2 / (len(b) - 1)) if v1 + v2 > 0 else 1
    half = stats.t.ppf(0.5 + _CONFIDENCE / 2, dof) * np.sqrt(v1 + v2)
    return estimate, estimate - half, estimate + half


def _head_scope(mlm_head: str) -> tuple[str, str]:
    """The scope suffix and note of checks computed with a fitted masked-LM head (nothing for the pre-trained one)."""
    if mlm_head == MLM_HEAD_PRETRAINED:
        return "", ""
    return f", {mlm_head} MLM head", FITTED_HEAD_NOTE


def _pretrained_head_first(item: tuple[tuple[str, str, str, str], Any]) -> tuple:
    """Sort key of ``((model, ft task, head, MLM head), value)``: within a model and task the paper's head first."""
    (model, ft, head, mlm_head), _ = item
    return model, ft, head, mlm_head != MLM_HEAD_PRETRAINED, mlm_head


def _perplexity_rises(table: pd.DataFrame) -> dict[tuple[str, str, str, str], np.ndarray]:
    """(model, ft task, head, MLM head) -> per-seed perplexity rise, final epoch minus pre-trained."""
    plain = (rows := analysis.perplexity_rows(table))[rows["k_replaced"] == -1]
    pre = plain[plain["finetune_task"] == NO_FINETUNE].groupby(["model", "mlm_head"])["value"].mean()
    tuned = plain[(plain["finetune_task"] != NO_FINETUNE) & (plain["epoch"] > 0)]
    rises = {}
    for (model, ft, head, mlm_head), runs in tuned.groupby(["model", "finetune_task", "finetune_head", "mlm_head"]):
        if (model, mlm_head) in pre:
            final = runs.loc[runs.groupby("seed")["epoch"].idxmax()].sort_values("seed")
            rises[(model, ft, head, mlm_head)] = final["value"].to_numpy() - pre[(model, mlm_head)]
    return rises


def _f6(table: pd.DataFrame) -> list[dict[str, Any]]:
    checks = []
    rises = _perplexity_rises(table)
    one_seed = {"why_no_interval": "one seed", "interval": SEEDS_T, "unit": "perplexity"}
    for (model, ft, head, mlm_head), rise in sorted(rises.items(), key=_pretrained_head_first):
        mean, low, high = _t_interval(rise)
        suffix, note = _head_scope(mlm_head)
        checks.append(_check("F6", model, f"ft={ft}-{head}{suffix}", "perplexity after the last epoch - pre-trained",
                             ">", estimate=mean, low=low, high=high, note=note, **one_seed))
    for (model, ft, head, mlm_head), sst in sorted(rises.items(), key=_pretrained_head_first):
        cola = rises.get((model, "cola", head, mlm_head))
        if ft != "sst2" or cola is None:
            continue
        estimate, low, high = _welch(sst, cola)
        suffix, note = _head_scope(mlm_head)
        checks.append(_check("F6", model, f"head={head}{suffix}", "perplexity rise: SST-2 - CoLA", ">",
                             estimate=estimate, low=low, high=high, note=note,
                             **{**one_seed, "interval": "95% Welch t interval over seeds"}))
    return checks


def _f7(table: pd.DataFrame) -> list[dict[str, Any]]:
    """The last k <= L/4 layers restored recover more than ``F7_RECOVERY`` of the perplexity rise, and (where the
    run restored the first k layers too) more of it than the first k layers do."""
    rows = analysis.perplexity_rows(table)
    if "k_replaced" not in table:
        return []
    pre = rows[(rows["k_replaced"] == -1) & (rows["finetune_task"] == NO_FINETUNE)].groupby(
        ["model", "mlm_head"])["value"].mean()
    swapped = rows[(rows["k_replaced"] >= 0) & (rows["finetune_task"] != NO_FINETUNE)]
    checks = []
    groups = swapped.groupby(["model", "finetune_task", "finetune_head", "mlm_head"])
    for (model, ft, head, mlm_head), runs in sorted(groups, key=_pretrained_head_first):
        top, bottom = (runs[runs["replaced_layers"] == side] for side in ("top", "bottom"))
        if top.empty:
            continue
        depth = int(top["k_replaced"].max())
        k = max(1, int(np.floor(depth * margins.F7_DEPTH_FRACTION)))
        by_seed = top.pivot_table(index="seed", columns="k_replaced", values="value")
        if depth == 0 or (model, mlm_head) not in pre or k not in by_seed or 0 not in by_seed:
            continue
        suffix, head_note = _head_scope(mlm_head)
        scope = f"ft={ft}-{head}, k={k} of L={depth}{suffix}"
        recovered = (by_seed[0] - by_seed[k]).to_numpy()
        rise = (by_seed[0] - pre[(model, mlm_head)]).to_numpy()
        excess = recovered - margins.F7_RECOVERY * rise
        mean, low, high = _t_interval(excess[np.isfinite(excess)])
        share = float(np.nanmean(recovered) / np.nanmean(rise)) if abs(np.nanmean(rise)) > TIE else np.nan
        note = "; ".join(part for part in (f"recovered share {share:.2f}", head_note) if part)
        checks.append(_check("F7", model, scope,
                             f"perplexity recovered by the last {k} layers - {margins.F7_RECOVERY:g} x the rise", ">",
                             estimate=mean, low=low, high=high, unit="perplexity", interval=SEEDS_T,
                             why_no_interval="one seed", note=note))
        contrast = _first_k_contrast(by_seed, bottom, k)
        if contrast is not None:
            difference, last, first = contrast
            mean, low, high = _t_interval(difference)
            note = "; ".join(part for part in (f"recovered: last {k} layers {last:.2f}, first {k} layers {first:.2f}",
                                               head_note) if part)
            checks.append(_check("F7", model, scope,
                                 f"perplexity recovered by the last {k} layers - by the first {k} layers", ">",
                                 effect=margins.F7_FIRST_K_CONTRAST, estimate=mean, low=low, high=high,
                                 unit="perplexity", interval=SEEDS_T, why_no_interval="one seed", note=note))
    return checks


def _first_k_contrast(top_by_seed: pd.DataFrame, bottom: pd.DataFrame, k: int
                      ) -> tuple[np.ndarray, float, float] | None:
    """Per seed, the perplexity the last ``k`` layers recover minus what the first ``k`` recover; with the means
    of both. None when the run did not restore the first ``k`` layers of the same seeds (k and 0)."""
    if bottom.empty:
        return None
    by_seed = bottom.pivot_table(index="seed", columns="k_replaced", values="value")
    seeds = top_by_seed.index.intersection(by_seed.index)
    if k not in by_seed or 0 not in by_seed or seeds.empty:
        return None
    last = (top_by_seed.loc[seeds, 0] - top_by_seed.loc[seeds, k]).to_numpy()
    first = (by_seed.loc[seeds, 0] - by_seed.loc[seeds, k]).to_numpy()
    difference = last - first
    keep = np.isfinite(difference)
    return difference[keep], float(np.mean(last[keep])), float(np.mean(first[keep]))


def _entropies(rows: pd.DataFrame, layers: tuple[int, int]) -> pd.Series:
    """(finetune_task, head, seed) -> mean first-token entropy over ``layers`` (inclusive) and probing tasks."""
    own = rows[(rows["layer"] >= layers[0]) & (rows["layer"] <= layers[1])]
    return own.assign(seed=own["seed"].fillna(0)).groupby(["finetune_task", "finetune_head", "seed"])["value"].mean()


def _seeds_then_sentences(groups: Sequence[tuple[float, np.ndarray]], *, resamples: int,
                          seed: int) -> tuple[float, float, float]:
    """``sum_g sign_g * mean over seeds of mean over sentences`` with a two-level percentile bootstrap.

    Each resample draws the sentences (the same draw for every group: the model states saw the same
    sentences) and, per group, its fine-tuning seeds with replacement; with one seed this is the paired
    bootstrap over sentences.

    Args:
        groups: ``(sign, values)`` with values (S_g seeds, N sentences), one group per model state.
        resamples, seed: bootstrap settings.

    Returns:
        The estimate and its 95% interval.
    """
    rng = np.random.default_rng(seed)
    n = groups[0][1].shape[1]
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.float64)  # (R, N)
    replicates = np.zeros(resamples)
    for sign, values in groups:
        sentence_means = counts @ values.T / n  # (R, S_g)
        picks = rng.integers(0, values.shape[0], size=(resamples, values.shape[0]))
        replicates += sign * np.take_along_axis(sentence_means, picks, axis=1).mean(axis=1)
    estimate = float(sum(sign * values.mean() for sign, values in groups))
    low, high = uncertainty.percentile_interval(replicates, _CONFIDENCE)
    return estimate, low, high


def _f8_per_sentence(cell: attention_sentences.AttentionSentences, *, resamples: int,
                     seed: int) -> list[dict[str, Any]]:
    """F8 from one attention cell's per-sentence first-token entropies: seeds, then sentences, resampled."""
    pre = cell.arrays.get(f"entropy/{PRETRAINED_LABEL}")
    if pre is None:
        return []
    top = pre.shape[1]
    last = (max(1, top - margins.F8_LAST_LAYERS + 1), top)
    columns = slice(last[0] - 1, last[1])
    base = pre[:, columns].mean(axis=1)  # (N,)
    changes: dict[tuple[str, str], list[np.ndarray]] = {}  # (ft task, head) -> per seed (N,)
    for label, fields in sorted(cell.info.items(), key=lambda item: (str(item[1].get("seed", 0)), item[0])):
        values = cell.arrays.get(f"entropy/{label}")
        if values is None:
            continue
        key = (str(fields.get("finetune_task")), str(fields.get("finetune_head")))
        changes.setdefault(key, []).append(values[:, columns].mean(axis=1) - base)
    interval = "95% bootstrap over fine-tuning seeds, then sentences"
    checks = []
    for ft in sorted({task for task, _ in changes}):
        if (ft, "cls") not in changes:
            continue
        scope = f"ft={ft}, layers {last[0]}-{last[1]}"
        cls = np.stack(changes[(ft, "cls")])
        estimate, low, high = _seeds_then_sentences([(1.0, cls)], resamples=resamples, seed=seed)
        checks.append(_check("F8", cell.model, scope, "first-token entropy: CLS head - pre-trained", ">",
                             estimate=estimate, low=low, high=high, interval=interval, unit="entropy",
                             note=f"{cls.shape[0]} seed(s), {cls.shape[1]} sentences"))
        if (ft, "mean") in changes:
            mean = np.stack(changes[(ft, "mean")])
            estimate, low, high = _seeds_then_sentences([(1.0, cls), (-1.0, mean)], resamples=resamples, seed=seed)
            checks.append(_check("F8", cell.model, scope, "entropy change: CLS head - mean head", ">",
                                 estimate=estimate, low=low, high=high, interval=interval, unit="entropy",
                                 note=f"{cls.shape[0]} and {mean.shape[0]} seed(s), {cls.shape[1]} sentences"))
    return checks


def _f8(table: pd.DataFrame, attention_cells: Sequence[attention_sentences.AttentionSentences] = (), *,
        resamples: int = 1000, seed: int = 0) -> list[dict[str, Any]]:
    """First-token entropy over the last ``F8_LAST_LAYERS`` layers: CLS head vs pre-trained and vs mean head.

    A model whose attention cell kept per-sentence entropies gets intervals over seeds and sentences
    (:func:`_seeds_then_sentences`); otherwise the rows' means give t intervals over seeds (none for one seed).
    """
    checks = []
    for cell in attention_cells:
        checks += _f8_per_sentence(cell, resamples=resamples, seed=seed)
    with_sentences = {row["model"] for row in checks}
    rows = table[(table["stage"] == "attention") & (table["metric"] == "entropy")]
    if "position" in rows:
        rows = rows[rows["position"].astype(str) == "first"]
    seeds = {"unit": "entropy", "why_no_interval": "one seed (per-sentence entropies are not stored)"}
    for model, own in rows.groupby("model"):
        if model in with_sentences:
            continue
        top = int(own["layer"].max())
        last = (max(int(own["layer"].min()), top - margins.F8_LAST_LAYERS + 1), top)
        entropy = _entropies(own, last)
        if NO_FINETUNE not in entropy.index.get_level_values(0):
            continue
        base = float(entropy.loc[NO_FINETUNE].mean())
        scope_layers = f"layers {last[0]}-{last[1]}"
        for ft in sorted(set(entropy.index.get_level_values(0)) - {NO_FINETUNE}):
            heads = entropy.loc[ft]
            if "cls" not in heads.index.get_level_values(0):
                continue
            cls = heads.loc["cls"].to_numpy() - base
            mean, low, high = _t_interval(cls)
            checks.append(_check("F8", model, f"ft={ft}, {scope_layers}", "first-token entropy: CLS head - pre-trained",
                                 ">", estimate=mean, low=low, high=high, interval=SEEDS_T, **seeds))
            if "mean" in heads.index.get_level_values(0):
                estimate, low, high = _welch(cls, heads.loc["mean"].to_numpy() - base)
                checks.append(_check("F8", model, f"ft={ft}, {scope_layers}", "entropy change: CLS head - mean head",
                                     ">", estimate=estimate, low=low, high=high,
                                     interval="95% Welch t interval over seeds", **seeds))
    return checks


_NEEDS = {
    "F1": "pre-trained probing rows with both CLS and mean pooling (and dev accuracies)",
    "F2": "pre-trained probing of bigram_shift and of coordination_inversion or odd_man_out",
    "F3": "fine-tuned and pre-trained probing rows of the same probes",
    "F4": "CoLA-fine-tuned probing of bigram_shift with the pre-trained reference",
    "F5": "SST-2-fine-tuned probing of bigram_shift or odd_man_out with the pre-trained reference",
    "F6": "perplexity rows of the pre-trained and a fine-tuned encoder",
    "F7": "layer-replacement perplexity rows (k_replaced > 0) with the pre-trained perplexity",
    "F8": "first-token attention entropy of the pre-trained and a CLS-head fine-tuned encoder",
    "F9": "fine-tuning with a significant upper-layer CLS-pooling gain, and pre-trained mean-pooling probes",
}


def with_effects(checks: pd.DataFrame, effects: Mapping[tuple[str, str, str, str], float]) -> pd.DataFrame:
    """The checks re-judged with other effect sizes or margins, e.g. the paper's own per-cell effects.

    Args:
        checks: rows of :data:`CHECK_COLUMNS`.
        effects: ``(claim, model, scope, quantity)`` -> effect (>= 0, as :func:`judge` takes it); other
            checks keep theirs.

    Returns:
        A copy with ``effect``, ``verdict`` and ``reason`` replaced where ``effects`` has the check.
    """
    out = checks.copy()
    for index, row in out.iterrows():
        effect = effects.get((row["claim"], row["model"], row["scope"], row["quantity"]))
        if effect is None or row["verdict"] == NOT_COMPUTABLE:
            continue
        verdict, reason = judge(row["estimate"], row["ci_low"], row["ci_high"], row["direction"], float(effect),
                                mde=row["mde"], unit=row["unit"])
        # the notes after the verdict's own words stay (e.g. a noise floor); "underpowered" is re-derived
        notes = [part for part in row["reason"].split("; ")[1:] if not part.startswith("underpowered")]
        out.loc[index, ["effect", "verdict", "reason"]] = [float(effect), verdict, "; ".join([reason, *notes])]
    return out


def evaluate_claims(table: pd.DataFrame, cells: Sequence[predictions.CellPredictions] = (), *,
                    intervals: pd.DataFrame | None = None,
                    attention_cells: Sequence[attention_sentences.AttentionSentences] = (),
                    resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Every check of F1-F9 that the run allows; a ``not computable`` row for each finding it does not.

    Args:
        table: a run's results table (:func:`probeft.results.load_results`).
        cells: the run's loaded ``probe_predictions.npz`` (:func:`probeft.verdicts.delta_intervals.load_cell_predictions`).
        intervals: an exported run's ``delta_intervals.csv`` (:func:`probeft.verdicts.delta_intervals.load_delta_intervals`);
            used only without ``cells``. Without both the probing checks have point estimates only.
        attention_cells: the attention cells' per-sentence first-token statistics
            (:func:`probeft.results.attention_sentences.load_attention_cells`): F8 with intervals over
            seeds and sentences.
        resamples, seed: bootstrap settings (test set ``i`` in sha order uses ``seed + i``).

    Returns:
        Rows of :data:`CHECK_COLUMNS`, in claim order.
    """
    accuracies = Accuracies(table, cells, intervals=intervals, resamples=resamples, seed=seed)
    found = {"F1": _f1(table, accuracies), "F2": _f2(table, accuracies), "F3": _f3(table, accuracies),
             "F4": _f4(table, accuracies), "F5": _f5(table, accuracies), "F6": _f6(table), "F7": _f7(table),
             "F8": _f8(table, attention_cells, resamples=resamples, seed=seed), "F9": _f9(table, accuracies)}
    rows = []
    for claim in CLAIMS:
        rows += found[claim] or [_not_computable(claim, f"the run has no {_NEEDS[claim]}")]
    return pd.DataFrame(rows, columns=CHECK_COLUMNS)


def _mde_text(checks: pd.DataFrame) -> str:
    """The largest MDE of a finding's checks with an interval, per unit (accuracies in points)."""
    parts = []
    for unit, own in checks[np.isfinite(checks["mde"].astype(float))].groupby("unit", sort=False):
        top = float(own["mde"].max())
        parts.append(f"{100 * top:.1f} points" if unit == ACCURACY else f"{top:.2f} {unit}")
    return "; ".join(parts) or "-"


def summarise(checks: pd.DataFrame) -> pd.DataFrame:
    """One row per finding: *contradicted* if any check is, *supported* if all are, else *inconclusive*.

    ``mde`` is the largest minimum detectable effect among the finding's checks (per unit); ``reason`` counts
    the checks per verdict and how many inconclusive ones were underpowered.
    """
    rows = []
    for claim, finding in CLAIMS.items():
        own = checks[checks["claim"] == claim]
        computable = own[own["verdict"] != NOT_COMPUTABLE]
        counts = {v: int((computable["verdict"] == v).sum()) for v in (SUPPORTED, CONTRADICTED, INCONCLUSIVE)}
        if computable.empty:
            verdict, reason = NOT_COMPUTABLE, "; ".join(own["reason"]) or "not evaluated"
        else:
            verdict = (CONTRADICTED if counts[CONTRADICTED] else SUPPORTED if counts[SUPPORTED] == len(computable)
                       else INCONCLUSIVE)
            reason = ", ".join(f"{n} {v}" for v, n in counts.items() if n)
            weak = int(computable["reason"].str.contains("underpowered").sum())
            reason += f" ({weak} underpowered)" if weak else ""
            if (computable["interval"] == "none").all():
                reason += "; point estimates only"
            fitted = int(computable["reason"].str.contains(FITTED_HEAD_NOTE, regex=False).sum())
            if fitted:  # the summary row must not read as the paper's own setup
                reason += f"; {'all' if fitted == len(computable) else fitted} with a fitted MLM head (an analogue)"
        rows.append({"claim": claim, "finding": finding, "checks": len(computable), **counts, "verdict": verdict,
                     "mde": _mde_text(computable), "reason": reason})
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
            cells are gone), ``"exported"`` (recomputed from an exported run's ``delta_intervals.csv`` and
            results table, when its ``claims.csv`` is absent or has older columns) or ``"point estimates"``
            (none of these: verdicts from point estimates only).
        note: one sentence saying so, for the reader.
    """

    checks: pd.DataFrame
    source: str
    note: str


def _stored(path: Path) -> tuple[pd.DataFrame | None, str]:
    """A run's ``claims.csv`` and a note: None when absent or written with older columns (stale)."""
    try:
        return load_claims(path), ""
    except ValueError:
        return None, f" ({path.name} had older columns and was not used)"


def claims_of_run(run_dir: str | Path, *, resamples: int = 1000, seed: int = 0,
                  point_estimates: bool = False) -> RunClaims:
    """The paper's findings on a run, from the same function and inputs as the grid's ``claims.csv``.

    The complete cells' ``probe_predictions.npz`` (and attention cells' per-sentence statistics) give
    bootstrap intervals, as the grid's gather step computes them; an exported run holds the same files
    under ``per_sentence/`` (``probeft export``) and is recomputed from them. An older export without
    them keeps its stored ``claims.csv``, or, when that is absent or stale, is recomputed from its
    ``delta_intervals.csv``; only without any of these, or
    when asked (``point_estimates``), are the verdicts computed from the results table's point estimates.

    Raises:
        FileNotFoundError: the run has no ``results.csv``.
    """
    run_dir = Path(run_dir)
    table = results.load_results(run_dir / results.RESULTS_FILE)
    complete = [d for d in sorted((run_dir / "cells").glob("*")) if results.cell_complete(d)]
    # An exported run has no cells, but may keep their per-sentence files (probeft export): the same inputs.
    exported = [] if complete else sorted(d for d in (run_dir / results.PER_SENTENCE_DIR).glob("*") if d.is_dir())
    cells = delta_intervals.load_cell_predictions(complete or exported)
    options = {"resamples": resamples, "seed": seed}
    attention_cells = attention_sentences.load_attention_cells(complete or exported)
    if point_estimates:
        return RunClaims(evaluate_claims(table, [], **options), "point estimates",
                         "POINT ESTIMATES ONLY (asked for): no intervals, so noise can decide a verdict")
    if cells or ((complete or exported) and attention_cells):
        where = f", exported with the run ({run_dir / results.PER_SENTENCE_DIR})" if exported else ""
        return RunClaims(evaluate_claims(table, cells, attention_cells=attention_cells, **options), "computed",
                         f"95% bootstrap intervals from the per-sentence predictions of "
                         f"{len(cells) + len(attention_cells)} complete cells{where}")
    stored, stale = _stored(run_dir / CLAIMS_FILE)
    if stored is not None:
        return RunClaims(stored, "stored", f"{run_dir / CLAIMS_FILE}: the verdicts computed with intervals and stored "
                         "with the run (an exported run); the book shows the same")
    intervals = delta_intervals.load_delta_intervals(run_dir / delta_intervals.DELTA_INTERVALS_FILE)
    if intervals is not None:
        return RunClaims(evaluate_claims(table, [], intervals=intervals, **options), "exported",
                         f"intervals from the exported {delta_intervals.DELTA_INTERVALS_FILE} and results table "
                         f"(contrasts of two probes unpaired, conservative){stale}")
    return RunClaims(evaluate_claims(table, [], **options), "point estimates",
                     "POINT ESTIMATES ONLY (no cells' per-sentence predictions, no stored claims.csv and no "
                     f"delta_intervals.csv): no intervals, so noise can decide a verdict{stale}")


def load_claims(path: str | Path) -> pd.DataFrame | None:
    """Read a ``claims.csv``; None when absent.

    Raises:
        ValueError: the file lacks columns of :data:`CHECK_COLUMNS` (names the file).
    """
    path = Path(path)
    if not path.is_file():
        return None
    # Empty means NaN only in the numbers; an empty model or scope (a not-computable row) stays "".
    numbers = ("effect", "estimate", "ci_low", "ci_high", "mde")
    checks = pd.read_csv(path, keep_default_na=False, na_values={c: [""] for c in numbers})
    missing = [c for c in CHECK_COLUMNS if c not in checks.columns]
    if missing:
        raise ValueError(f"{path}: not a claims table of this version, missing column(s) {missing}")
    for column in ("claim", "model", "scope", "quantity", "direction", "interval", "unit", "verdict", "reason"):
        checks[column] = checks[column].astype(str)
    for column in numbers:
        checks[column] = checks[column].astype(float)
    return checks[CHECK_COLUMNS]
