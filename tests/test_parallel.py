"""Full (unsharded, name-keyed) state dicts: the checkpoint format of every launch."""

import pytest
import torch
from torch import nn

from unisurg.training.parallel import (
    full_model_state,
    full_optimizer_state,
    load_full_model_state,
    load_full_optimizer_state,
    prefixed,
)


def _trained() -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4))
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2)
    m(torch.randn(5, 3)).pow(2).sum().backward()
    opt.step()
    return m, opt


def test_model_and_optimizer_state_round_trip_exactly():
    m, opt = _trained()
    state, ostate = full_model_state(m), full_optimizer_state(m, opt)
    assert set(ostate["state"]) == {"0.weight", "0.bias", "1.weight", "1.bias"}  # by name, not position
    m2 = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4))
    opt2 = torch.optim.AdamW(m2.parameters(), lr=1e-2)
    load_full_model_state(m2, state)
    load_full_optimizer_state(m2, opt2, ostate)
    for a, b in zip(m.parameters(), m2.parameters()):
        assert torch.equal(a, b)
    assert torch.equal(opt.state_dict()["state"][0]["exp_avg_sq"], opt2.state_dict()["state"][0]["exp_avg_sq"])


def test_loading_is_strict_and_names_the_keys():
    m, _ = _trained()
    state = full_model_state(m)
    bad = {k: v for k, v in state.items() if k != "0.bias"} | {"0.bais": state["0.bias"]}
    with pytest.raises(KeyError, match=r"missing \['0.bias'\], unexpected \['0.bais'\]"):
        load_full_model_state(m, bad)


def test_prefixed_selects_one_submodule():
    assert prefixed({"encoder.a": 1, "encoderx.b": 2, "predictor.c": 3}, "encoder") == {"a": 1}
