"""Every effect size, margin and power setting the claims checks use, stated once and justified here.

The paper's per-cell numbers (Tables 2 and 5) are not in this workplace, so a check cannot compare a run with
the paper's own effect in that cell. Instead each finding gets the smallest effect its wording commits to, as a
margin below. A check takes its effect as an argument (:func:`probeft.verdicts.claims.judge`, ``effect=``), so a
per-cell value from the paper can replace a margin later without changing the verdict rule.

Units: accuracies as fractions (0.02 = 2 points); perplexity and entropy in their own units.

Decisions (:func:`probeft.verdicts.claims.judge`):
    * A directional claim ("raises", "improves") with effect ``E`` >= 0 is *supported* when the 95% interval
      lies on the claimed side of 0, *contradicted* when it excludes ``E`` (the run rules out an effect as
      large as claimed, or shows the opposite direction), and *inconclusive* otherwise.
    * A bounded claim ("does not exceed", "much less") with margin ``m`` is *supported* when the interval lies
      below ``m``, *contradicted* when it lies above ``m``, and *inconclusive* otherwise (a non-superiority
      test, one of the two one-sided tests of TOST).
    * The minimum detectable effect (:func:`probeft.verdicts.power.minimum_detectable_effect`) at
      :data:`ALPHA` and :data:`POWER` says whether an inconclusive check could have decided: when it exceeds
      the effect or margin, the run is too small and the reason says "underpowered".

Each constant's docstring below is its justification; :func:`margins_table` lists them for the book, so the
values and reasons are written once, here.
"""

from __future__ import annotations

import ast
import inspect
import re
import sys

import pandas as pd

__all__ = ["margins_table", "ALPHA", "CKA_EFFECT", "CONFIDENCE", "DIRECTION_ONLY", "EFFECT", "F3_TREND", "F4_RATIO",
           "F7_DEPTH_FRACTION", "F7_FIRST_K_CONTRAST", "F7_RECOVERY", "F8_LAST_LAYERS", "F9_MARGIN", "POWER"]

CONFIDENCE = 0.95
"""Every interval is a 95% interval (two-sided), as the grid's ``delta_intervals.csv``."""

ALPHA = 0.05
"""Two-sided level of the minimum detectable effect, matching :data:`CONFIDENCE`."""

POWER = 0.80
"""Power of the minimum detectable effect: the conventional 80% (Cohen 1988)."""

EFFECT = 0.02
"""The smallest accuracy change that counts as an effect of a probing finding: 2 points.

Used where a finding says "raises", "lowers", "improves" or "easier" (F1, F2, F4 CLS half, F5). The audit
notes that the paper itself calls some cells' changes "not substantial" (the paper's full sentence is not in
this workplace), while the effects it discusses are far larger (MPNet CoLA CLS gain +11.4 points in the upper
layers). Two points is six sentences at n = 300: the smallest change a reader of the paper's tables would
call a change. A run whose interval lies below it "contradicts" a claimed effect.
"""

DIRECTION_ONLY = 0.0
"""Effect of findings that state a direction and no size (F3's share and CKA tests, F6, F7, F8): a run
contradicts them only with an interval on the opposite side of 0."""

F3_TREND = 0.01
"""F3: the least rise of per-layer |Delta| from the bottom to the top layer, above the noise floor: 1 point.

The audit measures MPNet's per-layer |Delta| rising from 0.15 to 3.7 points; "fine-tuning changes mostly
the upper layers" (paraphrase) needs at least a point of extra change at the top, half of :data:`EFFECT`
because it is a difference of two small |Delta|s.
"""

CKA_EFFECT = DIRECTION_ONLY
"""F3: the upper group holds more than its share of layers of the total 1 - CKA (representation change):
direction only."""

F4_RATIO = 0.5
"""F4: "much less under mean pooling" = the mean-pooling gain is below half the CLS-pooling gain.

The audit reads the paper's ratios (mean-pooling gain / CLS-pooling gain, CoLA, bigram shift) as 0.19-0.33.
A margin of 0.5 leaves room above the largest of them while still meaning "much less"; MPNet's 0.60 (audit)
lies above it. The check is ``Delta_mean - F4_RATIO * Delta_CLS <= 0`` (a difference, so its interval
exists where the ratio's would not: the CLS gain can be near 0).
"""

F7_DEPTH_FRACTION = 0.25
"""F7: "the last few layers" = at most a quarter of the depth (k <= L/4, at least 1): 3 of 12, 1 of 6."""

F7_RECOVERY = 0.5
"""F7: replacing the last k <= L/4 layers by pre-trained ones recovers "most" of the perplexity rise:
more than half of it."""

F7_FIRST_K_CONTRAST = DIRECTION_ONLY
"""F7 contrast (issue 26): restoring the last k <= L/4 layers recovers more of the perplexity rise than restoring
the first k: direction only.

The paper reports top-k replacement alone, so it commits to no size for the contrast; what makes "the last
layers carry the rise" more than "any k layers would do" is only the sign of (recovered by the last k) - (recovered
by the first k), paired by fine-tuning seed. Direction only, as F6: a run contradicts it only when the first k
layers recover significantly more.
"""

F8_LAST_LAYERS = 3
"""F8: the paper's attention-entropy finding concerns the last three layers (audit; paraphrase)."""

F9_MARGIN = 0.02
"""F9: non-superiority margin of fine-tuned CLS pooling over pre-trained mean pooling: 2 points (:data:`EFFECT`).

"The gains under CLS pooling do not exceed the pre-trained mean-pooling baseline" holds when, at every layer,
fine-tuned CLS pooling is at most 2 points above pre-trained mean pooling at that layer (the interval of the
largest layer-wise difference lies below the margin); it is contradicted when that interval lies above it
(the audit's MPNet CoLA example: +16.7 points at layer 12). Checked only where fine-tuning gave a gain
(the upper-group CLS Delta is significantly positive).
"""


def margins_table() -> pd.DataFrame:
    """Every constant of this module with its value and its docstring (the justification), in source order.

    Returns:
        Columns ``name, value, justification``; the docstring's paragraphs joined into one line.
    """
    tree = ast.parse(inspect.getsource(sys.modules[__name__]))
    module = sys.modules[__name__]
    rows = []
    for node, after in zip(tree.body, tree.body[1:]):
        if (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) and node.targets[0].id.isupper()
                and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)):
            name = node.targets[0].id
            text = " ".join(inspect.cleandoc(after.value.value).split())
            # Plain text for the page: ``literal`` and :role:`name` markup read as their words.
            text = re.sub(r":\w+:`~?([^`]+)`", r"\1", text).replace("``", "")
            rows.append({"name": name, "value": getattr(module, name), "justification": text})
    return pd.DataFrame(rows, columns=["name", "value", "justification"])
