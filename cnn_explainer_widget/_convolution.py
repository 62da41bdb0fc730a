"""A 2-D convolution in the formulation XLA:CPU runs fastest for its shape.

The forward pass (`cnn_explainer_widget.network`) calls `conv`; every formulation computes the
same sum, only float rounding differs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from cnn_explainer_widget.layers import Padding

#: Force one convolution formulation ("lax", "broadcast" or "shift"); None picks by shape.
_CONV_IMPL: str | None = None
#: Largest intermediate (bytes) of the "shift" formulation; above it, lax.conv is faster.
_SHIFT_MAX_BYTES = 2 * 1024 * 1024


#: Above this many input × output channels, XLA's own convolution (handed to a library with
#: `LIBRARY_DOT_OPTIONS`) beats the fused formulations.
_FUSED_MAX_CHANNELS = 256


def formulation(
    n: int, hw: tuple[int, int], kernel_shape: tuple[int, ...], padding: Padding
) -> str:
    """The formulation `conv` uses for a batch of ``n`` maps of size ``hw`` on this backend.

    Off the CPU (a GPU, a TPU) XLA's convolution is the fast one. On the CPU: ``broadcast``
    for ≤ 4 input channels; for few channels (C_in·C_out ≤ 256), ``shift`` on one image whose
    tap products fit `_SHIFT_MAX_BYTES` and ``broadcast`` on a batch; ``lax`` otherwise
    (bench/forward.py, "user networks": 32-64 channels). `_CONV_IMPL` forces one.

    On a batch, ``shift``'s chunked tap products cost more than ``broadcast``'s 90-term sums
    for Tiny VGG's 10 × 10 convolutions: 213 against 150 µs an image at batch 32, 260 against
    160 at batch 256 (the whole pass, three processes each; bench/README.md, "Batches").
    """
    if _CONV_IMPL is not None:
        return _CONV_IMPL
    if jax.default_backend() != "cpu":
        return "lax"
    kh, kw, cin, cout = kernel_shape
    (top, bottom), (left, right) = padding
    per_image = (hw[0] + top + bottom) * (hw[1] + left + right) * kh * kw * cout * 4
    if cin <= 4:
        return "broadcast"
    if cin * cout <= _FUSED_MAX_CHANNELS:
        if n > 1:
            return "broadcast"
        if per_image <= _SHIFT_MAX_BYTES:
            return "shift"
    return "lax"


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

#: XLA:CPU options for one image when no convolution wants `LIBRARY_DOT_OPTIONS`: no YNNPACK
#: fusions, so the ``shift`` formulation's tap matmuls use XLA's own dot (jaxlib hands dots to
#: YNNPACK by default, which ran conv_1_2's [3844, 10] × [10, 90] on the thread pool in 107 of
#: its 153 µs). Tiny VGG, one image, alternated in one process: 320 against 378 µs (load 6;
#: bench/README.md). At batch the default was not slower, so it stays there.
ONE_IMAGE_OPTIONS: dict[str, str | bool] = {"xla_cpu_experimental_ynn_fusion_type": ""}


def conv(x: jax.Array, kernel: jax.Array, stride: tuple[int, int], padding: Padding) -> jax.Array:
    """An NHWC × HWIO convolution without bias, in the formulation fastest on CPU for its shape.

    All three compute the same sum (only float rounding differs). XLA:CPU's convolution is slow
    for Tiny VGG's few channels, so:

    - ``broadcast`` (few input channels, e.g. an RGB first layer): the kh·kw·C_in shifted input
      slices times kernel rows, summed in one fused elementwise loop;
    - ``shift`` (small maps): one matmul of every input pixel with every kernel tap,
      ``(N·H·W, C_in) @ (C_in, kh·kw·C_out)``, then the kh·kw shifted slices of that summed
      in one fused loop; a batch goes through in chunks whose tap products stay in cache
      (`_SHIFT_MAX_BYTES`);
    - ``lax``: ``lax.conv_general_dilated`` otherwise (and on a GPU or TPU), see `formulation`.

    XLA:CPU fuses a ``broadcast`` or ``shift`` sum into each of its consumers, computing it
    again for each; the forward pass (`cnn_explainer_widget.network`) computes it once.
    """
    kh, kw, cin, cout = kernel.shape
    n, h, w, _ = x.shape
    (top, bottom), (left, right) = padding
    hp, wp = h + top + bottom, w + left + right
    per_image = hp * wp * kh * kw * cout * 4  # bytes of one image's tap products ("shift")
    impl = formulation(n, (h, w), kernel.shape, padding)
    if impl == "lax":
        return jax.lax.conv_general_dilated(
            x, kernel, stride, padding, dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
    if top or bottom or left or right:
        x = jnp.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    sh, sw = stride
    oh = (hp - kh) // sh + 1
    ow = (wp - kw) // sw + 1

    def window(a: jax.Array, i: int, j: int) -> jax.Array:
        # Rows i, i + sh, ... and columns j, j + sw, ... of the (padded) map: oh × ow of them.
        return jax.lax.slice(
            a,
            (0, i, j, *([0] * (a.ndim - 3))),
            (n, i + sh * (oh - 1) + 1, j + sw * (ow - 1) + 1, *a.shape[3:]),
            (1, sh, sw, *([1] * (a.ndim - 3))),
        )

    terms: list[jax.Array] = []
    if impl == "broadcast":
        for i in range(kh):
            for j in range(kw):
                tap = window(x, i, j)
                terms.extend(tap[..., c : c + 1] * kernel[i, j, c] for c in range(cin))
    elif impl == "shift":
        chunk = max(1, min(n, _SHIFT_MAX_BYTES // per_image))
        while n % chunk:
            chunk -= 1
        if chunk < n:
            # Keep the tap products in cache: convolve `chunk` images at a time in a loop.
            parts = x.reshape(n // chunk, chunk, hp, wp, cin)
            y: jax.Array = jax.lax.map(
                lambda part: conv(part, kernel, stride, ((0, 0), (0, 0))), parts
            )
            return y.reshape(n, *y.shape[2:])
        taps = jnp.transpose(kernel, (2, 0, 1, 3)).reshape(cin, kh * kw * cout)
        z = (x.reshape(-1, cin) @ taps).reshape(n, hp, wp, kh * kw, cout)
        for i in range(kh):
            for j in range(kw):
                terms.append(window(z[:, :, :, i * kw + j, :], i, j))
    else:
        raise ValueError(f"unknown convolution formulation {impl!r}")
    return _tree_sum(terms)


def _tree_sum(terms: list[jax.Array]) -> jax.Array:
    """The sum of ``terms``, added pairwise: a balanced tree of additions.

    XLA:CPU fuses the whole sum into one loop either way, but a chain ``((t0 + t1) + t2) + …``
    makes each addition wait for the one before; a tree gives the processor independent
    additions to overlap. Tiny VGG's conv_1_2 alone at batch 32 (90 terms): 73 µs an image as a
    chain, 39-44 µs as 2-18 partial sums (bench/README.md, "Sums as trees").
    """
    while len(terms) > 1:
        pairs = [a + b for a, b in zip(terms[::2], terms[1::2], strict=False)]
        terms = pairs + ([terms[-1]] if len(terms) % 2 else [])
    return terms[0]
