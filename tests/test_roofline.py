"""bench/roofline.py: the analytic FLOP counts agree with PyTorch's own counter; the probe runs."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from bench.roofline import matmul_peak, roofline, student_flops, teacher_flops


def test_teacher_flops_match_pytorchs_counter(tiny_teacher_dir) -> None:
    from transformers import AutoModel

    # eager attention: its products are plain matmuls, which the counter sees (SDPA's are not)
    model = AutoModel.from_pretrained(str(tiny_teacher_dir), attn_implementation="eager").eval()
    for length, rows in ((7, 3), (19, 2)):
        ids = torch.randint(5, model.config.vocab_size, (rows, length))
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(input_ids=ids, attention_mask=torch.ones_like(ids))
        assert teacher_flops([length] * rows, model.config) == counter.get_total_flops()


def test_student_flops_count_the_lstm_steps() -> None:
    from stage2_train.config import StudentConfig

    config = StudentConfig(hidden_size=8, embed_dim=12, embed_proj=4, vocab_size=50)
    # per token: projection 12·4, one layer two directions of 4 gates × (4 + 8) × 8
    per_token = 12 * 4 + 2 * 4 * (4 + 8) * 8
    per_sentence = config.pooled_width * config.output_dim
    assert student_flops([3, 5], config) == 2 * (8 * per_token + 2 * per_sentence)


def test_peak_probe_and_share() -> None:
    peak = matmul_peak("fp32", size=128, repeats=2)
    assert peak["peak"] == max(v for k, v in peak.items() if k != "peak") > 0
    figure = roofline(flops=4_000_000_000, seconds=2.0, peak_gflops=8.0)
    assert figure["achieved_gflops"] == 2.0 and figure["share_of_peak"] == 0.25
