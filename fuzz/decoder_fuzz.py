"""atheris target: the Decoder's public entry points (constructor, aded_params, start, step)
with random parameters and token ids on two tiny random models. Bad input must end in
mtad_ext's named errors (MtadError and subclasses) or, for a value of the wrong Python
type, TypeError; anything else, or a crash or sanitizer report, is a finding.

    python fuzz/decoder_fuzz.py -runs=1000000 [corpus folders]   (libFuzzer flags)"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris

import mtad_ext
from mtad_ext import AdedParams, Decoder

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from tiny_models import save_tiny  # noqa: E402

_root = Path(tempfile.mkdtemp(prefix="mtad_decoder_fuzz_"))
TARGET = mtad_ext.load_model(str(save_tiny("llama_gqa_tied", "float32", _root)))
DRAFT = mtad_ext.load_model(str(save_tiny("opt_pre_ln", "float32", _root)))
METHODS = ["ar", "sps", "mtad", "mtad-tree", "aded", "beam", ""]
# Beyond this the tiny model's cache (~ 512 bytes a token) outgrows any machine's memory.
MAX_FUZZ_CAPACITY = 1 << 50
FLOATS = [0.0, 1.0, 0.7, 1e-30, 1e30, -1.0, float("nan"), float("inf"), -0.0]


def _float(fdp: atheris.FuzzedDataProvider) -> float:
    return fdp.PickValueInList(FLOATS) if fdp.ConsumeBool() else fdp.ConsumeRegularFloat()


def _capacity(fdp: atheris.FuzzedDataProvider) -> int:
    """Mostly small; sometimes any int64, but never a cache that fits in memory yet passes
    libFuzzer's RSS limit: a large cache the machine can hold is the caller's right, and
    the engine refuses (by name) only one beyond the machine's memory."""
    c = _int(fdp, -2, 200)
    return c if c < 1 << 20 or c > MAX_FUZZ_CAPACITY else 1 << 20


def _int(fdp: atheris.FuzzedDataProvider, lo: int, hi: int) -> int:
    """Mostly small values, sometimes anything in int64."""
    return fdp.ConsumeIntInRange(lo, hi) if fdp.ConsumeIntInRange(0, 7) else fdp.ConsumeIntInRange(-(2**63), 2**63 - 1)


@atheris.instrument_func  # the engine is native: coverage comes from this function's branches
def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    method = fdp.PickValueInList(METHODS)
    draft = fdp.PickValueInList([None, TARGET, DRAFT])
    kw = dict(temperature=_float(fdp), top_k=_int(fdp, -2, 250), top_p=_float(fdp), gamma=_int(fdp, -1, 12),
              width=_int(fdp, -1, 12), tau=_float(fdp), with_replacement=fdp.ConsumeBool(),
              seed=fdp.ConsumeIntInRange(-(2**63), 2**63 - 1), capacity=_capacity(fdp))
    if fdp.ConsumeBool():
        kw.update(draft_temperature=_float(fdp), draft_top_k=_int(fdp, -2, 250), draft_top_p=_float(fdp))
    try:
        dec = Decoder(TARGET, draft, method=method, **kw)
        if method == "aded" and fdp.ConsumeBool():
            dec.aded_params = AdedParams(window=_int(fdp, -1, 40), increment=_float(fdp), cap=_float(fdp),
                                         adapt=fdp.ConsumeBool(), simulations=_int(fdp, -1, 60),
                                         depth=_int(fdp, -1, 8), paths=_int(fdp, -1, 40),
                                         max_nodes=_int(fdp, -1, 80), lookup=_int(fdp, -1, 20))  # fmt: skip
        for _ in range(fdp.ConsumeIntInRange(0, 2)):
            if fdp.ConsumeBool():
                dec.start([_int(fdp, -3, 215) for _ in range(fdp.ConsumeIntInRange(0, 12))])
            for _ in range(fdp.ConsumeIntInRange(0, 4)):
                emitted = dec.step()
                assert len(emitted) >= 1 and all(0 <= t < 211 for t in emitted), emitted
                assert dec.target_cache.length == len(dec.tokens) - 1
    except (mtad_ext.MtadError, TypeError):
        pass


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
