"""Host round trips per decode step (issue 29). Every device-to-host read on the decode path
goes through ops::to_host, which counts it (on a GPU each one is a synchronisation); the CPU
path reads at the same points, so the count per step is asserted here, on the CPU, for
every method, greedy and sampled. The goal, at most 2 per step for every method, is met;
HOST_READS says where each method stands (and the README lists where each read is)."""

from __future__ import annotations

import pytest
from decoding import GREEDY, SAMPLED

import mtad_ext

# method -> reads per step as a function of gamma (the draft length; width does not matter).
HOST_READS = {
    "ar": lambda gamma: 1,  # the sampled token
    "aded": lambda gamma: 1,  # tree_accept / tree_sample: path and next token in one copy
    "sps": lambda gamma: 1,  # sps_accept's result and the drafted tokens in one copy
    # the beam tree once after the last depth (beam_step_padded reads nothing per depth);
    # verify's header, path and bonus in one copy
    "mtad": lambda gamma: 2,
    "mtad-tree": lambda gamma: 2,
}


# The draft keeps at most 2 tokens per row: with width 3 some beams die at every depth.
NARROW_DRAFT = dict(SAMPLED, draft_temperature=1.0, draft_top_k=2, draft_top_p=1.0)


def decoder(tiny: dict, method: str, gamma: int, sampling: dict) -> mtad_ext.Decoder:
    target, draft = tiny["llama_gqa_tied"], tiny["opt_pre_ln"]
    if method in ("ar", "aded"):
        return mtad_ext.Decoder(target, method=method, capacity=256, seed=3, **sampling)
    return mtad_ext.Decoder(target, draft, method=method, gamma=gamma, width=3, seed=3, capacity=256, **sampling)


@pytest.mark.parametrize("sampling", [GREEDY, SAMPLED], ids=["greedy", "sampled"])
@pytest.mark.parametrize("gamma", [1, 3])
@pytest.mark.parametrize("method", sorted(HOST_READS))
def test_host_reads_per_step(tiny, method: str, gamma: int, sampling: dict) -> None:
    if method in ("ar", "aded") and gamma != 1:
        pytest.skip("no draft length")
    dec = decoder(tiny, method, gamma, sampling)
    dec.start([5, 17, 42, 9])
    before = mtad_ext._host_reads()
    steps = 8
    for _ in range(steps):
        dec.step()
        assert dec.last_stats["host_reads"] == HOST_READS[method](gamma), (method, dec.last_stats)
    # The module's counter agrees with the per-step stat (nothing on the path escapes it).
    assert mtad_ext._host_reads() - before == steps * HOST_READS[method](gamma)
    assert dec.total_stats["host_reads"] == steps * HOST_READS[method](gamma)


@pytest.mark.parametrize("sampling", [GREEDY, SAMPLED, NARROW_DRAFT], ids=["greedy", "sampled", "narrow-draft"])
@pytest.mark.parametrize("gamma", [1, 4, 8])
@pytest.mark.parametrize("method", sorted(HOST_READS))
def test_at_most_two_reads_per_step(tiny, method: str, gamma: int, sampling: dict) -> None:
    """The goal, met by every method: at most 2 reads per step, whatever the draft length
    (and with beams dying, the narrow draft keeping fewer tokens than the beam width)."""
    if method in ("ar", "aded") and gamma != 1:
        pytest.skip("no draft length")
    dec = decoder(tiny, method, gamma, sampling)
    dec.start([1, 2, 3])
    steps = 0
    while len(dec.tokens) < 3 + 24:
        dec.step()
        steps += 1
        assert dec.last_stats["host_reads"] <= 2, dec.last_stats
    assert dec.total_stats["host_reads"] <= 2 * steps


def test_an_ar_step_of_gamma_auto_reads_once(tiny) -> None:
    target, draft = tiny["llama_gqa_tied"], tiny["opt_pre_ln"]
    dec = mtad_ext.Decoder(target, draft, method="sps", gamma="auto", seed=1, capacity=256, **GREEDY)
    dec.start([5, 17, 42, 9])
    for _ in range(10):
        dec.step()
        s = dec.last_stats
        assert s["host_reads"] == (1 if s["drafted"] == 0 else HOST_READS["sps"](s["drafted"])), s


def test_model_forward_on_host_inputs_reads_nothing(tiny) -> None:
    import torch

    model = tiny["llama_gqa_tied"]
    cache = model.new_cache(16)
    before = mtad_ext._host_reads()
    model.forward(cache, torch.tensor([1, 2, 3]))
    assert mtad_ext._host_reads() == before
