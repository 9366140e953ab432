import json
import os
import subprocess
import sys
import time

ENV = {**os.environ, "FTLAB_PROFILE": "cpu"}


def ftlab(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "ftlab.cli", *args], capture_output=True, text=True,
                          env=ENV, timeout=timeout)


def test_doctor_is_quick_and_reports_everything():
    start = time.perf_counter()
    proc = ftlab("doctor", "--json")
    seconds = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert seconds < 15
    assert report["ok"] and report["profile"] == "cpu" and report["network_needed"] is False
    assert report["packages"]["torch"].startswith("2.")
    assert all(info["ok"] for info in report["bundled"].values())


def test_eval_json_has_accuracy_and_n():
    proc = ftlab("eval", "tiny-chat", "--task", "domain", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert {"accuracy", "n"} <= set(result) and result["n"] > 0


def test_user_mistakes_get_one_line_not_a_traceback():
    proc = ftlab("eval", "tiny-chat", "--task", "trivia")
    assert proc.returncode == 2 and "facts, qa" in proc.stderr and "Traceback" not in proc.stderr
    proc = ftlab("eval", "tiny-chatt", "--task", "qa")
    assert proc.returncode == 2 and "tiny-base, tiny-chat" in proc.stderr and "Traceback" not in proc.stderr
    proc = ftlab("eval", "HuggingFaceTB/SmolLM2-135M", "--task", "qa")
    assert proc.returncode == 2 and "offline" in proc.stderr and "Traceback" not in proc.stderr


def test_build_models_smoke(tmp_path):
    """The full build takes minutes; a few steps of every stage prove the pipeline still works."""
    proc = ftlab("build-models", "--smoke", "--out", str(tmp_path), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("tiny-base", "tiny-chat"):
        assert (tmp_path / name / "model.safetensors").exists()
        assert (tmp_path / name / "chat_template.jinja").exists() or "chat_template" in (
            tmp_path / name / "tokenizer_config.json").read_text()


def test_bench_parts_measure_real_things():
    from ftlab import bench

    times = bench.import_and_load()
    assert set(times) == {"import ftlab (s)", "load tiny-base, fresh process, imports included (s)",
                          "load tiny-chat, fresh process, imports included (s)"}
    assert all(0 < v < 60 for v in times.values())
    assert "cores" in bench.machine()
    ratio = bench.training_throughput(lora=True, steps=4, batch=4, seq_len=32)
    assert ratio["LoRA tokens/s, ftlab (TRL)"] > 0 and 0 < ratio["LoRA ratio ftlab / hand"] < 5
