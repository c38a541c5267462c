r"""Dataset distillation by contrastive decoding (UniDetox, Sec. 3).

At each step every token ``v`` is scored by

.. math:: s(v) = \log p_{\text{base}}(v) - \log p_{\text{toxic}}(v),
   \qquad v \in \mathcal{V}_{\text{head}} = \{v : p_{\text{base}}(v) \ge \alpha \max_w p_{\text{base}}(w)\},

and ``s(v) = -inf`` outside the head; the next token is sampled from ``softmax(s / T)`` (optionally
top-k / top-p filtered). The vocabulary is that of text: special tokens other than EOS and multimodal
placeholders are removed from both distributions first (:func:`unidetox.method.sampling.control_token_ids`).
Texts start from BOS, or EOS for a tokenizer without BOS (Falcon; see
:func:`start_description`); a model with neither is refused. The two models keep **separate** KV caches (the
official code passed the base model's cache to the toxic model by mistake); this decoder is exact,
which the tests check against a cache-free recomputation.

Texts stream to a JSONL file batch by batch; every batch has its own seeded generator, so a run
killed mid-way continues where it stopped and yields the same texts as an uninterrupted one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from unidetox.config import DistillConfig
from unidetox.errors import UnidetoxError
from unidetox.method.sampling import (
    CausalLMSource,
    SamplingParams,
    control_token_ids,
    make_generator,
    sample_loop,
    strip_after_eos,
)
from unidetox.models.loading import LoadedModel, ModelLoadError, same_tokenizer, start_token
from unidetox.store.jsonl import INT, TEXT, JsonlWriter, Schema, read_jsonl

#: a record of a finished stage's ``texts.jsonl``: a text and its index (batch and number of tokens where recorded)
TEXT_RECORD = Schema("distilled text", {"index": INT, "text": TEXT}, optional={"batch": INT, "n_tokens": INT})
#: a record of a distillation stream: every field is there (a resumed stream counts each batch's records)
STREAM_RECORD = Schema("distilled text", {**TEXT_RECORD.fields, **TEXT_RECORD.optional})


class DistillError(UnidetoxError, ValueError):
    """Inputs the contrastive decoder cannot use (e.g. base and toxic tokenizers differ)."""


def plausibility_mask(base_logprobs: torch.Tensor, alpha: float) -> torch.Tensor:
    """``(B, V)`` bool: ``p_base(v) >= alpha * max_w p_base(w)``, computed in log space."""
    if not 0 < alpha <= 1:
        raise DistillError(f"alpha must be in (0, 1], got {alpha}")
    top = base_logprobs.max(dim=-1, keepdim=True).values
    return base_logprobs >= top + math.log(alpha)


def contrastive_scores(base_logprobs: torch.Tensor, toxic_logprobs: torch.Tensor, alpha: float) -> torch.Tensor:
    """``(B, V)`` scores ``log p_base - log p_toxic`` on the plausible head, ``-inf`` elsewhere."""
    keep = plausibility_mask(base_logprobs, alpha)
    return (base_logprobs - toxic_logprobs).masked_fill(~keep, float("-inf"))


class ContrastiveSource:
    """Score source combining a base and a toxic model, each with its own KV cache. `banned` token ids are -inf in
    both models' log-probabilities before the plausible head is taken, i.e. both are conditioned on the allowed
    tokens (a constant per row in each, which cancels in the head's test and in the softmax)."""

    def __init__(self, base: torch.nn.Module, toxic: torch.nn.Module, alpha: float, banned: Sequence[int] = ()):
        self.base, self.toxic = CausalLMSource(base, banned=banned), CausalLMSource(toxic, banned=banned)
        self.alpha = alpha

    def start(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, repeats: int = 1) -> torch.Tensor:
        b = self.base.start(input_ids, attention_mask, repeats)
        t = self.toxic.start(input_ids, attention_mask, repeats).to(b.device)
        return contrastive_scores(b, t, self.alpha)

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        b = self.base.step(tokens)
        t = self.toxic.step(tokens).to(b.device)
        return contrastive_scores(b, t, self.alpha)


def check_pair(base: LoadedModel, toxic: LoadedModel) -> None:
    """Refuse a base/toxic pair whose token ids do not mean the same strings."""
    if not same_tokenizer(base.tokenizer, toxic.tokenizer):
        raise DistillError(
            f"base model {base.spec!r} and toxic model {toxic.spec!r} have different tokenizers; contrastive decoding "
            "compares their next-token distributions token by token, so the toxic model must be fine-tuned from the base "
            "model (same vocabulary)."
        )


def check_length(model: LoadedModel, cfg: DistillConfig) -> None:
    """Refuse, before any work, texts longer than `model`'s context (the start token plus ``max_new_tokens``)."""
    from unidetox.models.loading import model_max_length

    context = model_max_length(model.model)
    if context is not None and cfg.max_new_tokens + 1 > context:
        raise DistillError(
            f"distill.max_new_tokens {cfg.max_new_tokens} is beyond {model.spec}'s context of {context} tokens (one "
            f"goes to the start token). Fix: --set distill.max_new_tokens={context - 1} or less"
        )


def start_description(lm: LoadedModel) -> str:
    """Which token the texts of `lm` start from, e.g. ``'</s>' (id 2, BOS = EOS)`` (OPT); refuses a model with none.

    BOS when the tokenizer has one (Llama ``<s>``, OPT ``</s>``, GPT-2 ``<|endoftext|>``), else EOS (Falcon, which
    has no BOS and names ``<|endoftext|>`` as both ends of a text in its config).
    """
    try:
        return start_token(lm.tokenizer, lm.spec)[1]
    except ModelLoadError as e:
        raise DistillError(str(e)) from None


@dataclass
class DistillResult:
    texts: list[str]
    tokens_generated: int
    seconds: float


def batch_plan(cfg: DistillConfig) -> list[tuple[int, int]]:
    """``[(first text index, batch size), ...]`` covering ``cfg.num_texts``."""
    return [(i, min(cfg.batch_size, cfg.num_texts - i)) for i in range(0, cfg.num_texts, cfg.batch_size)]


def decode_batch(
    base: LoadedModel,
    toxic: LoadedModel | None,
    cfg: DistillConfig,
    batch_index: int,
    size: int,
    prefix: Sequence[int] = (),
) -> list[list[int]]:
    """Contrastively sample `size` texts from BOS for batch `batch_index`; returns token ids per text (EOS cut).

    With ``toxic=None`` the texts are plain samples of `base` with the same sampling settings (the paper's
    "w/o contrast" ablation, and the base/toxic samples of the diagnostics). `prefix`: token ids placed after
    BOS as context of both models (e.g. a paragraph break); they are not sampled, scored or returned, so every
    sampled token keeps the method's score. Empty (the default) is the paper's start from BOS alone.
    Only text tokens and EOS are sampled: the tokenizer's special tokens and the model's multimodal placeholders
    (:func:`unidetox.method.sampling.control_token_ids`) never are, in either model."""
    dev = next(base.model.parameters()).device
    try:
        start_id = base.start_token_id
    except ModelLoadError as e:
        raise DistillError(str(e)) from None
    start = torch.tensor([[start_id, *prefix]] * size, dtype=torch.long, device=dev)
    mask = torch.ones_like(start)
    gen = make_generator(dev, cfg.seed, batch_index)
    params = SamplingParams(temperature=cfg.temperature, top_k=cfg.top_k, top_p=cfg.top_p)
    tok = base.tokenizer
    banned = control_token_ids(tok, base.model.config)
    if toxic is not None:
        source = ContrastiveSource(base.model, toxic.model, cfg.alpha, banned)
    else:
        source = CausalLMSource(base.model, banned=banned)
    new = sample_loop(source, start, mask, max_new_tokens=cfg.max_new_tokens, params=params, generator=gen,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)  # fmt: skip
    return strip_after_eos(new, tok.eos_token_id)


def contrastive_texts(
    base: LoadedModel,
    toxic: LoadedModel | None,
    cfg: DistillConfig,
    out_path: str | Path,
    *,
    rank: int = 0,
    world_size: int = 1,
    progress: bool = True,
    prefix: Sequence[int] = (),
) -> DistillResult:
    """Generate ``cfg.num_texts`` distilled texts into the JSONL stream `out_path`, resuming if it exists.

    With several processes, process `rank` takes batches ``rank, rank + world_size, ...`` and writes its
    own stream (`out_path` with a ``.rank<r>`` suffix); :func:`merge_streams` joins them.
    Records: ``{"index", "batch", "text", "n_tokens"}``. ``toxic=None`` samples `base` alone. `prefix`: context
    token ids after BOS (:func:`decode_batch`); the stream does not record it, so use one stream per prefix.
    """
    if toxic is not None:
        check_pair(base, toxic)
    path = Path(out_path) if world_size == 1 else Path(f"{out_path}.rank{rank}")
    writer = JsonlWriter(path, STREAM_RECORD)
    sizes = dict(enumerate(size for _, size in batch_plan(cfg)))
    finished = writer.complete_units(lambda r: r["batch"], sizes)  # a batch cut short is redone whole
    plan = [(b, first, size) for b, (first, size) in enumerate(batch_plan(cfg)) if b % world_size == rank]
    todo = [p for p in plan if p[0] not in finished]
    t0, n_tok = time.perf_counter(), 0
    bar = tqdm(
        total=len(plan),
        initial=len(plan) - len(todo),
        desc="distill" if toxic is not None else f"sample {base.spec}",
        unit="batch",
        disable=not progress,
    )
    for b, first, size in todo:
        rows = decode_batch(base, toxic, cfg, b, size, prefix)
        recs = [
            {"index": first + i, "batch": b, "text": base.tokenizer.decode(ids, skip_special_tokens=True),
             "n_tokens": len(ids)}
            for i, ids in enumerate(rows)
        ]  # fmt: skip
        writer.append(recs)
        n_tok += sum(r["n_tokens"] for r in recs)
        bar.update(1)
    bar.close()
    recs = sorted(writer.records, key=lambda r: r["index"])
    return DistillResult([r["text"] for r in recs], n_tok, time.perf_counter() - t0)


def merge_streams(out_path: str | Path, world_size: int) -> list[dict]:
    """Records of all ranks' streams, ordered by text index."""
    if world_size == 1:
        return sorted(read_jsonl(out_path, schema=STREAM_RECORD), key=lambda r: r["index"])
    recs = [r for k in range(world_size) for r in read_jsonl(f"{out_path}.rank{k}", schema=STREAM_RECORD)]
    return sorted(recs, key=lambda r: r["index"])
