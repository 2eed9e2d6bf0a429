"""theta.Tensor <-> NumPy: zero-copy in and out, copies where needed, dtype errors."""

import gc
import weakref

import numpy as np
import pytest

import theta as th


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64])
def test_c_order_round_trip_shares_memory(dtype):
    a = np.arange(12, dtype=dtype).reshape(3, 4)
    t = th.Tensor(a)
    assert t.shape == (3, 4) and t.dtype == np.dtype(dtype) and t.strides == (4, 1)
    view = np.asarray(t)
    np.testing.assert_array_equal(view, a)
    assert np.shares_memory(view, a)
    assert th.shares_memory(t, a)


def test_mutation_through_a_view_is_seen_on_both_sides():
    a = np.zeros((2, 3))
    t = th.Tensor(a)
    view = t.numpy()
    view[1, 2] = 7.5
    assert a[1, 2] == 7.5
    a[0, 0] = -1.0
    assert np.asarray(t)[0, 0] == -1.0


@pytest.mark.parametrize("make", [
    lambda a: np.asfortranarray(a),
    lambda a: a[:, ::2],
    lambda a: a.T,
])
def test_non_contiguous_arrays_are_copied(make):
    base = np.arange(24.0).reshape(4, 6)
    a = make(base)
    t = th.Tensor(a)
    np.testing.assert_array_equal(np.asarray(t), a)
    assert not th.shares_memory(t, base)
    assert t.is_contiguous()


def test_read_only_arrays_are_copied():
    a = np.arange(5.0)
    a.setflags(write=False)
    t = th.Tensor(a)
    np.testing.assert_array_equal(np.asarray(t), a)
    assert not np.shares_memory(np.asarray(t), a)


def test_copy_true_copies():
    a = np.arange(5.0)
    t = th.Tensor(a, copy=True)
    a[0] = 100.0
    assert np.asarray(t)[0] == 0.0


def test_zero_d_and_empty_arrays_round_trip():
    t = th.Tensor(np.array(2.5))
    assert t.shape == () and t.ndim == 0 and np.asarray(t)[()] == 2.5
    with pytest.raises(TypeError):
        len(t)
    for shape in [(0,), (3, 0), (0, 4, 2)]:
        e = th.Tensor(np.zeros(shape))
        assert e.shape == shape and np.asarray(e).shape == shape and e.size == 0


def test_int64_round_trip_keeps_values():
    a = np.array([-(2**62), 0, 2**62 + 1], dtype=np.int64)
    np.testing.assert_array_equal(np.asarray(th.Tensor(a)), a)


@pytest.mark.parametrize("dtype", [np.int32, np.float16, np.bool_, np.complex128, np.uint64])
def test_unsupported_dtypes_raise_type_error(dtype):
    with pytest.raises(TypeError, match="never casts silently"):
        th.Tensor(np.zeros(3, dtype=dtype))


def test_lists_and_numbers_convert():
    np.testing.assert_array_equal(np.asarray(th.Tensor([[1.0, 2.0], [3.0, 4.0]])), [[1, 2], [3, 4]])
    assert np.asarray(th.Tensor(3.0)).dtype == np.float64
    with pytest.raises(TypeError, match="expected a numpy.ndarray"):
        th.Tensor({"a": 1})


def test_a_view_outlives_its_tensor():
    t = th.Tensor(np.arange(1000.0), copy=True)
    view = np.asarray(t)
    ref = weakref.ref(t)
    del t
    gc.collect()
    assert ref() is not None  # the view keeps its exporter alive ...
    np.testing.assert_array_equal(view, np.arange(1000.0))  # ... and the memory valid
    del view
    gc.collect()
    assert ref() is None  # and lets it go with the last view


def test_an_array_outlives_nothing_it_lent():
    a = np.arange(10.0)
    ref = weakref.ref(a) if hasattr(a, "__weakref__") else None
    t = th.Tensor(a)
    del a
    gc.collect()
    # The Tensor holds the array: its memory is still valid through the Tensor.
    np.testing.assert_array_equal(np.asarray(t), np.arange(10.0))
    del t
    gc.collect()
    if ref is not None:
        assert ref() is None


def test_repr_names_dtype_and_shape():
    r = repr(th.Tensor(np.zeros((2, 2), dtype=np.float32)))
    assert "float32" in r and "[2, 2]" in r


def test_runtime_summary_names_the_blas_core():
    assert th.blas_core() in th.runtime_summary()
    threads = th.get_num_threads()
    assert threads >= 1
    th.set_num_threads(1)
    assert th.get_num_threads() == 1
    th.set_num_threads(threads)
