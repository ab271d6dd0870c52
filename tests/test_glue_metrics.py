"""GLUE metrics on hand-checked cases, and the leaderboard's averaging on published numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from data.glue import TASKS
from stage3_eval.glue.metrics import glue_score, predictions, task_metrics

GOLD = np.array([1, 1, 0, 0])
# predicts class 1 once (right), class 0 three times: TP 1, FN 1, TN 2, FP 0
LOGITS = np.array([[0.1, 0.9], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4]])


def test_classification_metrics_by_hand():
    assert task_metrics(TASKS["sst2"], GOLD, LOGITS) == {"accuracy": 0.75}
    mrpc = task_metrics(TASKS["mrpc"], GOLD, LOGITS)
    assert mrpc["f1"] == pytest.approx(2 / 3) and mrpc["accuracy"] == 0.75
    cola = task_metrics(TASKS["cola"], GOLD, LOGITS)
    assert cola["matthews"] == pytest.approx(2 / math.sqrt(12))  # (TP·TN−FP·FN)/√(…)


def test_three_way_accuracy_uses_argmax():
    logits = np.eye(3)[[0, 1, 2, 2]]
    assert task_metrics(TASKS["mnli"], np.array([0, 1, 2, 0]), logits) == {"accuracy": 0.75}


def test_regression_metrics():
    gold = np.array([0.0, 1.0, 2.0, 3.0, 5.0])
    monotone = (gold**3).reshape(-1, 1)  # same ranks, not linear
    scores = task_metrics(TASKS["stsb"], gold, monotone)
    assert scores["spearman"] == pytest.approx(1.0)
    assert 0.8 < scores["pearson"] < 0.99
    flat = task_metrics(TASKS["stsb"], gold, np.ones((5, 1)))
    assert flat == {"pearson": 0.0, "spearman": 0.0}
    assert predictions(TASKS["stsb"], monotone).shape == (5,)


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="4 gold labels but 3"):
        task_metrics(TASKS["sst2"], GOLD, LOGITS[:3])


def test_glue_score_matches_the_leaderboard_for_bert_base():
    """BERT-base's GLUE test results (Devlin et al. 2019, table 1) average to its score 78.3."""

    def acc(value):
        return {"accuracy": value}

    per_task = {
        "cola": {"cola": {"matthews": 52.1}},
        "sst2": {"sst2": acc(93.5)},
        "mrpc": {"mrpc": {"f1": 88.9, "accuracy": 84.8}},
        "stsb": {"stsb": {"pearson": 87.1, "spearman": 85.8}},
        "qqp": {"qqp": {"f1": 71.2, "accuracy": 89.2}},
        "mnli": {"mnli-m": acc(84.6), "mnli-mm": acc(83.4)},
        "qnli": {"qnli": acc(90.5)},
        "rte": {"rte": acc(66.4)},
        "wnli": {"wnli": acc(65.1)},
    }
    assert glue_score(per_task) == pytest.approx(78.3, abs=0.05)
    with pytest.raises(ValueError):
        glue_score({})
