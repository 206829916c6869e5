"""The cost tables of the automatic draft length and node budget, kept between processes.

A model measures what a T-token forward costs the first time a decoder needs it
(`Model.forward_seconds`, a few timed forwards: ~0.5 s for SmolLM2 with its draft). A
command-line user would pay that on every call, about what decoding 128 tokens takes. So
the measured table is saved, per model folder, storage dtype, device, thread count, CPU and
engine build, in one small JSON file ($MTAD_COST_CACHE, or costs.json under $MTAD_CACHE or
~/.cache/mtad), and given back to the next process that loads the same model on the same
machine. Entries older than a week are measured again (a table measured while the machine
was busy does not last); MTAD_COST_CACHE=off turns the file off.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from .fetch import default_cache_dir

VERSION = 1
MAX_AGE_S = 7 * 24 * 3600.0
_OFF = ("0", "off", "no", "false")


def cache_file() -> Path | None:
    """The cost file, or None when MTAD_COST_CACHE turns it off."""
    env = os.environ.get("MTAD_COST_CACHE")
    if env is not None and env.strip().lower() in _OFF:
        return None
    if env:
        return Path(env).expanduser()
    return default_cache_dir() / "costs.json"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _folder_identity(folder: Path) -> list[Any]:
    """What changes when the weights or the configuration change."""
    parts: list[Any] = []
    for f in sorted(folder.iterdir()):
        if f.suffix in (".safetensors", ".json") and f.is_file():
            st = f.stat()
            parts.append([f.name, st.st_size, st.st_mtime_ns])
    return parts


def _machine_key(model: Any) -> dict[str, Any]:
    import torch

    import mtad_ext

    ext = Path(mtad_ext.__file__).stat()
    return {
        "dtype": model.dtype,
        "weight_dtype": model.weight_dtype,
        "device": model.device,
        "threads": torch.get_num_threads(),
        "cpu": _cpu_name(),
        "cpus": os.cpu_count(),
        "build": [ext.st_size, ext.st_mtime_ns],
    }


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # missing or damaged: measured again and rewritten
    if not isinstance(data, dict) or data.get("version") != VERSION or not isinstance(data.get("entries"), dict):
        return {}
    return data["entries"]


def _write(path: Path, entries: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".costs-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"version": VERSION, "entries": entries}, f, indent=1, sort_keys=True)
        os.replace(tmp, path)  # readers see the old file or the new one, never half of one
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class CostCache:
    """One loaded model's entry in the cost file: restore() before its first decoder,
    save() after requests (writes only when the model measured something new)."""

    def __init__(self, model: Any, folder: str | os.PathLike[str], path: Path | None = None) -> None:
        self.model = model
        self.folder = Path(folder).expanduser().resolve()
        self.path = path if path is not None else cache_file()
        self._key: str | None = None
        self._known: dict[int, float] = {}  # what the file holds for this model (restored or saved)

    def key(self) -> str:
        if self._key is None:
            ident = {"folder": str(self.folder), "files": _folder_identity(self.folder), **_machine_key(self.model)}
            self._key = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:32]
        return self._key

    def restore(self) -> int:
        """Give the model the saved costs that are still fresh; returns how many."""
        if self.path is None:
            return 0
        entry = _read(self.path).get(self.key())
        if not isinstance(entry, dict) or not isinstance(entry.get("seconds"), dict):
            return 0
        now = time.time()
        n = 0
        for t, value in entry["seconds"].items():
            try:
                T, (seconds, when) = int(t), value
                fresh = 0 <= now - float(when) < MAX_AGE_S
                if fresh and T >= 1 and float(seconds) > 0:
                    self.model.set_forward_seconds(T, float(seconds))
                    self._known[T] = float(seconds)
                    n += 1
            except (TypeError, ValueError):
                continue  # a damaged value: measured again
        return n

    def save(self) -> bool:
        """Add what the model measured since restore() to the file; True when it wrote."""
        if self.path is None:
            return False
        table = {int(t): float(s) for t, s in self.model.forward_seconds_table().items()}
        new = {t: s for t, s in table.items() if self._known.get(t) != s}
        if not new:
            return False
        try:
            entries = _read(self.path)
            now = time.time()
            entry = entries.get(self.key())
            seconds = entry.get("seconds") if isinstance(entry, dict) else None
            seconds = seconds if isinstance(seconds, dict) else {}  # a damaged entry is replaced
            seconds.update({str(t): [s, now] for t, s in new.items()})
            entries[self.key()] = {"folder": str(self.folder), "seconds": seconds}
            # Entries of folders that are gone (temporary models) or long stale are dropped.
            entries = {k: e for k, e in entries.items() if _live(e, now)}
            _write(self.path, entries)
        except OSError:
            return False  # a read-only home: the next process measures again
        self._known.update(new)
        return True


def _live(entry: Any, now: float) -> bool:
    if not isinstance(entry, dict) or not Path(str(entry.get("folder", ""))).is_dir():
        return False
    times = [v[1] for v in entry.get("seconds", {}).values() if isinstance(v, list) and len(v) == 2]
    return any(isinstance(w, (int, float)) and now - w < MAX_AGE_S for w in times)
