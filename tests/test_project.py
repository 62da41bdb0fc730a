"""Project hygiene: the README's commands are what CI runs, the wheel carries its data, ruff."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile

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


def test_wheel_contains_bundle_weights_and_images(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    wheel = next(tmp_path.glob("*.whl"))
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
