"""Project hygiene: the README's commands are what CI runs, the wheel carries its data, ruff."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```bash\n(.+?)\n```", text)


def test_ci_runs_the_readme_test_command():
    commands = _readme_commands()
    test_cmd = next(c for c in commands if "pytest" in c)
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_cmd in ci, "the README's test command must appear verbatim in .ci/run"
    demo = next(c for c in commands if "jupyter lab" in c)
    assert (ROOT / demo.split()[-1]).is_file()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    subprocess.run([*command, "-w", str(out), str(ROOT)], check=True, capture_output=True)
    return next(out.glob("*.whl"))


def test_wheel_contains_bundle_weights_and_images(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in [
        "cnn_explainer_widget/static/widget.js",
        "cnn_explainer_widget/static/widget.css",
        "cnn_explainer_widget/weights/tiny_vgg.safetensors",
        "cnn_explainer_widget/images/espresso_1.jpeg",
        "cnn_explainer_widget/py.typed",
        "cnn_explainer_widget/images/LICENSE-cnn-explainer",
        "cnn_explainer_widget/weights/LICENSE-cnn-explainer",
    ]:
        assert needed in names, needed


INSTALLED_CHECK = """
import importlib.metadata, json, sys

import cnn_explainer_widget
from cnn_explainer_widget import CNNExplainer, _widget_state
from cnn_explainer_widget.tiny_vgg import weights_path

w = CNNExplainer()  # the shipped weights, the bundle and one forward pass, all from the venv
print(json.dumps({
    "package": cnn_explainer_widget.__file__,
    "weights": str(weights_path()),
    "esm": str(_widget_state.STATIC / "widget.js"),
    "version": cnn_explainer_widget.__version__,
    "dist_version": importlib.metadata.version("cnn-explainer-widget"),
    "prediction": w.prediction,
    "prefix": sys.prefix,
    "distributions": sorted(d.metadata["Name"].lower() for d in importlib.metadata.distributions()),
}))
"""


def test_the_installed_wheel_makes_a_widget(wheel, tmp_path):
    """Install the wheel, with its declared dependencies, into an empty venv and use it there.

    The venv is made without ``--system-site-packages``: pip installs what the wheel declares
    (from pip's own configuration and cache, as CI's install of the test extras did a moment
    before), so an undeclared dependency or a file missing from the wheel fails here. Nothing
    of this checkout or of the test environment is importable in the venv.
    """
    venv = tmp_path / "venv"
    try:
        _install_and_check(wheel, venv, tmp_path)
    finally:
        shutil.rmtree(venv, ignore_errors=True)  # about 850 MB: jax, jaxlib, flax, ...


def _install_and_check(wheel: Path, venv: Path, tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    install = subprocess.run(
        # --no-compile: byte-compiling all of jax and flax doubles the time; Python compiles
        # what the check imports anyway.
        [str(python), "-m", "pip", "install", "-q", "--no-compile", str(wheel)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    check = subprocess.run(
        [str(python), "-m", "pip", "check"], env=env, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    result = subprocess.run(
        [str(python), "-I", "-c", INSTALLED_CHECK],
        cwd=tmp_path,  # not the checkout: `import cnn_explainer_widget` must find the venv's
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    site = Path(report["prefix"]).resolve()
    assert site == venv.resolve()
    for key in ("package", "weights", "esm"):
        assert Path(report[key]).resolve().is_relative_to(site), (key, report[key])
    assert Path(report["weights"]).is_file() and Path(report["esm"]).is_file()
    assert report["version"] == report["dist_version"] == wheel.name.split("-")[1]
    assert report["prediction"] == "lifeboat"
    # Only the wheel's runtime dependencies came in: none of the test extras.
    assert not {"pytest", "jupyterlab", "playwright", "mypy"} & set(report["distributions"])


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is a test extra")
@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["lint", "format"])
def test_ruff_clean(command):
    result = subprocess.run(
        ["ruff", *command, "cnn_explainer_widget", "tests", "bench", "weights", "scripts"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_clean():
    """The package type-checks under ``mypy --strict`` (configuration in pyproject.toml)."""
    result = subprocess.run(
        [sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_paths_named_in_the_repository_exist():
    """A comment or document that names a file of the repository names one that exists."""
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    pattern = re.compile(r"\b((?:tests|js/src|js/test|scripts|bench|docs|weights)/[\w./-]+\.\w+)")
    stale = []
    for name in tracked:
        path = ROOT / name
        if (
            path.suffix not in {".py", ".ts", ".md", ".css", ".yml", ".toml", ""}
            or not path.is_file()
        ):
            continue
        for match in pattern.finditer(path.read_text(errors="replace")):
            target = match.group(1).rstrip(".")
            if (ROOT / target).exists() or "*" in target:
                continue
            ignored = subprocess.run(["git", "check-ignore", "-q", target], cwd=ROOT).returncode
            if ignored != 0:  # an output the code writes (bench/results/...) is fine
                stale.append(f"{name}: {target}")
    assert not stale, stale
