"""Make a bf16-capable GPU look like a T4 (no native bf16) to every Python process started with this
folder on PYTHONPATH and FTLAB_FAKE_T4=1, notebook kernels included. Used by tools/gpu_lessons.sh to
run the gpu profile's fp16 path (fp32 weights, fp16 autocast, loss scaling) on an H100."""

import os

if os.environ.get("FTLAB_FAKE_T4"):
    import torch

    _real_name = torch.cuda.get_device_name
    torch.cuda.is_bf16_supported = lambda including_emulation=True: False
    torch.cuda.get_device_name = lambda *args, **kwargs: f"Tesla T4 (faked on {_real_name(*args, **kwargs)})"
