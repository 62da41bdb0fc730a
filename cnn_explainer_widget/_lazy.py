"""Package modules imported on first use, so that the first widget does not import Flax.

``module = lazy_import("cnn_explainer_widget.x")`` at a module's top level gives the module
object at once and runs its code on the first attribute access (`importlib.util.LazyLoader`).
The widget's path (Tiny VGG, the forward pass, the payload) needs no Flax; the model sources
that do (`cnn_explainer_widget.flax_module`, `tiny_vgg`, `model_file`) and training are
reached this way from `cnn_explainer_widget.model` and the package's ``__init__``, which
saves a fresh kernel the ~0.25 s of importing Flax. A user who passes a Flax module has
imported Flax already.

Only package modules, only at module level, only with a literal name: tests/test_imports.py
reads these calls as import edges (order, cycles) and fails on any other use.
"""

from __future__ import annotations

import importlib.util
import sys
import types

_PACKAGE = __name__.rpartition(".")[0]


def lazy_import(name: str) -> types.ModuleType:
    """The package module ``name``, its code run when one of its attributes is first read."""
    if not name.startswith(_PACKAGE + "."):
        raise ValueError(f"lazy_import is for {_PACKAGE}'s own modules, got {name!r}")
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"no module named {name!r}", name=name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    # As a normal import does: the module is an attribute of its package.
    setattr(sys.modules[_PACKAGE], name.rpartition(".")[2], module)
    return module


__all__ = ["lazy_import"]
