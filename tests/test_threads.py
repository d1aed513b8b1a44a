"""The intra-op threads of the training loops (neuralnmf/threads.py): one thread for small problems, torch's
setting for large ones, a documented knob, and torch's setting restored after every loop."""

import pytest
import torch

import neuralnmf
from neuralnmf import NeuralNMF, fit, set_loop_threads
from neuralnmf.threads import SMALL_WORK, get_loop_threads, loop_threads, step_work, threads_for


@pytest.fixture(autouse=True)
def two_threads():
    """torch at 2 threads (so that "one thread" is visible), the knob at its default; both restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    set_loop_threads(None)
    torch.set_num_threads(before)


def test_the_count_follows_the_size_of_a_step():
    assert threads_for(SMALL_WORK - 1) == 1
    assert threads_for(SMALL_WORK) == 2
    assert threads_for(None) == 2  # unknown (a source of batches): torch's setting


def test_the_knob_fixes_the_count():
    set_loop_threads(0)
    assert get_loop_threads() == 0 and threads_for(10) == 2
    set_loop_threads(1)
    assert threads_for(10**12) == 1
    set_loop_threads(None)
    assert threads_for(10) == 1
    for bad in (-1, 1.5, "2", True):
        with pytest.raises(ValueError, match="set_loop_threads"):
            set_loop_threads(bad)
    assert neuralnmf.set_loop_threads is set_loop_threads


def test_step_work_counts_stored_entries_and_the_batch():
    x = torch.zeros(100, 50, dtype=torch.float64)
    x[::10, ::5] = 1.0
    assert step_work(x, 4) == 100 * 50 * 4
    assert step_work(x.to_sparse(), 4) == 100 * 4  # 10 x 10 stored entries
    assert step_work(x.to_sparse_csr(), 4) == 100 * 4
    assert step_work(x, 4, batch_size=25) == 25 * 50 * 4
    assert step_work(x, 4, batch_size=1000) == 100 * 50 * 4
    assert step_work([x], 4) is None


def test_loop_threads_restores_torch_setting_even_after_an_error():
    with loop_threads(10) as chosen:
        assert chosen == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with pytest.raises(RuntimeError):
        with loop_threads(10):
            raise RuntimeError("inside the loop")
    assert torch.get_num_threads() == 2


def _threads_seen_by_fit(x, **kwargs) -> set:
    seen = set()
    model = NeuralNMF(x.shape[1], (4, 2), dtype=x.dtype)
    fit(model, x, epochs=3, progress=False, callbacks=[lambda epoch, logs, m: seen.add(torch.get_num_threads())],
        **kwargs)
    assert torch.get_num_threads() == 2  # restored
    return seen


def test_fit_of_a_small_problem_runs_on_one_thread():
    x = torch.rand(30, 20, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert _threads_seen_by_fit(x) == {1}
    set_loop_threads(0)
    assert _threads_seen_by_fit(x) == {2}


def test_fit_tensor_of_a_small_problem_runs_on_one_thread():
    from neuralnmf.tensor import NeuralNCPD, fit_tensor

    X = torch.rand(6, 5, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    model = NeuralNCPD(X.shape, (3, 2), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    seen = set()
    fit_tensor(model, X, epochs=2, progress=False, callbacks=[lambda e, logs, m: seen.add(torch.get_num_threads())])
    assert seen == {1} and torch.get_num_threads() == 2
