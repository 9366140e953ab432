"""``make test-real-lessons``: lessons 2 on, on the gpu profile's code path forced onto the CPU, with the real
SmolLM2-135M-Instruct from ``ftlab real-model``, at a smoke step budget. A release check (see README.md).

Collected only with ``FTLAB_TEST_REAL_LESSONS=1``; the default ``pytest`` run skips this folder.
"""

import os

import pytest

if os.environ.get("FTLAB_TEST_REAL_LESSONS") != "1":
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture(scope="session")
def real_folder():
    from ftlab.real_model import build

    return str(build(quiet=True))
