"""SmolLM2-135M with bf16 weights: what upcasting its logits to fp32 before sampling and scoring changes.

    OMP_NUM_THREADS=2 python benchmarks/bf16_sampling_check.py

Over 24 ToxiGen validation prompts x 20 greedy steps: how often the top-k 50 / top-p 0.9 nucleus from the upcast
log-probs (what `CausalLMSource` does) equals the nucleus computed in bf16, and the one under fp32 weights, and the
total variation distance between the bf16-weight and fp32-weight next-token distributions. Then the per-text
relative NLL difference vs fp32 when the log-softmax itself runs in bf16 (no upcast).
"""

import numpy as np
import torch

from unidetox.config import DataConfig
from unidetox.data.prompts import load_toxigen_prompts
from unidetox.measure.likelihood import encode_pairs
from unidetox.method.sampling import top_p_filter
from unidetox.models.loading import load_model

texts = load_toxigen_prompts(DataConfig(), "validation", prompts_per_domain=6, seed=0).text.tolist()
b = load_model("packaged:smollm2-135m", dtype=torch.bfloat16)
f = load_model("packaged:smollm2-135m", dtype=torch.float32)
tok = b.tokenizer


def nucleus(logp):
    vals, idx = torch.topk(logp, 50, dim=-1)
    keep = top_p_filter(vals.float() if logp.dtype == torch.float32 else vals, 0.9) > float("-inf")
    return [frozenset(idx[i][keep[i]].tolist()) for i in range(len(idx))]


n = same_bf = same_f = 0
pmass = []
with torch.no_grad():
    for t in texts:
        ids = tok(t, return_tensors="pt").input_ids
        for _ in range(20):
            lb = b.model(ids).logits[:, -1]
            lf = f.model(ids).logits[:, -1]
            up = torch.log_softmax(lb.float(), -1)
            raw = torch.log_softmax(lb, -1)  # bf16 all the way
            fp = torch.log_softmax(lf.float(), -1)
            nu, nr, nf = nucleus(up)[0], nucleus(raw)[0], nucleus(fp)[0]
            n += 1
            same_bf += nu == nr
            same_f += nu == nf
            pmass.append(float((up.exp() - fp.exp()).abs().sum() / 2))
            ids = torch.cat([ids, up.argmax(-1, keepdim=True)], 1)
print(
    f"{n} next-token distributions: nucleus(bf16 logits upcast) == nucleus(bf16 log-softmax in bf16): {same_bf}/{n}; "
    f"== nucleus(fp32 weights): {same_f}/{n}; total variation bf16-upcast vs fp32 weights: median {np.median(pmass):.4f}, max {max(pmass):.4f}"
)

# NLL per token of the fixed texts with the log-softmax itself in bf16 (the fault the upcast avoids)
prompts, conts = [], []
for t in texts:
    w = t.split()
    prompts.append(" ".join(w[: len(w) // 2]))
    conts.append(" " + " ".join(w[len(w) // 2 :]))
rels = []
with torch.no_grad():
    for ids, n_p in encode_pairs(tok, prompts, conts):
        x = torch.tensor([ids])
        tgt = x[0, n_p:]
        lb = b.model(x).logits[0, n_p - 1 : -1]
        lf = f.model(x).logits[0, n_p - 1 : -1]
        nb = -torch.log_softmax(lb, -1).gather(-1, tgt[:, None]).float().mean()
        nf = -torch.log_softmax(lf.float(), -1).gather(-1, tgt[:, None]).mean()
        rels.append(float((nb - nf).abs() / nf))
print(
    f"bf16 log-softmax (no upcast): per-text relative NLL difference max {max(rels):.4f}, median {np.median(rels):.4f}"
)
