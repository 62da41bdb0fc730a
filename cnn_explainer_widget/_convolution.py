"""A 2-D convolution in the formulation XLA:CPU runs fastest for its shape.

The forward pass (`cnn_explainer_widget.network`) calls `conv`; both formulations compute the
same sum, only float rounding differs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from cnn_explainer_widget.layers import Padding

#: Force one convolution formulation ("lax" or "broadcast"); None picks by shape.
_CONV_IMPL: str | None = None

#: Above this many input × output channels, XLA's own convolution (handed to a library with
#: `LIBRARY_DOT_OPTIONS`) beats the fused sum.
_FUSED_MAX_CHANNELS = 256


def formulation(kernel_shape: tuple[int, ...]) -> str:
    """The formulation `conv` uses for a ``(kh, kw, C_in, C_out)`` kernel on this backend.

    Off the CPU (a GPU, a TPU) XLA's convolution is the fast one. On the CPU, ``broadcast``
    for few channels (C_in ≤ 4, or C_in·C_out ≤ 256, as in Tiny VGG) and ``lax`` for many
    (bench/forward.py, "user networks": 32-64 channels). `_CONV_IMPL` forces one.

    Tiny VGG's whole pass (bench/README.md, "Third pass"): with ``broadcast`` summed as a tree,
    one image took 202-228 µs against 230-252 with the ``shift`` formulation this replaced (a
    ``[3844, 10] × [10, 90]`` matmul of every pixel with every tap, then 9 shifted slices summed),
    and a batch of 32 98 against 150 µs an image.
    """
    if _CONV_IMPL is not None:
        return _CONV_IMPL
    if jax.default_backend() != "cpu":
        return "lax"
    _, _, cin, cout = kernel_shape
    return "broadcast" if cin <= 4 or cin * cout <= _FUSED_MAX_CHANNELS else "lax"


def wants_library(kernel_shape: tuple[int, ...]) -> bool:
    """Whether a ``lax`` convolution of this kernel runs faster with `LIBRARY_DOT_OPTIONS`.

    Measured on many channels (2-5× less time at batch); with Tiny VGG's 10 channels the
    library was slower than XLA's own loops.
    """
    _, _, cin, cout = kernel_shape
    return cin > 4 and cin * cout > _FUSED_MAX_CHANNELS


#: XLA:CPU options for an executable whose convolutions use ``lax``: its dots and
#: convolutions go to the YNNPACK library one by one. bench/forward.py measured 2-5× less time
#: for the user networks at batch (32-64 channels), and XLA's own conv at batch 256 otherwise
#: cost up to 8× more per image than alone.
LIBRARY_DOT_OPTIONS: dict[str, str | bool] = {
    "xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"
}


def conv(x: jax.Array, kernel: jax.Array, stride: tuple[int, int], padding: Padding) -> jax.Array:
    """An NHWC × HWIO convolution without bias, in the formulation fastest on CPU for its shape.

    Both compute the same sum (only float rounding differs). XLA:CPU's convolution is slow for
    Tiny VGG's few channels, so:

    - ``broadcast`` (few channels): the kh·kw·C_in shifted input slices, each times its kernel
      row, summed as a balanced tree (`_tree_sum`) in one fused elementwise loop;
    - ``lax``: ``lax.conv_general_dilated`` otherwise (and on a GPU or TPU), see `formulation`.

    XLA:CPU fuses a ``broadcast`` sum into each of its consumers, computing it again for each;
    the forward pass (`cnn_explainer_widget._forward.run`) computes it once.
    """
    kh, kw, cin, _ = kernel.shape
    impl = formulation(kernel.shape)
    if impl == "lax":
        return jax.lax.conv_general_dilated(
            x, kernel, stride, padding, dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
    if impl != "broadcast":
        raise ValueError(f"unknown convolution formulation {impl!r}")
    n, h, w, _ = x.shape
    (top, bottom), (left, right) = padding
    if top or bottom or left or right:
        x = jnp.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    sh, sw = stride
    oh = (h + top + bottom - kh) // sh + 1
    ow = (w + left + right - kw) // sw + 1
    terms: list[jax.Array] = []
    for i in range(kh):
        for j in range(kw):
            # Rows i, i + sh, ... and columns j, j + sw, ... of the (padded) map: oh × ow of them.
            tap = jax.lax.slice(
                x,
                (0, i, j, 0),
                (n, i + sh * (oh - 1) + 1, j + sw * (ow - 1) + 1, cin),
                (1, sh, sw, 1),
            )
            terms.extend(tap[..., c : c + 1] * kernel[i, j, c] for c in range(cin))
    return _tree_sum(terms)


def _tree_sum(terms: list[jax.Array]) -> jax.Array:
    """The sum of ``terms``, added pairwise: a balanced tree of additions.

    XLA:CPU fuses the whole sum into one loop either way, but a chain ``((t0 + t1) + t2) + …``
    makes each addition wait for the one before; a tree gives the processor independent
    additions to overlap. Tiny VGG's conv_1_2 alone at batch 32 (90 terms): 73 µs an image as a
    chain, 39-44 µs as 2-18 partial sums (bench/README.md, "Third pass").
    """
    while len(terms) > 1:
        pairs = [a + b for a, b in zip(terms[::2], terms[1::2], strict=False)]
        terms = pairs + ([terms[-1]] if len(terms) % 2 else [])
    return terms[0]
