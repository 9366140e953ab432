import os

import pytest

os.environ.setdefault("FTLAB_PROFILE", "cpu")


@pytest.fixture(scope="session")
def profile():
    import ftlab

    return ftlab.setup("cpu", quiet=True)


@pytest.fixture(scope="session")
def world():
    from ftlab.world import World

    return World(0)


@pytest.fixture(scope="session")
def tiny_base(profile):
    import ftlab

    return ftlab.load_model("tiny-base", profile)


@pytest.fixture(scope="session")
def tiny_chat(profile):
    import ftlab

    return ftlab.load_model("tiny-chat", profile)
