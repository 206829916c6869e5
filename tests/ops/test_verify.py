"""verify (algorithms.md 3.2 / 3.3) and sps_accept (section 2) against plain Python
implementations that draw the same counter-based uniforms, plus SpS's losslessness
measured on a tiny vocabulary."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from dist_stats import chi_square
from reference.rng import uniform
from reference.verify import VerifyRef, draw, ref_normalize, reference_sps, reference_verify

from mtad_ext import ops

# ---- the engine's counter-based uniforms (csrc/ops/rng.h, replicated in tests/reference/rng.py) ---


def test_uniform_is_in_open_unit_interval_and_spread() -> None:
    us = [uniform(3, c) for c in range(4000)]
    assert all(0.0 < u < 1.0 for u in us)
    assert abs(sum(us) / len(us) - 0.5) < 0.02


# ---- verify --------------------------------------------------------------------------


def call_verify(
    logits: torch.Tensor,
    parents: list[int],
    tokens: list[int],
    best_lq: list[float],
    tau: float,
    params: tuple[float, int, float],
    seed: int,
    offset: int,
    device: str = "cpu",
) -> dict:
    t, k, p = params
    return ops.verify(
        logits.to(device),
        torch.tensor(parents, dtype=torch.int64, device=device),
        torch.tensor(tokens, dtype=torch.int64, device=device),
        torch.tensor(best_lq, dtype=torch.float32, device=device),
        tau,
        t,
        k,
        p,
        seed,
        offset,
    )


def assert_matches(got: dict, want: VerifyRef) -> None:
    assert got["accept_len"] == want.accept_len
    assert got["accept_node"] == want.accept_node
    assert got["path"].dtype == torch.int64
    assert got["path"].tolist() == want.path
    assert got["bonus_token"] == want.bonus_token
    lp = got["node_logprob"]
    assert lp.dtype == torch.float32 and lp.shape == want.node_logprob.shape
    torch.testing.assert_close(lp.cpu().double(), want.node_logprob, atol=1e-5, rtol=1e-5)


def random_tree(g: torch.Generator, kind: str, depth_g: int) -> list[int]:
    """Parent pointers: a chain (single-draft MTAD), MTAD's W x gamma beam tree, or any
    tree whose parents precede their children, at most depth_g deep."""
    if kind == "chain":
        return list(range(-1, depth_g - 1))
    if kind == "beams":
        width = int(torch.randint(1, 5, (1,), generator=g))
        parents = [-1] * width
        for d in range(1, depth_g):
            prev = range((d - 1) * width, d * width)
            parents += [prev[int(torch.randint(0, width, (1,), generator=g))] for _ in range(width)]
        return parents
    n_nodes = int(torch.randint(1, 13, (1,), generator=g))
    parents: list[int] = []
    depth: list[int] = []
    for _ in range(n_nodes):
        choices = [-1] + [m for m in range(len(parents)) if depth[m] < depth_g]
        p = choices[int(torch.randint(0, len(choices), (1,), generator=g))]
        parents.append(p)
        depth.append(1 if p < 0 else depth[p] + 1)
    return parents


def random_case(g: torch.Generator, kind: str, vocab: int) -> tuple[torch.Tensor, list[int], list[int], list[float]]:
    depth_g = int(torch.randint(1, 6, (1,), generator=g))
    parents = random_tree(g, kind, depth_g)
    n_nodes = len(parents)
    tokens = torch.randint(0, vocab, (n_nodes,), generator=g).tolist()
    logits = torch.randn(n_nodes + 1, vocab, generator=g) * 2
    # Favour about half of the drafted tokens, so that paths pass at every depth.
    for n in range(n_nodes):
        if bool(torch.rand(1, generator=g) < 0.5):
            logits[0 if parents[n] < 0 else parents[n] + 1, tokens[n]] += 4.0
    # A draft sometimes far less sure than the target (scale 10), so that a shallow depth
    # can fail while a deeper one passes.
    scale = torch.where(torch.rand(depth_g, generator=g) < 0.3, 10.0, 2.0)
    best_lq = (-torch.rand(depth_g, generator=g) * scale).tolist()
    return logits, parents, tokens, best_lq


PARAMS = [(1.0, 0, 1.0), (0.7, 10, 0.9), (1.3, 5, 1.0), (1.0, 0, 0.8), (0.0, 0, 1.0)]


@pytest.mark.parametrize("params", PARAMS)
@pytest.mark.parametrize("tau", [0.05, 0.5, 1.0])
def test_verify_matches_reference_on_random_trees(params: tuple[float, int, float], tau: float) -> None:
    g = torch.Generator().manual_seed(hash((params, tau)) & 0xFFFF)
    lengths: set[int] = set()
    skipped = checked = gaps = 0
    for case in range(120):
        kind = ("chain", "beams", "any")[case % 3]
        logits, parents, tokens, best_lq = random_case(g, kind, 24)
        seed, offset = 1000 + case, 7 * case
        want = reference_verify(logits, parents, tokens, best_lq, tau, params, seed, offset)
        if want.ambiguous:
            skipped += 1
            continue
        got = call_verify(logits, parents, tokens, best_lq, tau, params, seed, offset)
        assert_matches(got, want)
        checked += 1
        lengths.add(want.accept_len)
        # A depth below a that no node passes: the deeper pass still counts.
        depths = {d: [] for d in range(1, want.accept_len + 1)}
        lp = want.node_logprob.tolist()
        for n, p in enumerate(parents):
            d = 1
            while p >= 0:
                d, p = d + 1, parents[p]
            if d <= want.accept_len:
                depths[d].append(lp[n] - sum(best_lq[:d]) > math.log(tau))
        gaps += any(not any(v) for v in depths.values())
    assert skipped <= 6, f"{skipped} cases within rounding of a decision"
    assert checked >= 100
    assert 0 in lengths and len(lengths) >= 3, lengths
    if tau >= 0.5 and params[0] > 0:  # rarer at low tau, where most depths pass
        assert gaps > 0, "no case with a failing depth below the accepted one"


def test_verify_deeper_pass_beats_shallower_failures() -> None:
    # Chain of 3 over V = 4; rows are log-probs already (log_softmax leaves them as they are).
    probs = torch.tensor(
        [
            [0.1, 0.3, 0.3, 0.3],  # row 0: depth-1 token 0 has p = 0.1
            [0.025, 0.9, 0.05, 0.025],  # after node 0: token 1 has p = 0.9
            [0.04, 0.03, 0.9, 0.03],  # after node 1: token 2 has p = 0.9
            [0.7, 0.1, 0.1, 0.1],  # after node 2: the bonus row
        ]
    )
    best_lq = [math.log(0.9), math.log(0.9), math.log(0.01)]
    # Ratios p / q per depth: 0.1 / 0.9, 0.09 / 0.81, 0.081 / 0.0081: fail, fail, pass.
    got = call_verify(probs.log(), [-1, 0, 1], [0, 1, 2], best_lq, 0.5, (1.0, 0, 1.0), 5, 0)
    assert got["accept_len"] == 3 and got["accept_node"] == 2
    assert got["path"].tolist() == [0, 1, 2]
    torch.testing.assert_close(got["node_logprob"], torch.tensor([0.1, 0.09, 0.081]).log(), atol=1e-6, rtol=1e-6)
    want = reference_verify(probs.log(), [-1, 0, 1], [0, 1, 2], best_lq, 0.5, (1.0, 0, 1.0), 5, 0)
    assert got["bonus_token"] == want.bonus_token
    # Greedy bonus: the argmax of the row after node 2.
    greedy = call_verify(probs.log(), [-1, 0, 1], [0, 1, 2], best_lq, 0.5, (0.0, 0, 1.0), 5, 0)
    # T = 0: LP is 0 on argmax paths, -inf elsewhere; token 0 at depth 1 is not the argmax.
    assert greedy["accept_len"] == 0 and greedy["bonus_token"] == 1


def test_verify_nothing_passes_draws_bonus_from_row_zero() -> None:
    logits = torch.tensor([[0.0, 5.0, 0.0], [9.0, 0.0, 0.0], [0.0, 0.0, 9.0]])
    # Both drafted tokens are unlikely under the target; the draft was confident.
    for seed in range(20):
        got = call_verify(logits, [-1, 0], [0, 1], [-0.01, -0.01], 0.5, (1.0, 0, 1.0), seed, 3)
        assert got["accept_len"] == 0 and got["accept_node"] == -1
        assert got["path"].tolist() == []
        want = reference_verify(logits, [-1, 0], [0, 1], [-0.01, -0.01], 0.5, (1.0, 0, 1.0), seed, 3)
        assert got["bonus_token"] == want.bonus_token
    greedy = call_verify(logits, [-1, 0], [0, 1], [-0.01, -0.01], 0.5, (0.0, 0, 1.0), 0, 0)
    assert greedy["accept_len"] == 0 and greedy["bonus_token"] == 1  # argmax of row 0


def test_verify_ties_go_to_the_lower_node_index() -> None:
    # Two identical depth-1 nodes (0, 1), each with a child drafting token 2 over an
    # identical row: LP(2) == LP(3) exactly. Node 2 (child of 1) has the lower index.
    row_a = torch.tensor([0.1, 2.0, 1.5, -1.0])
    logits = torch.stack([row_a, row_a, row_a, torch.zeros(4), torch.zeros(4)])
    logits[4, 3] = 6.0  # the bonus row after node 3 would favour 3; after node 2, uniform
    got = call_verify(logits, [-1, -1, 1, 0], [1, 1, 2, 2], [-1.0, -1.0], 0.5, (1.0, 0, 1.0), 1, 0)
    lp = got["node_logprob"]
    assert lp[0] == lp[1] and lp[2] == lp[3]
    assert got["accept_len"] == 2 and got["accept_node"] == 2
    assert got["path"].tolist() == [1, 2]
    # Depth 1 alone: both tie, node 0 wins; the path then has no second node.
    got1 = call_verify(logits[:3], [-1, -1], [1, 1], [-1.0], 0.5, (1.0, 0, 1.0), 1, 0)
    assert got1["accept_len"] == 1 and got1["path"].tolist() == [0]
    # Greedy: both depth-1 nodes carry the argmax (token 1): LP = 0 each, node 0 wins.
    g0 = call_verify(logits[:3], [-1, -1], [1, 1], [-1.0], 0.5, (0.0, 0, 1.0), 1, 0)
    assert g0["accept_node"] == 0 and g0["bonus_token"] == 1


def test_verify_highest_lp_at_the_accepted_depth_wins() -> None:
    # Three depth-1 candidates passing at tau = 0.05; node 2 has the highest target prob.
    logits = torch.tensor([[1.0, 2.0, 3.0, 0.0]] + [[0.0] * 4] * 3)
    got = call_verify(logits, [-1, -1, -1], [0, 1, 2], [-1.5], 0.05, (1.0, 0, 1.0), 0, 0)
    assert got["accept_len"] == 1 and got["accept_node"] == 2 and got["path"].tolist() == [2]


def test_verify_threshold_is_strict() -> None:
    # p = q = 0.5 at depth 1 and tau = 1: LP - LQ = 0 is not > log(1) = 0.
    logits = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    got = call_verify(logits, [-1], [0], [math.log(0.5)], 1.0, (1.0, 0, 1.0), 0, 0)
    assert got["accept_len"] == 0
    got = call_verify(logits, [-1], [0], [math.log(0.5) - 1e-3], 1.0, (1.0, 0, 1.0), 0, 0)
    assert got["accept_len"] == 1


def test_verify_removed_tokens_never_pass() -> None:
    # top_k = 1 keeps only token 1 in every row: drafting token 0 gives LP = -inf.
    logits = torch.tensor([[0.0, 1.0, 0.5]] * 3)
    got = call_verify(logits, [-1, 0], [0, 1], [-50.0, -50.0], 0.01, (1.0, 1, 1.0), 0, 0)
    assert got["accept_len"] == 0
    assert math.isinf(got["node_logprob"][0].item()) and got["node_logprob"][0] < 0
    assert got["bonus_token"] == 1


def test_verify_empty_tree() -> None:
    logits = torch.tensor([[0.0, 0.0, 3.0]])
    empty = torch.empty(0, dtype=torch.int64)
    got = ops.verify(logits, empty, empty, torch.empty(0), 0.5, 0.0, 0, 1.0, 0, 0)
    assert got["accept_len"] == 0 and got["bonus_token"] == 2
    assert got["node_logprob"].shape == (0,) and got["path"].shape == (0,)


def test_verify_seed_and_offset_select_the_uniform() -> None:
    logits = torch.zeros(1, 1000)  # uniform target: the bonus is floor(u * 1000)
    for seed, offset in [(0, 0), (1, 0), (0, 1), (2**63, 5), (2**64 - 1, 2**64 - 1)]:
        got = ops.verify(
            logits,
            torch.empty(0, dtype=torch.int64),
            torch.empty(0, dtype=torch.int64),
            torch.empty(0),
            0.5,
            1.0,
            0,
            1.0,
            seed,
            offset,
        )
        u = uniform(seed, offset)
        assert abs(got["bonus_token"] - u * 1000) <= 1.0


def test_verify_torch_op_agrees() -> None:
    g = torch.Generator().manual_seed(2)
    logits, parents, tokens, best_lq = random_case(g, "beams", 32)
    got = call_verify(logits, parents, tokens, best_lq, 0.5, (0.8, 8, 0.9), 11, 3)
    a, node, path, bonus, lp = torch.ops.mtad.verify(
        logits,
        torch.tensor(parents),
        torch.tensor(tokens),
        torch.tensor(best_lq),
        0.5,
        0.8,
        8,
        0.9,
        11,
        3,
    )
    assert (a, node, bonus) == (got["accept_len"], got["accept_node"], got["bonus_token"])
    assert torch.equal(path, got["path"]) and torch.equal(lp, got["node_logprob"])


BAD_VERIFY = [
    ("parent_not_earlier", {"parents": [-1, 1]}, "parents\\[1\\] = 1"),
    ("parent_below_minus_one", {"parents": [-2, 0]}, "parents\\[0\\] = -2"),
    ("token_out_of_range", {"tokens": [0, 4]}, "tokens\\[1\\] = 4"),
    ("negative_token", {"tokens": [-1, 0]}, "tokens\\[0\\] = -1"),
    ("deeper_than_best_lq", {"best_lq": [-1.0]}, "depth 2 but best_lq has only 1"),
    ("tau_zero", {"tau": 0.0}, "tau"),
    ("tau_above_one", {"tau": 1.5}, "tau"),
    ("tau_nan", {"tau": math.nan}, "tau"),
    ("parents_wrong_length", {"parents": [-1]}, "parents must be \\[2\\]"),
    ("parents_int32", {"parents_dtype": torch.int32}, "parents must be int64"),
    ("logits_half", {"logits_dtype": torch.float16}, "target_logits must be float32"),
    ("best_lq_2d", {"best_lq_2d": True}, "best_lq must have 1"),
]


@pytest.mark.parametrize(("name", "change", "message"), BAD_VERIFY, ids=[b[0] for b in BAD_VERIFY])
def test_verify_rejects_bad_inputs(name: str, change: dict, message: str) -> None:
    args = {"parents": [-1, 0], "tokens": [0, 1], "best_lq": [-1.0, -1.0], "tau": 0.5}
    args.update({k: v for k, v in change.items() if k in args})
    logits = torch.zeros(3, 4, dtype=change.get("logits_dtype", torch.float32))
    parents = torch.tensor(args["parents"], dtype=change.get("parents_dtype", torch.int64))
    best_lq = torch.tensor(args["best_lq"])
    if change.get("best_lq_2d"):
        best_lq = best_lq.view(1, -1)
    with pytest.raises(RuntimeError, match=message):
        ops.verify(logits, parents, torch.tensor(args["tokens"]), best_lq, args["tau"], 1.0, 0, 1.0, 0, 0)


# ---- sps_accept ----------------------------------------------------------------------


def random_sps_case(
    g: torch.Generator, n_draft: int, vocab: int, top_k: int
) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    logits = torch.randn(n_draft + 1, vocab, generator=g) * 2
    draft_logits = logits[:n_draft] + torch.randn(n_draft, vocab, generator=g)
    tlp = ref_normalize(logits, 1.0, top_k, 1.0)
    dlp = ref_normalize(draft_logits, 1.0, top_k, 1.0)
    # Draft tokens drawn from the draft (what SpS feeds in), by inverse CDF.
    probs = dlp.exp().double()
    tokens = [int(torch.multinomial(probs[i], 1, generator=g)) for i in range(n_draft)]
    return tlp, dlp, tokens


def call_sps(
    tlp: torch.Tensor,
    dlp: torch.Tensor,
    tokens: list[int],
    seed: int,
    offset: int,
    device: str = "cpu",
) -> tuple[int, int]:
    return ops.sps_accept(
        tlp.to(device),
        dlp.to(device),
        torch.tensor(tokens, dtype=torch.int64, device=device),
        seed,
        offset,
    )


@pytest.mark.parametrize(("vocab", "top_k"), [(5, 0), (50, 0), (50, 10), (3000, 0), (3000, 40)])
def test_sps_accept_matches_reference(vocab: int, top_k: int) -> None:
    g = torch.Generator().manual_seed(vocab + top_k)
    outcomes: set[int] = set()
    skipped = 0
    for case in range(150):
        n_draft = case % 6
        tlp, dlp, tokens = random_sps_case(g, n_draft, vocab, top_k)
        seed, offset = 77 + case, 13 * case
        n, token, ambiguous = reference_sps(tlp, dlp, tokens, seed, offset)
        if ambiguous:
            skipped += 1
            continue
        assert call_sps(tlp, dlp, tokens, seed, offset) == (n, token), case
        assert math.isfinite(tlp[n, token].item())  # never a token the target removed
        outcomes.add(n)
    assert skipped <= 3
    assert outcomes >= {0, 1, 2, 5}, outcomes


def test_sps_accept_draft_equal_to_target_accepts_everything() -> None:
    g = torch.Generator().manual_seed(4)
    for case in range(200):
        n_draft = 1 + case % 5
        tlp, _, _ = random_sps_case(g, n_draft, 40, 8)
        # Drafted from the draft, i.e. the target itself (never a token it removed).
        tokens = [int(torch.multinomial(tlp[i].exp(), 1, generator=g)) for i in range(n_draft)]
        n, token = call_sps(tlp, tlp[:n_draft].clone(), tokens, case, 0)
        assert n == n_draft
        want, _ = draw(tlp[n_draft].double().exp().tolist(), uniform(case, n_draft))
        assert token == want


def test_sps_accept_greedy_target_is_greedy() -> None:
    # A one-hot target (T = 0): accepted exactly while the draft matches the argmax, and
    # the next token is the argmax of the first mismatching row (or of the last row).
    g = torch.Generator().manual_seed(6)
    for case in range(200):
        logits = torch.randn(4, 30, generator=g)
        tlp = ref_normalize(logits, 0.0, 0, 1.0)
        dlp = ref_normalize(logits[:3] + torch.randn(3, 30, generator=g), 1.0, 0, 1.0)
        best = tlp.argmax(-1).tolist()
        tokens = [best[i] if bool(torch.rand(1, generator=g) < 0.7) else (best[i] + 1) % 30 for i in range(3)]
        want_n = next((i for i in range(3) if tokens[i] != best[i]), 3)
        assert call_sps(tlp, dlp, tokens, case, 0) == (want_n, best[want_n])


def test_sps_accept_zero_residual_draws_from_target() -> None:
    # p == q, but the drafted token has no mass in either: it is rejected and the
    # residual max(0, p - q) is all zero, so the next token comes from p itself.
    lp = torch.tensor([[0.5, 0.0, 0.2, 0.3], [0.1, 0.2, 0.3, 0.4]]).log()
    for seed in range(50):
        n, token = call_sps(lp, lp[:1].clone(), [1], seed, 9)
        assert n == 0
        want, _ = draw(lp[0].exp().double().tolist(), uniform(seed, 10))
        assert token == want and token != 1


def test_sps_accept_no_draft_samples_target() -> None:
    lp = torch.tensor([[0.25, 0.25, 0.5]]).log()
    for seed in range(30):
        n, token = ops.sps_accept(lp, torch.empty(0, 3), torch.empty(0, dtype=torch.int64), seed, 4)
        assert n == 0 and token == draw([0.25, 0.25, 0.5], uniform(seed, 4))[0]


# Chi-square critical value for 4 degrees of freedom (V = 5) at p = 1e-4: a correct
# implementation fails one run in 10^4 per comparison; the draws are seeded, so the
# outcome is fixed.
CHI2_CRIT_4DOF = 23.51


@pytest.mark.parametrize("n_draft", [2, 3])
def test_sps_accept_is_lossless(n_draft: int) -> None:
    """Position i of the output, over many steps (offsets), is distributed as p_i: the
    first emitted token always, the (i + 1)-th among steps that accepted i drafts. The
    rows are fixed, so positions are independent and each has its own target p_i."""
    g = torch.Generator().manual_seed(100 + n_draft)
    vocab, trials = 5, 20000
    tlp = torch.log_softmax(torch.randn(n_draft + 1, vocab, generator=g), -1)
    dlp = torch.log_softmax(torch.randn(n_draft, vocab, generator=g) * 1.5, -1)
    drafts = torch.stack(
        [torch.multinomial(dlp[i].exp(), trials, replacement=True, generator=g) for i in range(n_draft)],
        dim=1,
    ).tolist()
    counts = [[0] * vocab for _ in range(n_draft + 1)]
    accepted = 0
    for t in range(trials):
        # Disjoint counters per step: offset advances by n_draft + 1 uniforms.
        n, token = call_sps(tlp, dlp, drafts[t], 9, t * (n_draft + 1))
        accepted += n
        emitted = drafts[t][:n] + [token]
        for i, x in enumerate(emitted):
            counts[i][x] += 1
    for i in range(n_draft + 1):
        chi2 = chi_square(counts[i], tlp[i].double().exp().tolist())
        assert chi2 < CHI2_CRIT_4DOF, (i, counts[i], chi2)
    # The draft differs from the target: some but not all drafts are accepted.
    assert 0 < accepted < trials * n_draft
    # The draft's own distribution is far from p_0 (the test can tell them apart).
    assert chi_square(counts[0], dlp[0].double().exp().tolist()) > 10 * CHI2_CRIT_4DOF


def test_sps_accept_torch_op_agrees() -> None:
    g = torch.Generator().manual_seed(8)
    tlp, dlp, tokens = random_sps_case(g, 4, 100, 0)
    got = torch.ops.mtad.sps_accept(tlp, dlp, torch.tensor(tokens), 3, 17)
    assert tuple(got) == call_sps(tlp, dlp, tokens, 3, 17)


BAD_SPS = [
    ("token_out_of_range", lambda t, d, x: (t, d, torch.tensor([0, 7])), "tokens\\[1\\]"),
    ("draft_rows", lambda t, d, x: (t, d[:1], x), "draft_logprobs must be \\[2, 5\\]"),
    ("tokens_length", lambda t, d, x: (t, d, x[:1]), "tokens must be \\[2\\]"),
    ("tokens_float", lambda t, d, x: (t, d, x.float()), "tokens must be int64"),
    ("target_1d", lambda t, d, x: (t[0], d, x), "target_logprobs must have 2"),
    ("target_double", lambda t, d, x: (t.double(), d, x), "target_logprobs must be float32"),
]


@pytest.mark.parametrize(("name", "change", "message"), BAD_SPS, ids=[b[0] for b in BAD_SPS])
def test_sps_accept_rejects_bad_inputs(
    name: str, change: Callable[..., tuple[torch.Tensor, ...]], message: str
) -> None:
    tlp = torch.log_softmax(torch.zeros(3, 5), -1)
    dlp = torch.log_softmax(torch.zeros(2, 5), -1)
    with pytest.raises(RuntimeError, match=message):
        ops.sps_accept(*change(tlp, dlp, torch.tensor([0, 1])), 0, 0)


# ---- CUDA against the CPU reference ---------------------------------------------------


@pytest.mark.cuda
@pytest.mark.parametrize("params", PARAMS)
def test_verify_cuda_matches_cpu(params: tuple[float, int, float]) -> None:
    g = torch.Generator().manual_seed(31)
    for case in range(60):
        kind = ("chain", "beams", "any")[case % 3]
        logits, parents, tokens, best_lq = random_case(g, kind, 5000 if case % 10 == 0 else 64)
        want = reference_verify(logits, parents, tokens, best_lq, 0.5, params, case, case)
        if want.ambiguous:
            continue
        cpu = call_verify(logits, parents, tokens, best_lq, 0.5, params, case, case)
        dev = call_verify(logits, parents, tokens, best_lq, 0.5, params, case, case, "cuda")
        assert dev["path"].device.type == "cuda"
        for key in ("accept_len", "accept_node", "bonus_token"):
            assert dev[key] == cpu[key], (case, key)
        assert dev["path"].cpu().tolist() == cpu["path"].tolist()
        torch.testing.assert_close(dev["node_logprob"].cpu(), cpu["node_logprob"], atol=1e-5, rtol=1e-5)


@pytest.mark.cuda
def test_verify_cuda_reports_bad_tree() -> None:
    logits = torch.zeros(3, 4, device="cuda")
    # A node that is its own parent, then a token outside the vocabulary: the kernel names each.
    bad_trees = [([-1, 1], [0, 1], "parents\\[1\\] = 1"), ([-1, 0], [9, 1], "tokens\\[0\\] = 9")]
    for parents, tokens, message in bad_trees:
        with pytest.raises(RuntimeError, match=message):
            call_verify(logits, parents, tokens, [-1.0, -1.0], 0.5, (1.0, 0, 1.0), 0, 0, "cuda")


@pytest.mark.cuda
@pytest.mark.parametrize(("vocab", "top_k"), [(5, 0), (50, 10), (3000, 0), (50000, 50)])
def test_sps_accept_cuda_matches_cpu(vocab: int, top_k: int) -> None:
    g = torch.Generator().manual_seed(vocab)
    for case in range(100):
        tlp, dlp, tokens = random_sps_case(g, case % 6, vocab, top_k)
        if reference_sps(tlp, dlp, tokens, case, case)[2]:
            continue
        assert call_sps(tlp, dlp, tokens, case, case, "cuda") == call_sps(tlp, dlp, tokens, case, case)
    with pytest.raises(RuntimeError, match="tokens\\[0\\]"):
        call_sps(tlp[:2], dlp[:1], [vocab], 0, 0, "cuda")
