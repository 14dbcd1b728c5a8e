"""Zoo tests: torch runs its tiny training loops single-threaded (thread start-up dominates otherwise)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _torch_single_thread():
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
