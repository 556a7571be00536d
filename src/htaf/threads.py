"""One torch thread for a while: what small networks on a shared CPU run fastest with."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run the block with one intra-op thread, and restore the count afterwards.

    Why: small MLPs and full-batch steps gain nothing from a second thread, and two threads
    spin-wait badly when other processes hold the cores (benchmarks/README.md, "Figures behind
    choices in the code").
    A grid that runs in-process also matches its worker processes' thread count this way.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
