"""mtad's native engine: load Llama / OPT models from safetensors and run them.

`import mtad_ext` loads the compiled module `mtad_ext._C`; torch is imported first so
that its shared libraries are in place. `mtad_ext.ops` holds the fused kernels (typed
wrappers over the torch operators `torch.ops.mtad.*` that _C registers).
"""

import torch  # noqa: F401  (loads libtorch before the extension)

from . import ops
from ._C import (
    DRAFT_METHODS,
    METHODS,
    AdedParams,
    ConfigError,
    Decoder,
    DraftLength,
    DraftTree,
    FormatError,
    InputError,
    KVCache,
    Model,
    MtadError,
    TreeBudget,
    TrigramTable,
    WeightError,
    load_model,
)
from ._C import (
    _host_reads as _host_reads,  # device-to-host reads so far (tests/methods/test_host_syncs.py)
)

__all__ = [
    "DRAFT_METHODS",
    "METHODS",
    "AdedParams",
    "ConfigError",
    "Decoder",
    "DraftLength",
    "TreeBudget",
    "DraftTree",
    "FormatError",
    "InputError",
    "KVCache",
    "Model",
    "MtadError",
    "TrigramTable",
    "WeightError",
    "load_model",
    "ops",
]
