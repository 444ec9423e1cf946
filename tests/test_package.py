"""`pip install .` gives a working `phenomix` command outside the checkout (issue #13).

The package is built from a copy of this checkout and installed into a fresh venv, without resolving
dependencies from an index (the machine may be offline): the project venv's site-packages is put
on the fresh venv's path by a .pth file *after* its own, so the dependencies come from there while
phenomix, precompute and phenomix_dash come from the installed copy, which the test checks. Every
command runs from a temporary folder outside the repository.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def _copy_checkout(dest: Path) -> Path:
    """The files git tracks or would track (no var/, .venv, caches): what a fresh clone has."""
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                         check=True).stdout.decode().split("\0")
    for rel in filter(None, out):
        src = ROOT / rel
        if src.is_file() and not rel.startswith("var/"):
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("package")
    src = _copy_checkout(tmp / "src")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "zz_project_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # `pip install .` in two steps: the wheel is built with this venv's setuptools (the fresh venv's
    # bundled one predates bdist_wheel), then installed by the fresh venv's own pip, offline.
    wheel = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                            "-w", str(tmp / "dist"), str(src)], capture_output=True, text=True, timeout=600)
    assert wheel.returncode == 0, wheel.stdout + wheel.stderr
    pip = subprocess.run([str(py), "-m", "pip", "install", "--no-deps", "--no-index",
                          *map(str, (tmp / "dist").glob("phenomix-*.whl"))], capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    cwd = tmp / "elsewhere"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PHENOMIX_STORE", "PHENOMIX_SCREEN")}
    env.update(PHENOMIX_HOME=str(tmp / "home"), OMP_NUM_THREADS="2")
    return {"venv": venv, "py": py, "site": site, "cwd": cwd, "env": env, "src": src}


def run(installed: dict, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), cwd=installed["cwd"], env=installed["env"], capture_output=True, text=True,
                          timeout=timeout)


def test_the_installed_package_is_used_with_its_data(installed):
    code = ("import phenomix_dash, precompute, phenomix.settings as s; "
            "print(precompute.__file__); print(phenomix_dash.ASSETS); print(s.DEFAULT_CHECKPOINT); "
            "print(s.checkout_dir())")
    out = run(installed, str(installed["py"]), "-c", code)
    assert out.returncode == 0, out.stderr
    pre, assets, ckpt, checkout = out.stdout.split()
    site = installed["site"]
    assert Path(pre).is_relative_to(site) and not Path(pre).is_relative_to(ROOT), pre
    assert Path(assets) == site / "phenomix" / "assets" and (Path(assets) / "style.css").is_file()
    assert (Path(assets) / "screen_header.js").is_file(), "the script that keeps the screen in every request"
    assert Path(ckpt) == site / "phenomix" / "models" / "mae_tiny_demo" and (Path(ckpt) / "model.safetensors").is_file()
    assert checkout == "None"


def test_phenomix_help_and_serve_help(installed):
    exe = str(installed["venv"] / "bin" / "phenomix")
    out = run(installed, exe, "--help")
    assert out.returncode == 0, out.stderr
    for command in ("generate", "run", "demo", "serve", "import", "export", "train-mae", "bench", "info"):
        assert command in out.stdout
    out = run(installed, exe, "serve", "--help")
    assert out.returncode == 0 and "--store" in out.stdout and "--host" in out.stdout, out.stderr
    out = run(installed, str(installed["py"]), "-m", "phenomix", "import")
    assert out.returncode == 2 and "h5ad, profiles, rxrx" in out.stderr
    out = run(installed, exe, "bench")  # the benchmarks live in a checkout, not in the package
    assert out.returncode == 2 and "checkout" in out.stderr and "Traceback" not in out.stderr
    out = run(installed, exe, "bench", "--checkout", str(installed["src"]))
    assert out.returncode == 0 and "bench_align" in out.stdout, out.stderr


def test_phenomix_generates_and_runs_the_tiny_screen(installed):
    exe = str(installed["venv"] / "bin" / "phenomix")
    home = Path(installed["env"]["PHENOMIX_HOME"])
    out = run(installed, exe, "generate", "--preset", "tiny", "--out", str(home / "screens" / "tiny"), "--no-progress")
    assert out.returncode == 0, out.stdout + out.stderr
    out = run(installed, exe, "run", "--screen", "tiny", "--quiet")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "computed" in out.stdout and (home / "store" / "tiny").is_dir()
    out = run(installed, exe, "info", "--screen", "tiny")
    assert out.returncode == 0 and "run default" in out.stdout and "embed" in out.stdout, out.stderr
