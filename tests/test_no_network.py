"""The cpu profile never reaches for the network: every connection attempt is recorded and refused."""

import os
import subprocess
import sys
import textwrap

GUARD = textwrap.dedent("""
    import socket
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(repr(args)[:200])
        raise OSError("network blocked by test")

    socket.socket.connect = refuse
    socket.socket.connect_ex = refuse
    socket.create_connection = refuse
    socket.getaddrinfo = refuse

    import ftlab
    from ftlab.evaluation import evaluate
    from ftlab.generation import generate, chat_prompt
    profile = ftlab.setup()
    for name in (profile.base_model, profile.chat_model):
        model, tok = ftlab.load_model(name, profile)
        generate(model, tok, [chat_prompt(tok, "What is the capital of France?")], max_new_tokens=8)
    evaluate(model, tok, "domain")
    try:
        ftlab.load_model("HuggingFaceTB/SmolLM2-135M", profile)
    except Exception as err:
        print("hub refused:", type(err).__name__)
    print("ATTEMPTS", len(attempts), attempts[:3])
""")


def test_cpu_profile_attempts_no_connection():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env["FTLAB_PROFILE"] = "cpu"
    proc = subprocess.run([sys.executable, "-c", GUARD], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "hub refused: ModelNotFoundError" in proc.stdout
    assert "ATTEMPTS 0 []" in proc.stdout, proc.stdout
