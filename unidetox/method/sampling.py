"""Incremental next-token sources with KV caches, and the sampling loop shared by every decoder.

A *source* turns a batch of prefixes into next-token scores ``(B, V)`` and then advances one token
at a time, keeping its own KV cache. Plain sampling uses one :class:`CausalLMSource`; the
contrastive decoder (``unidetox.method.distill``) and decoding-time baselines combine several.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from unidetox.method.kvcache import reserve


class ScoreSource(Protocol):
    def start(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, repeats: int = 1) -> torch.Tensor:
        """Prefixes ``(B, T)`` (left padded) -> next-token scores ``(B * repeats, V)``, each row repeated."""

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """Append ``tokens`` ``(B,)`` -> next-token scores ``(B, V)``."""


class CausalLMSource:
    """Next-token scores of one causal LM, with its own KV cache: float32 log-probabilities, or with
    ``log_probs=False`` the raw logits in the model's dtype (what plain sampling needs: :func:`sample` is invariant
    to a per-row shift, and skipping the float copy and the log-softmax over the whole vocabulary saves two passes
    over ``(B, V)`` per token, a third of a sampling step's time outside the model for a 262k-token vocabulary).

    Left padding is handled with explicit position ids (``cumsum(mask) - 1``) and a growing
    attention mask, so a padded row gets the same scores as the same row unpadded. `banned`: token ids whose
    score is -inf (never sampled; :func:`control_token_ids`); the other scores are left as they are, which
    conditions the model on the allowed tokens once sampling (or a contrast with another model) normalises them.
    """

    def __init__(self, model: torch.nn.Module, log_probs: bool = True, banned: Sequence[int] = ()):
        self.model = model
        self.log_probs = log_probs
        self.banned = torch.tensor(sorted(set(banned)), dtype=torch.long) if banned else None
        self.cache = None
        self.mask: torch.Tensor | None = None
        self.next_pos: torch.Tensor | None = None

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _forward(self, ids: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        out = self.model(
            input_ids=ids,
            attention_mask=self.mask,
            position_ids=pos,
            cache=self.cache,
            use_cache=True,
            logits_to_keep=1,
        )
        self.cache = out.cache
        logits = out.logits[:, -1, :]
        scores = torch.log_softmax(logits.float(), dim=-1) if self.log_probs else logits
        if self.banned is not None:  # in place: a fresh log-softmax, or a view of this call's own logits
            scores.index_fill_(-1, self.banned.to(scores.device), float("-inf"))
        return scores

    @torch.no_grad()
    def start(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, repeats: int = 1) -> torch.Tensor:
        """Encode each prefix once, then repeat its KV cache `repeats` times (k samples share one prefill)."""
        dev = self.device
        self.cache = None
        self.mask = attention_mask.to(dev)
        pos = (self.mask.long().cumsum(-1) - 1).clamp(min=0)
        scores = self._forward(input_ids.to(dev), pos)
        if repeats > 1:
            self.cache.batch_repeat_interleave(repeats)
            self.mask = self.mask.repeat_interleave(repeats, dim=0)
            pos = pos.repeat_interleave(repeats, dim=0)
            scores = scores.repeat_interleave(repeats, dim=0)
        reserve(self.cache)  # decoding appends to the KV cache in place (same numbers, no copy per token)
        self.next_pos = pos[:, -1] + 1
        return scores

    @torch.no_grad()
    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        dev = self.device
        self.mask = torch.cat([self.mask, self.mask.new_ones(self.mask.shape[0], 1)], dim=1)
        pos = self.next_pos.unsqueeze(1)
        self.next_pos = self.next_pos + 1
        return self._forward(tokens.to(dev).unsqueeze(1), pos)


def control_token_ids(tokenizer, config=None) -> list[int]:
    """Ids of the tokens that are not text, EOS excepted: those a text sampler must never draw (sorted).

    Every special token of `tokenizer` (BOS, padding, unknown, mask, its extra special tokens, and every added token
    flagged special, e.g. SmolLM2's ``<|im_start|>`` or Gemma's ``<start_of_turn>`` and ``<unusedN>``), and the
    multimodal placeholders `config` names (``image_token_id``, ``boi_token_index`` ...: any ``*_token_id`` or
    ``*_token_index`` that is not EOS), and the rows of the model's output beyond the tokenizer's vocabulary (no
    token at all). EOS stays: it ends a text. A text-only model still gives these tokens some probability, so a
    sampler that allowed them would write them into its texts (Gemma-3-270M's distilled texts held
    ``<start_of_image>``).
    """
    ids = set(tokenizer.all_special_ids)
    ids |= {i for i, tok in tokenizer.added_tokens_decoder.items() if getattr(tok, "special", False)}
    vocab = len(tokenizer)
    if config is not None:
        text = getattr(config, "get_text_config", lambda: config)()
        for c in (config, text):
            for name, value in c.to_dict().items():
                if name.endswith(("_token_id", "_token_index")) and "eos" not in name and type(value) is int:
                    ids.add(value)
        rows = getattr(text, "vocab_size", None)
        if isinstance(rows, int) and rows > vocab:  # embedding rows beyond the tokenizer: no token at all
            ids.update(range(vocab, rows))
            vocab = rows
    eos = tokenizer.eos_token_id
    return sorted(i for i in ids if i is not None and i != eos and 0 <= i < vocab)


# ----------------------------------------------------------------------------- filters


def top_k_filter(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k highest scores per row (ties at the k-th value kept), others -inf. k = 0: no-op."""
    if k <= 0 or k >= scores.shape[-1]:
        return scores
    kth = torch.topk(scores, k, dim=-1).values[..., -1:]
    return scores.masked_fill(scores < kth, float("-inf"))


def top_p_filter(scores: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filter as in transformers: drop the lowest-probability tokens whose cumulative mass is <= 1 - p.

    The most likely token is always kept. p = 1: no-op.
    """
    if p >= 1.0:
        return scores
    sorted_scores, idx = torch.sort(scores, descending=False, dim=-1)
    cum = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
    remove_sorted = cum <= (1 - p)
    remove_sorted[..., -1] = False
    remove = remove_sorted.scatter(-1, idx, remove_sorted)
    return scores.masked_fill(remove, float("-inf"))


@dataclass(frozen=True)
class SamplingParams:
    """Temperature, then top-k, then top-p (transformers' order)."""

    temperature: float = 1.0
    top_k: int = 0  # 0 = off
    top_p: float = 1.0  # 1 = off


def sample(scores: torch.Tensor, params: SamplingParams, generator: torch.Generator) -> torch.Tensor:
    """Draw one token per row ``(B,)`` from softmax of the warped scores ``(B, V)``: logits or log-probabilities,
    in any float dtype (the draw is computed in float32; it does not depend on a constant added to a row).

    With top-k on, the temperature, the nucleus and the draw are computed on the k candidates only: the same
    distribution as warping and filtering the whole vocabulary (dividing by a temperature > 0 keeps the order),
    with one pass over the vocabulary per step (the top-k) instead of a sort.
    """
    k = params.top_k
    if 0 < k < scores.shape[-1]:
        vals, idx = torch.topk(scores, k, dim=-1)
        vals = vals.float()
        if params.temperature != 1.0:
            vals = vals / params.temperature
        choice = torch.multinomial(top_p_filter(vals, params.top_p).softmax(-1), 1, generator=generator)
        return idx.gather(-1, choice).squeeze(1)
    scores = scores.float()
    if params.temperature != 1.0:  # x / 1 == x: skip a pass over the whole vocabulary
        scores = scores / params.temperature
    probs = top_p_filter(scores, params.top_p).softmax(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


@torch.no_grad()
def sample_loop(
    source: ScoreSource,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    max_new_tokens: int,
    params: SamplingParams,
    generator: torch.Generator,
    eos_token_id: int | None,
    pad_token_id: int,
    on_step=None,
    repeats: int = 1,
) -> torch.Tensor:
    """Sample up to `max_new_tokens` per row; returns new tokens ``(B * repeats, L)``, rows padded after EOS.

    Each prefix row is encoded once and continued `repeats` times (rows ``i * repeats ... + repeats - 1``).

    A row that has emitted EOS keeps being fed (its outputs ignored) until every row is done.
    `on_step(step, scores)` sees the raw scores ``(B, V)`` before sampling (used by tests).
    """
    scores = source.start(input_ids, attention_mask, repeats)
    b = scores.shape[0]
    done = torch.zeros(b, dtype=torch.bool, device=scores.device)
    out = []
    for t in range(max_new_tokens):
        if on_step is not None:
            on_step(t, scores)
        tok = sample(scores, params, generator)
        tok = torch.where(done, torch.full_like(tok, pad_token_id), tok)
        out.append(tok)
        if eos_token_id is not None:
            done |= tok == eos_token_id
        if bool(done.all()) or t == max_new_tokens - 1:
            break
        scores = source.step(tok)
    return torch.stack(out, dim=1)


def strip_after_eos(tokens: torch.Tensor, eos_token_id: int | None) -> list[list[int]]:
    """Rows of ``(B, L)`` new tokens -> lists cut before the first EOS."""
    rows = tokens.tolist()
    if eos_token_id is None:
        return rows
    return [row[: row.index(eos_token_id)] if eos_token_id in row else row for row in rows]


def make_generator(device: torch.device | str, *parts: int) -> torch.Generator:
    """A generator on `device` seeded from integers (seed, batch index, ...), independent of global RNG."""
    seed = 0
    for p in parts:
        seed = (seed * 1_000_003 + int(p) + 1) % (2**63 - 1)
    return torch.Generator(device=device).manual_seed(seed)
