"""CNN Explainer as a Jupyter widget, running a real JAX/Flax Tiny VGG in the kernel.

``from cnn_explainer_widget import CNNExplainer`` imports what the first widget needs (JAX,
the forward pass, the widget) and not Flax: the names that need it (`TinyVGG`, `Flatten`,
`train`, ...) are read from their modules on first use (PEP 562 ``__getattr__`` over
`cnn_explainer_widget._lazy.lazy_import`), which saves a fresh kernel ~0.25 s.
"""

from typing import TYPE_CHECKING, Any

from cnn_explainer_widget._lazy import lazy_import
from cnn_explainer_widget._safetensors import WeightsFileError
from cnn_explainer_widget._shipped import CLASS_NAMES, INPUT_SHAPE
from cnn_explainer_widget._widget import CNNExplainer, InvalidSelection
from cnn_explainer_widget.attribution import grad_cam, saliency
from cnn_explainer_widget.datasets import make_shapes, write_image_folder
from cnn_explainer_widget.explain import Neuron, explain_neuron
from cnn_explainer_widget.images import DEFAULT_IMAGES, load_image
from cnn_explainer_widget.layers import Layer
from cnn_explainer_widget.model import TrainedModel, activations, as_network, load_model
from cnn_explainer_widget.network import Network
from cnn_explainer_widget.scan import receptive_field, top_activations

if TYPE_CHECKING:
    from cnn_explainer_widget.flax_module import Flatten, network_from_layers
    from cnn_explainer_widget.tiny_vgg import TinyVGG, load_tiny_vgg, make_tiny_vgg
    from cnn_explainer_widget.training import train
else:
    _flax_module = lazy_import("cnn_explainer_widget.flax_module")
    _tiny_vgg = lazy_import("cnn_explainer_widget.tiny_vgg")
    _training = lazy_import("cnn_explainer_widget.training")
    #: Public names whose modules import Flax, and the (lazily imported) module of each.
    _FROM_FLAX_MODULES = {
        "Flatten": _flax_module,
        "network_from_layers": _flax_module,
        "TinyVGG": _tiny_vgg,
        "load_tiny_vgg": _tiny_vgg,
        "make_tiny_vgg": _tiny_vgg,
        "train": _training,
    }

    def __getattr__(name: str) -> Any:
        module = _FROM_FLAX_MODULES.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        return getattr(module, name)


__version__ = "0.1.0"

__all__ = [
    "CLASS_NAMES",
    "DEFAULT_IMAGES",
    "INPUT_SHAPE",
    "CNNExplainer",
    "Flatten",
    "InvalidSelection",
    "Layer",
    "Network",
    "Neuron",
    "TinyVGG",
    "TrainedModel",
    "WeightsFileError",
    "activations",
    "as_network",
    "explain_neuron",
    "grad_cam",
    "load_image",
    "load_model",
    "load_tiny_vgg",
    "make_shapes",
    "make_tiny_vgg",
    "network_from_layers",
    "receptive_field",
    "saliency",
    "top_activations",
    "train",
    "write_image_folder",
]
