"""Shared fixtures: paths of the shipped and reference images."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest

os.environ.setdefault("JAX_PLATFORMS", "cpu")

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "cnn_explainer_widget" / "images"
DATA = Path(__file__).parent / "data"
ORIGINAL = ROOT.parent / "shared" / "cnn-explainer-original"


def js_fixture_script() -> ModuleType:
    """``scripts/make_js_fixture.py`` as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location(
        "make_js_fixture", ROOT / "scripts" / "make_js_fixture.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def image_dir() -> Path:
    return IMAGES


@pytest.fixture(scope="session")
def espresso_path() -> Path:
    return IMAGES / "espresso_1.jpeg"


def pytest_configure(config: pytest.Config) -> None:
    """Let test modules import the constants above as ``from conftest import ...``."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
