import os

import pytest

os.environ.setdefault("FTLAB_PROFILE", "cpu")
# torch's threads spin only briefly before they sleep (see Makefile): the lesson kernels inherit it
os.environ.setdefault("GOMP_SPINCOUNT", "10000")
# lesson 4 under nbmake: nobody clicks its preference widget, so its next cell labels the pairs from code
# (only when this is set; a learner's Run All waits for real labels). tests/test_browser.py unsets it.
os.environ.setdefault("FTLAB_AUTOLABEL", "1")


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
