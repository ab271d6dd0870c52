"""GLUE's metrics, computed as the benchmark computes them (scikit-learn and scipy, no formulas).

Values are on the library's scale (accuracy in [0, 1], correlations in [-1, 1]); tables multiply
by 100 as GLUE papers print them. The GLUE score follows the leaderboard: a task with several
metrics (MRPC, QQP: F1 and accuracy; STS-B: Pearson and Spearman) counts as their mean, MNLI
as the mean of its matched and mismatched accuracy, and the score is the mean over tasks.
scikit-learn and scipy are imported when a metric is first computed: the CLI, which reads the
GLUE defaults from this package, then starts without them.
"""

from __future__ import annotations

import numpy as np

from data.glue import GlueTask


def _accuracy(gold: np.ndarray, pred: np.ndarray) -> float:
    from sklearn.metrics import accuracy_score

    return float(accuracy_score(gold, pred))


def _f1(gold: np.ndarray, pred: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(gold, pred, pos_label=1, zero_division=0.0))


def _matthews(gold: np.ndarray, pred: np.ndarray) -> float:
    from sklearn.metrics import matthews_corrcoef

    return float(matthews_corrcoef(gold, pred))


def _pearson(gold: np.ndarray, pred: np.ndarray) -> float:
    from scipy.stats import pearsonr

    return float(pearsonr(gold, pred)[0]) if np.ptp(pred) > 0 else 0.0


def _spearman(gold: np.ndarray, pred: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(gold, pred)[0]) if np.ptp(pred) > 0 else 0.0


METRICS = {
    "accuracy": _accuracy,
    "f1": _f1,
    "matthews": _matthews,
    "pearson": _pearson,
    "spearman": _spearman,
}


def predictions(task: GlueTask, outputs: np.ndarray) -> np.ndarray:
    """Class ids (argmax of the logits) or, for regression, the predicted scores."""
    outputs = np.asarray(outputs)
    if task.is_regression:
        return outputs.reshape(-1).astype(np.float64)
    return outputs.argmax(axis=-1)


def task_metrics(task: GlueTask, gold: np.ndarray, outputs: np.ndarray) -> dict[str, float]:
    """``{metric: value}`` for one evaluated split, from the model's raw outputs.

    A constant prediction has no defined correlation; it scores 0, as a useless model should.
    """
    pred = predictions(task, outputs)
    gold = np.asarray(gold)
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold labels but {len(pred)} predictions")
    return {name: METRICS[name](gold, pred) for name in task.metrics}


def task_score(scores: dict[str, dict[str, float]]) -> float:
    """One number per task from ``{split: {metric: value}}``: the mean of every value."""
    values = [v for split in scores.values() for v in split.values()]
    return float(np.mean(values))


def glue_score(per_task: dict[str, dict[str, dict[str, float]]]) -> float:
    """The leaderboard's macro-average over the tasks given (``{task: {split: {metric: v}}}``)."""
    if not per_task:
        raise ValueError("no task scores to average")
    return float(np.mean([task_score(scores) for scores in per_task.values()]))
