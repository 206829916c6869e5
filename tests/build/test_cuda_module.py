"""The module built with CUDA (tools/check_cuda_build.sh: build/cuda-module, against the CUDA
torch of its own virtual environment) on a machine without a GPU: the import works, CPU work
works, and only a CUDA call fails, with an error that says there is no GPU. Skips when that
build or that environment is absent (tools/test.sh makes both first)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULE_DIR = Path(os.environ.get("MTAD_CUDA_MODULE_DIR", ROOT / "build" / "cuda-module"))
VENV = Path(os.environ.get("MTAD_CUDA_VENV", Path.home() / ".cache" / "mtad-ci" / "cuda-venv"))

PROBE = r"""
import json, sys
out = {}
import torch
import mtad_ext  # must not touch the GPU
out["torch_cuda"] = torch.version.cuda
out["folder"] = sys.argv[1]
out["gpu"] = torch.cuda.is_available()
folder = sys.argv[1]  # a tiny model, made by the test (transformers is not in that environment)
model = mtad_ext.load_model(str(folder))
dec = mtad_ext.Decoder(model, method="ar", capacity=32, temperature=0.0, top_k=0, top_p=1.0)
dec.start([1, 2, 3])
out["cpu_tokens"] = [dec.step()[0] for _ in range(3)]
x = torch.randn(2, 8)
out["cpu_op"] = bool(torch.isfinite(mtad_ext.ops.normalize(x, 1.0, 0, 1.0)).all())

def error_of(call):
    try:
        call()
    except Exception as e:  # what a user sees
        return f"{type(e).__name__}: {e}"
    return None

out["load_cuda"] = error_of(lambda: mtad_ext.load_model(str(folder), device="cuda"))
out["op_cuda"] = error_of(lambda: mtad_ext.ops.normalize(x.to("cuda"), 1.0, 0, 1.0))
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> dict:
    python = VENV / "bin" / "python"
    built = list((MODULE_DIR / "mtad_ext").glob("_C*.so"))
    if not built or not python.exists():
        pytest.skip(f"no CUDA build of mtad_ext in {MODULE_DIR} or no {python} (tools/check_cuda_build.sh)")
    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_models import save_tiny

    tiny = save_tiny("llama_gqa_tied", "float32", tmp_path_factory.mktemp("cuda_module"))
    env = {**os.environ, "PYTHONPATH": str(MODULE_DIR)}
    r = subprocess.run([str(python), "-c", PROBE, str(tiny)], capture_output=True, text=True,
                       env=env, timeout=600)
    assert r.returncode == 0, f"the CUDA-built module failed on this machine:\n{r.stderr[-3000:]}"
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_the_cuda_build_imports_and_runs_on_the_cpu_without_a_gpu(probe: dict) -> None:
    if probe["gpu"]:
        pytest.skip("this machine has a GPU (tools/gpu_check.sh covers it)")
    assert probe["torch_cuda"] is not None
    assert probe["cpu_op"] is True
    assert len(probe["cpu_tokens"]) == 3


def test_the_same_greedy_tokens_as_the_cpu_build(probe: dict) -> None:
    import mtad_ext

    model = mtad_ext.load_model(probe["folder"])
    dec = mtad_ext.Decoder(model, method="ar", capacity=32, temperature=0.0, top_k=0, top_p=1.0)
    dec.start([1, 2, 3])
    assert [dec.step()[0] for _ in range(3)] == probe["cpu_tokens"]


@pytest.mark.parametrize("call", ["load_cuda", "op_cuda"])
def test_only_a_cuda_call_fails_and_says_why(probe: dict, call: str) -> None:
    if probe["gpu"]:
        pytest.skip("this machine has a GPU")
    error = probe[call]
    assert error is not None, f"{call} did not fail without a GPU"
    # torch's own words for a machine without a driver or device, not mtad's "no CUDA kernels"
    assert "no CUDA kernels" not in error, error
    assert any(w in error for w in ("NVIDIA driver", "no CUDA GPUs", "CUDA driver", "cuda")), error
