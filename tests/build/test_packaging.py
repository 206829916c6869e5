"""A regular install ships every module: build a wheel (not the editable install the other
tests use), install it into a fresh environment and import every module of mtad and mtad_ext.

Slow where the C++ build is not already there (it reuses build/ and ccache); `-m "not wheel"`
leaves it out of a quick local run. It skips where no wheel can be built (no cmake, ninja or
C++ compiler), except under CI, where it must run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Run inside the fresh environment: import every module found in the installed packages and
# report where they came from.
IMPORT_ALL = """
import importlib, importlib.util, json, pkgutil, sys
import mtad, mtad_ext
names = []
for pkg in (mtad, mtad_ext):
    names.append(pkg.__name__)
    names += [m.name for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + ".")]
for name in names:
    if name.endswith(".__main__"):
        # Running it is `python -m`; here only that it is there.
        assert importlib.util.find_spec(name) is not None, name
    else:
        importlib.import_module(name)
print(json.dumps({"modules": names, "files": [mtad.__file__, mtad_ext.__file__]}))
"""


def source_modules() -> set[str]:
    """Every module of the source tree, as a dotted name."""
    found = set()
    for pkg, folder in (("mtad", ROOT / "python" / "mtad"), ("mtad_ext", ROOT / "mtad_ext")):
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found.add(".".join([pkg, *parts]))
    return found


@pytest.mark.wheel
def test_wheel_installs_every_module(tmp_path: Path) -> None:
    missing = [tool for tool in ("cmake", "ninja", "c++") if shutil.which(tool) is None]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI must build the wheel, but {', '.join(missing)} is missing")
        pytest.skip(f"cannot build a wheel here: no {', '.join(missing)}")
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-build-isolation", "--no-deps", "-w", str(wheels), str(ROOT)],
        check=True,
    )
    (wheel,) = wheels.glob("mtad-*.whl")
    env = tmp_path / "env"
    # System site-packages give torch and the other dependencies; pip comes from there too.
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(env)], check=True)
    python = env / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True)

    # From an empty folder, so that nothing is imported from the checkout.
    out = subprocess.run([str(python), "-c", IMPORT_ALL], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    for file in report["files"]:
        assert Path(file).resolve().is_relative_to(env.resolve()), f"{file} is not the installed copy"
    missing_modules = source_modules() - set(report["modules"])
    assert not missing_modules, f"the wheel lacks {sorted(missing_modules)}"
    assert "mtad_ext._C" in report["modules"]
    # The symptom the missing subpackage gave: `python -m mtad.distill` failed.
    help_run = subprocess.run(
        [str(python), "-m", "mtad.distill", "--help"], cwd=tmp_path, capture_output=True, text=True
    )
    assert help_run.returncode == 0 and "usage" in help_run.stdout, help_run.stderr
    entry = subprocess.run([str(env / "bin" / "mtad"), "--help"], cwd=tmp_path, capture_output=True, text=True)
    assert entry.returncode == 0 and "generate" in entry.stdout, entry.stderr
