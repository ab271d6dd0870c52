"""The padded bidirectional LSTM must equal ``nn.LSTM`` on packed rows at every real token."""

import warnings

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from stage2_train.bilstm import bidirectional_lstm, reversal_index
from stage2_train.optim import adamw

LENGTHS = [7, 1, 5, 7, 3]


def _packed_reference(lstm: nn.LSTM, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    packed = pack_padded_sequence(inputs, lengths, batch_first=True, enforce_sorted=False)
    output, _ = lstm(packed)
    return pad_packed_sequence(output, batch_first=True, total_length=inputs.shape[1])[0]


def _valid(lengths: torch.Tensor, width: int) -> torch.Tensor:
    return (torch.arange(width)[None, :] < lengths[:, None]).unsqueeze(-1)


def _setup(seed: int = 0) -> tuple[nn.LSTM, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    lstm = nn.LSTM(6, 4, batch_first=True, bidirectional=True)
    lengths = torch.tensor(LENGTHS)
    inputs = torch.randn(len(LENGTHS), max(LENGTHS), 6)
    return lstm, inputs, lengths


def test_reversal_index_reverses_within_each_length_and_is_its_own_inverse():
    index = reversal_index(torch.tensor([3, 1, 4]), 4)
    assert index.tolist() == [[2, 1, 0, 3], [0, 1, 2, 3], [3, 2, 1, 0]]
    assert torch.equal(index.gather(1, index), torch.arange(4).expand(3, 4))


def test_outputs_match_packed_lstm_at_real_tokens():
    lstm, inputs, lengths = _setup()
    valid = _valid(lengths, inputs.shape[1])
    expected = _packed_reference(lstm, inputs, lengths)
    got = bidirectional_lstm(lstm, inputs, lengths)
    assert got.shape == expected.shape
    torch.testing.assert_close(got * valid, expected * valid, atol=1e-6, rtol=1e-5)


def test_padding_does_not_leak_into_real_tokens():
    lstm, inputs, lengths = _setup()
    valid = _valid(lengths, inputs.shape[1])
    noisy = torch.where(valid, inputs, torch.full_like(inputs, 50.0))
    clean = bidirectional_lstm(lstm, inputs, lengths)
    torch.testing.assert_close(bidirectional_lstm(lstm, noisy, lengths) * valid, clean * valid)


def test_gradients_match_packed_lstm():
    lstm, inputs, lengths = _setup(seed=1)
    valid = _valid(lengths, inputs.shape[1])
    weights = torch.randn(len(LENGTHS), inputs.shape[1], 8)

    def grads(run) -> list[torch.Tensor]:
        x = inputs.clone().requires_grad_(True)
        lstm.zero_grad()
        (run(x) * valid * weights).sum().backward()
        return [x.grad.clone()] + [p.grad.clone() for p in lstm.parameters()]

    expected = grads(lambda x: _packed_reference(lstm, x, lengths))
    got = grads(lambda x: bidirectional_lstm(lstm, x, lengths))
    for want, have in zip(expected, got, strict=True):
        torch.testing.assert_close(have, want, atol=1e-5, rtol=1e-4)


def test_int8_lstm_stays_close_to_float():
    lstm, inputs, lengths = _setup()
    valid = _valid(lengths, inputs.shape[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        int8 = torch.ao.quantization.quantize_dynamic(
            nn.Sequential(lstm), {nn.LSTM}, dtype=torch.qint8
        )[0]
    with torch.inference_mode():
        got = bidirectional_lstm(int8, inputs, lengths) * valid
        expected = _packed_reference(lstm, inputs, lengths) * valid
    assert type(int8) is not nn.LSTM
    assert (got - expected).abs().max() < 0.05


def test_rejects_stacked_lstm():
    stacked = nn.LSTM(6, 4, num_layers=2, batch_first=True, bidirectional=True)
    with pytest.raises(ValueError, match="one-layer"):
        bidirectional_lstm(stacked, torch.zeros(1, 2, 6), torch.tensor([2]))


def test_adamw_is_fused_for_cpu_float_parameters():
    layer = nn.Linear(3, 2)
    optimizer = adamw([{"params": list(layer.parameters())}], lr=0.1)
    assert optimizer.defaults["fused"] is True
    before = layer.weight.detach().clone()
    layer(torch.ones(4, 3)).sum().backward()
    optimizer.step()
    assert not torch.equal(before, layer.weight)


def test_adamw_falls_back_when_a_parameter_cannot_be_fused():
    meta = nn.Parameter(torch.empty(2, 2, device="meta"))
    assert adamw([{"params": [meta]}], lr=0.1).defaults["fused"] is False
