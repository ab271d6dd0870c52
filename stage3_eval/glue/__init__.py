"""GLUE fine-tuning (``pipeline eval glue``): one encoder, every task, the same head and budget.

The modules in the order the data flows through them:

* ``data.glue`` reads a task's TSV files into ``GlueSplit``s (the data layer);
* ``augment``: Tang et al.'s synthetic, unlabelled copies of a train split (for KD);
* ``pos``: the Penn tags and per-tag word counts that augmentation's POS rule draws from;
* ``encoders``: which encoder ``--model`` names, built fresh for every (task, seed);
* ``model``: that encoder plus a GLUE head, and how a fine-tuned one is saved and reloaded;
* ``train``: the fine-tuning loop and batched prediction (``FineTuneConfig``);
* ``kd``: a fine-tuned teacher's outputs on the augmented train set, the distillation targets;
* ``run``: every (task, seed) from encoder to recorded results, resumably;
* ``metrics``: GLUE's metrics and score on the predictions;
* ``report``: the results of several models side by side;
* ``submit``: test-set predictions as GLUE server submission files.
"""

from stage3_eval.glue.augment import AugmentConfig
from stage3_eval.glue.encoders import EncoderFactory
from stage3_eval.glue.metrics import glue_score, task_metrics, task_score
from stage3_eval.glue.model import META_FILE, load_finetuned, save_finetuned
from stage3_eval.glue.report import SUMMARY_MARK, SUMMARY_MD, glue_entries, summary_table
from stage3_eval.glue.run import GlueRunConfig, GlueRunner, plan_tasks
from stage3_eval.glue.train import FineTuneConfig

__all__ = [
    "META_FILE",
    "SUMMARY_MARK",
    "SUMMARY_MD",
    "AugmentConfig",
    "EncoderFactory",
    "FineTuneConfig",
    "GlueRunConfig",
    "GlueRunner",
    "glue_entries",
    "glue_score",
    "load_finetuned",
    "plan_tasks",
    "save_finetuned",
    "summary_table",
    "task_metrics",
    "task_score",
]
