"""CNN Explainer as a Jupyter widget, running a real JAX/Flax Tiny VGG in the kernel."""

from cnn_explainer_widget._safetensors import WeightsFileError
from cnn_explainer_widget._widget import CNNExplainer, InvalidSelection
from cnn_explainer_widget.attribution import grad_cam, saliency
from cnn_explainer_widget.datasets import make_shapes, write_image_folder
from cnn_explainer_widget.explain import Neuron, explain_neuron
from cnn_explainer_widget.flax_module import Flatten, network_from_layers
from cnn_explainer_widget.images import DEFAULT_IMAGES, load_image
from cnn_explainer_widget.layers import Layer
from cnn_explainer_widget.model import TrainedModel, activations, as_network, load_model
from cnn_explainer_widget.network import Network
from cnn_explainer_widget.scan import receptive_field, top_activations
from cnn_explainer_widget.tiny_vgg import (
    CLASS_NAMES,
    INPUT_SHAPE,
    TinyVGG,
    load_tiny_vgg,
    make_tiny_vgg,
)
from cnn_explainer_widget.training import train

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
