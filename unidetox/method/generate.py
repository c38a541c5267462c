"""Batched continuation sampling for evaluation: k continuations per prompt, left padding, KV cache.

Work is cut into *units* of whole prompts (``batch_size // k`` prompts, so ``<= batch_size`` rows);
each unit has its own generator seeded by ``(seed, unit)``, so results do not depend on how units
are spread over processes, and a resumed run regenerates nothing that was finished.

A model is evaluated plain, with a fixed prefix prepended to every prompt (the safety pre-prompt
baseline; the continuation alone is returned), or through any decoding-time score source (e.g.
DExperts) passed as `make_source`.

Chat mode (``chat``): each prompt is the user's turn of a conversation rendered by the tokenizer's chat template,
with the generation prompt added, so the continuation is the assistant's reply; a system message holds
``system_prompt`` and then the prefix (the pre-prompt baseline's text). The rendered text already holds the
template's special tokens, so it is tokenised without adding any (as ``apply_chat_template`` does).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from unidetox.errors import UnidetoxError
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
    prefix: str = ""  # prepended to each prompt at generation time (chat mode: in the system message), never scored
    chat: bool = False  # prompts rendered by the tokenizer's chat template (the user's turn)
    system_prompt: str = ""  # chat mode: the system message, before the prefix

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
    texts, special = render_prompts(tokenizer, prompts, settings)
    enc = tokenizer(texts, padding=True, padding_side="left", return_tensors="pt", add_special_tokens=special)
    ids, mask = enc.input_ids, enc.attention_mask
    if max_prompt_tokens is not None and ids.shape[1] > max_prompt_tokens:
        if settings.chat:
            ids, mask = fit_left_chat(tokenizer, system_message(settings), prompts, max_prompt_tokens)
        else:
            ids, mask = fit_left(tokenizer, settings.prefix, prompts, max_prompt_tokens)
    source = make_source() if make_source is not None else CausalLMSource(model, log_probs=False)
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
    return _left_padded(tokenizer, rows)


def fit_left_chat(tokenizer, system: str, prompts: Sequence[str], limit: int) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`fit_left` in chat mode: a rendered prompt longer than `limit` tokens keeps the template's text before
    and after the user's turn whole and loses the first tokens of the prompt (the last `limit` tokens are kept when
    the template's text alone fills `limit`, or where the template does not copy the prompt verbatim)."""
    head, found, tail = render_chat(tokenizer, _SLOT, system).partition(_SLOT)
    h, t = (tokenizer(x, add_special_tokens=False).input_ids for x in (head, tail))
    room = limit - len(h) - len(t)
    rows = []
    for p in prompts:
        ids = tokenizer(render_chat(tokenizer, p, system), add_special_tokens=False).input_ids
        if len(ids) > limit:
            kept = tokenizer(p, add_special_tokens=False).input_ids[-room:] if found and room > 0 else None
            ids = h + kept + t if kept else ids[-limit:]
        rows.append(ids)
    return _left_padded(tokenizer, rows)


def _left_padded(tokenizer, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token id rows -> left-padded ``(ids, mask)``."""
    width = max(map(len, rows))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], dtype=torch.long)
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], dtype=torch.long)
    return ids, mask


def unit_generator(device: torch.device | str, seed: int, unit: int) -> torch.Generator:
    return make_generator(device, seed, unit, 7919)


# ----------------------------------------------------------------------------- chat templates

_SLOT = "\x00prompt\x00"  # stands for the user's text when the template is split around it


class ChatTemplateError(UnidetoxError, ValueError):
    """A chat template that cannot render the evaluation's conversation."""


def chat_template_of(tokenizer) -> str | None:
    """The tokenizer's chat template (its default one when it names several), None when it has none."""
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):
        template = template.get("default")
    return template if isinstance(template, str) and template.strip() else None


def chat_template_sha256(tokenizer) -> str | None:
    """SHA-256 of the chat template's text (None without one): recorded with every chat-mode result."""
    template = chat_template_of(tokenizer)
    return None if template is None else hashlib.sha256(template.encode("utf-8")).hexdigest()


def system_message(settings: GenerationSettings) -> str:
    """Chat mode's system message: ``system_prompt`` then the prefix (the pre-prompt), each stripped; "" = none."""
    return "\n\n".join(x.strip() for x in (settings.system_prompt, settings.prefix) if x.strip())


def render_chat(tokenizer, prompt: str, system: str = "") -> str:
    """One conversation as the model reads it: [system], user `prompt`, then the assistant's generation prompt."""
    from jinja2 import TemplateError  # transformers renders templates with jinja2

    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": prompt})
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except (TemplateError, ValueError, TypeError) as e:  # e.g. a template's raise_exception("System role not
        raise ChatTemplateError(  # supported"): one clear line instead of a traceback
            f"the chat template cannot render the evaluation's conversation ({type(e).__name__}: {e}). Fix: "
            "--set eval.system_prompt='' (a template without a system role), or --set eval.chat_template=off"
        ) from None


def render_prompts(tokenizer, prompts: Sequence[str], settings: GenerationSettings) -> tuple[list[str], bool]:
    """(the texts the model reads for `prompts`, whether the tokenizer adds its special tokens to them): the prefix
    and the prompt as raw text, or in chat mode the rendered conversation (whose special tokens are in the text)."""
    if not settings.chat:
        return [settings.prefix + p for p in prompts], True
    system = system_message(settings)
    return [render_chat(tokenizer, p, system) for p in prompts], False


def prompt_lengths(tokenizer, prompts: Sequence[str], settings: GenerationSettings) -> list[int]:
    """Tokens the model reads for each prompt (prefix or chat template included)."""
    texts, special = render_prompts(tokenizer, prompts, settings)
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=special)["input_ids"]]
