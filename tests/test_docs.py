"""The API reference builds from the docstrings with warnings as errors, and is complete."""

from __future__ import annotations

import html
import inspect
import re
import subprocess
import sys

import cnn_explainer_widget

from conftest import ROOT


def test_the_api_reference_covers_the_public_api():
    documented = set(re.findall(r"^::: cnn_explainer_widget\.(\w+)$", _api_page(), re.M))
    missing = sorted(set(cnn_explainer_widget.__all__) - documented)
    assert not missing, f"docs/api.md lacks {missing}"


def test_the_docs_build_strictly_from_the_docstrings(tmp_path):
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = html.unescape(re.sub(r"<[^>]+>", "", (site / "api" / "index.html").read_text()))
    text = re.sub(r"\s+", " ", text)
    for name in cnn_explainer_widget.__all__:
        obj = getattr(cnn_explainer_widget, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            summary = re.sub(r"\s+", " ", inspect.getdoc(obj).split("\n\n")[0])
            # Inline markup (``code``, `refs`) renders as plain text.
            summary = summary.replace("``", "").replace("`", "")
            assert summary in text, f"{name}'s docstring is not in the built reference"


def _api_page() -> str:
    return (ROOT / "docs" / "api.md").read_text()
