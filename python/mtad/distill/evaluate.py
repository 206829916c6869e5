"""Measuring a draft with the engine: greedy speculative decoding at gamma = 4 on held-out
prompts (tokens per target forward, output equal to greedy AR), and the cost of one draft
decode step relative to one target step on this CPU."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

GREEDY = dict(temperature=0.0, top_k=0, top_p=1.0)


def _decode(decoder: Any, prompt: list[int], n: int) -> tuple[list[int], float]:
    decoder.start(prompt)
    t0 = time.perf_counter()
    while len(decoder.tokens) < len(prompt) + n:
        decoder.step()
    return decoder.tokens[len(prompt) : len(prompt) + n], time.perf_counter() - t0


def step_cost_ratio(target: Any, draft: Any, prompt: list[int], n: int = 64) -> float:
    """Seconds per AR decode step of the draft over those of the target (best of 3)."""
    import mtad_ext

    def per_step(model: Any) -> float:
        best = float("inf")
        for _ in range(3):
            _, dt = _decode(
                mtad_ext.Decoder(model, None, method="ar", capacity=len(prompt) + n + 8, **GREEDY), prompt, n
            )
            best = min(best, dt / n)
        return best

    return per_step(draft) / per_step(target)


def speculative(
    target_dir: Path,
    draft_dir: Path,
    prompts: list[list[int]],
    new_tokens: int = 128,
    gamma: int = 4,
) -> dict[str, Any]:
    """Greedy SpS with the engine against greedy AR on the same prompts."""
    import mtad_ext

    target = mtad_ext.load_model(str(target_dir))
    draft = mtad_ext.load_model(str(draft_dir), dtype="float16")
    cap = max(len(p) for p in prompts) + new_tokens + gamma + 8
    tokens = forwards = accepted = drafted = 0
    t_sps = t_ar = 0.0
    same = 0
    for p in prompts:
        ar, dt_ar = _decode(mtad_ext.Decoder(target, None, method="ar", capacity=cap, **GREEDY), p, new_tokens)
        dec = mtad_ext.Decoder(target, draft, method="sps", gamma=gamma, capacity=cap, **GREEDY)
        sps, dt_sps = _decode(dec, p, new_tokens)
        st = dec.total_stats
        tokens += len(dec.tokens) - len(p)
        forwards += int(st["target_forwards"])
        accepted += int(st["accepted"])
        drafted += int(st.get("drafted", 0))
        same += sps == ar
        t_ar += dt_ar
        t_sps += dt_sps
    return {
        "prompts": len(prompts),
        "new_tokens": new_tokens,
        "gamma": gamma,
        "tokens_per_target_forward": round(tokens / max(forwards, 1), 3),
        "outputs_equal_to_greedy_ar": f"{same}/{len(prompts)}",
        "sps_over_ar_speed": round(t_ar / t_sps, 3),
        "draft_step_cost_over_target": round(step_cost_ratio(target, draft, prompts[0]), 3),
    }
