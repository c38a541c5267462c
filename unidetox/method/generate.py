"""Batched continuation sampling for evaluation: k continuations per prompt, left padding, KV cache.

Work is cut into *units* of whole prompts (``batch_size // k`` prompts, so ``<= batch_size`` rows);
each unit has its own generator seeded by ``(seed, unit)``, so results do not depend on how units
are spread over processes, and a resumed run regenerates nothing that was finished.

A model is evaluated plain, with a fixed prefix prepended to every prompt (the safety pre-prompt
baseline; the continuation alone is returned), or through any decoding-time score source (e.g.
DExperts) passed as `make_source`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from unidetox.method.sampling import (
    CausalLMSource,
    SamplingParams,
    ScoreSource,
    make_generator,
    sample_loop,
    strip_after_eos,
)


@dataclass(frozen=True)
class GenerationSettings:
    """What moves the numbers; stored with every result."""

    samples_per_prompt: int = 25
    max_new_tokens: int = 20
    temperature: float = 1.0
    top_p: float = 0.9
    top_k: int = 50
    batch_size: int = 64  # rows (prompt x sample) per forward pass
    prefix: str = ""  # prepended to each prompt at generation time, never scored

    @property
    def params(self) -> SamplingParams:
        return SamplingParams(temperature=self.temperature, top_k=self.top_k, top_p=self.top_p)

    @property
    def prompts_per_unit(self) -> int:
        return max(1, self.batch_size // self.samples_per_prompt)


def plan_units(n_prompts: int, settings: GenerationSettings) -> list[tuple[int, int]]:
    """``[(start, end), ...]`` prompt ranges, one per unit of work."""
    step = settings.prompts_per_unit
    return [(i, min(i + step, n_prompts)) for i in range(0, n_prompts, step)]


def generate_unit(
    model: torch.nn.Module,
    tokenizer,
    prompts: Sequence[str],
    settings: GenerationSettings,
    generator: torch.Generator,
    make_source: Callable[[], ScoreSource] | None = None,
    max_prompt_tokens: int | None = None,
) -> list[list[str]]:
    """k continuations for each prompt: ``[[str] * k] * len(prompts)``; prompt text excluded.

    A prompt longer than `max_prompt_tokens` tokens (prefix included) is cut from the left: see :func:`fit_left`.
    """
    k = settings.samples_per_prompt
    texts = [settings.prefix + p for p in prompts]
    enc = tokenizer(texts, padding=True, padding_side="left", return_tensors="pt")
    ids, mask = enc.input_ids, enc.attention_mask
    if max_prompt_tokens is not None and ids.shape[1] > max_prompt_tokens:
        ids, mask = fit_left(tokenizer, settings.prefix, prompts, max_prompt_tokens)
    source = make_source() if make_source is not None else CausalLMSource(model)
    new = sample_loop(  # each prompt is encoded once; its KV cache is shared by its k samples
        source,
        ids,
        mask,
        repeats=k,
        max_new_tokens=settings.max_new_tokens,
        params=settings.params,
        generator=generator,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    rows = [tokenizer.decode(r, skip_special_tokens=True) for r in strip_after_eos(new, tokenizer.eos_token_id)]
    return [rows[i * k : (i + 1) * k] for i in range(len(prompts))]


def fit_left(tokenizer, prefix: str, prompts: Sequence[str], limit: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded ``(ids, mask)``, ``(n, <= limit)``, of ``prefix + prompt`` for each prompt, at most `limit` tokens.

    A longer prompt loses its first tokens; its head (the start token the tokenizer adds, and `prefix`) stays,
    unless the head alone fills `limit`, when the last `limit` tokens are kept.
    """
    head = len(tokenizer(prefix).input_ids)
    rows = []
    for ids in tokenizer([prefix + p for p in prompts]).input_ids:
        if len(ids) > limit:
            ids = ids[:head] + ids[len(ids) - (limit - head) :] if head < limit else ids[-limit:]
        rows.append(ids)
    width = max(map(len, rows))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], dtype=torch.long)
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], dtype=torch.long)
    return ids, mask


def unit_generator(device: torch.device | str, seed: int, unit: int) -> torch.Generator:
    return make_generator(device, seed, unit, 7919)
