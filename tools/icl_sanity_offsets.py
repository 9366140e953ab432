# Sanity check for experiment 2 (see NOTES_icl_induction.md): previous-token copy vs fixed-offset copy.
# Run from the repo root: python tools/icl_sanity_offsets.py pairs|offset
import sys, time, torch, math
sys.path.insert(0, "tools")
from icl_synth import make_model, schedule
torch.set_num_threads(1)
mode = sys.argv[1]
m = make_model(2048, 192, 2, 6, 64, 512, 0)
opt = torch.optim.AdamW(m.parameters(), lr=1e-3, weight_decay=0.1, betas=(0.9, 0.95)); sch = schedule(opt, 200)
g = torch.Generator().manual_seed(0)
for step in range(1, 201):
    if mode == "pairs":   # a a b b c c ...: target at odd positions = previous token
        s = torch.randint(3, 67, (16, 32), generator=g); x = s.repeat_interleave(2, 1); mask = torch.arange(64) % 2 == 1
    else:                 # fixed offset: s (32) then s again
        s = torch.randint(3, 67, (16, 32), generator=g); x = torch.cat([s, s], 1); mask = torch.arange(64) >= 32
    m.train(); out = m(input_ids=x, labels=x); out.loss.backward(); opt.step(); sch.step(); opt.zero_grad()
    if step % 25 == 0:
        lp = torch.log_softmax(out.logits[:, :-1].detach(), -1).gather(-1, x[:, 1:, None])[..., 0]
        print(mode, step, "copy-pos loss %.3f" % -lp[:, mask[1:]].mean().item(), flush=True)
