"""A large result's memory is written into by the next call only once nobody holds it.

`Network.activations` keeps the arrays of its last result of at least 4 MB and donates them to
the next call of the same batch size (`cnn_explainer_widget._spent`), so that XLA writes into
pages already in use instead of faulting in fresh ones. These tests check the promise that makes
that safe: whatever a caller still holds never changes, every result is right, and the memory
of a dropped result is the memory of the next one.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from cnn_explainer_widget.tiny_vgg import tiny_vgg_network

from numpy_reference import network_forward

BATCH = 8  # 8 Tiny VGG images: 6.1 MB of outputs, over the 4 MB from which buffers are kept


@pytest.fixture(scope="module")
def network():
    return tiny_vgg_network()


@pytest.fixture(scope="module")
def batches():
    rng = np.random.default_rng(21)
    return [rng.random((BATCH, 64, 64, 3), dtype=np.float32) for _ in range(4)]


@pytest.fixture(scope="module")
def references(network, batches):
    return [network_forward(network, x) for x in batches]


def assert_close(got: dict, expected: dict) -> None:
    for key, value in expected.items():
        np.testing.assert_allclose(got[key], value, atol=1e-5, rtol=1e-5, err_msg=key)


def addresses(result: dict) -> list[int]:
    return sorted(v.__array_interface__["data"][0] for k, v in result.items() if k != "input")


def test_a_held_result_never_changes(network, batches, references):
    first = network.activations(batches[0])
    saved = {k: v.copy() for k, v in first.items()}
    for i in (1, 2, 3, 1):
        assert_close(network.activations(batches[i]), references[i])
    for key, value in saved.items():
        np.testing.assert_array_equal(first[key], value, err_msg=key)


def kept(network) -> tuple:
    """The jax arrays the network keeps for its next call (no numpy view: not a hold)."""
    arrays = network._spent._arrays
    assert arrays is not None, "a 6 MB result was not kept"
    return arrays


def test_one_held_array_is_kept_and_the_others_are_written_into(network, batches, references):
    result = network.activations(batches[0])
    held = result["conv_1_2"]
    saved = held.copy()
    del result
    arrays = kept(network)
    second = network.activations(batches[1])
    assert_close(second, references[1])
    np.testing.assert_array_equal(held, saved)
    assert held.__array_interface__["data"][0] not in addresses(second)
    # Donated (so written into, and deleted as JAX arrays): all but the held one.
    assert sum(a.is_deleted() for a in arrays) == len(arrays) - 1


def test_a_dropped_result_s_memory_is_written_into(network, batches, references):
    network.activations(batches[2])  # this batch size's buffers exist and are kept
    result = network.activations(batches[0])
    del result
    arrays = kept(network)
    after = network.activations(batches[1])
    assert all(a.is_deleted() for a in arrays)
    assert_close(after, references[1])


def test_small_results_are_not_kept_and_huge_ones_not_for_long(network, batches, monkeypatch):
    from cnn_explainer_widget import _spent

    network.activations(batches[0][:2])  # 1.5 MB: malloc reuses such memory anyway
    assert network._spent._arrays is None
    network.activations(batches[0])
    assert network._spent._arrays is not None
    # A large result is held for a while only: a dropped one must give its memory back.
    monkeypatch.setattr(_spent, "LONG_HOLD_BYTES", 5 * 2**20)
    monkeypatch.setattr(_spent, "HOLD_SECONDS", 0.3)
    network.activations(batches[1])
    first = network._spent._arrays
    assert first is not None
    network.activations(batches[2])  # reused within the hold time, and held anew
    assert all(a.is_deleted() for a in first)
    assert network._spent._arrays is not None
    deadline = time.monotonic() + 10
    while network._spent._arrays is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert network._spent._arrays is None


def test_other_batch_sizes_and_ablations_leave_kept_buffers_alone(network, batches, references):
    network.activations(batches[0])
    smaller = network.activations(batches[1][:3])
    assert_close(smaller, {k: v[:3] for k, v in references[1].items()})
    ablated = network.activations(batches[2], ablate={"conv_1_1": [0, 3]})
    assert np.all(ablated["conv_1_1"][..., [0, 3]] == 0)
    assert_close(network.activations(batches[3]), references[3])
    single = network.activations(batches[2][0])
    assert_close(single, {k: v[0] for k, v in references[2].items()})


def test_threads_get_their_own_right_results(network, batches, references):
    errors: list[BaseException] = []

    def work(start: int) -> None:
        try:
            for step in range(6):
                i = (start + step) % len(batches)
                assert_close(network.activations(batches[i]), references[i])
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
