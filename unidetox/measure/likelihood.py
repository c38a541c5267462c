"""Log-likelihood of continuations given prompts under a causal LM, batched with padding.

Tokenisation rule (exact conditional likelihood of the continuation's tokens given the prompt's tokens):

- prompt tokens = ``tokenizer(prompt, add_special_tokens=False)``, preceded by BOS when the tokenizer itself
  adds a BOS (Llama-style). When that leaves no prompt token (empty prompt, GPT-2-style tokenizer), the start
  token (BOS, else EOS) is prepended, so the first continuation token is always conditioned on something.
- continuation tokens = the tokens of ``prompt + continuation`` (tokenised together) beyond the prompt's
  tokens, when the prompt's tokens are a prefix of that joint tokenisation: the usual case, and the right one
  for SentencePiece tokenizers that put a dummy space in front of any text they tokenise (Llama-2 would turn
  a lone ``" mat"`` into ``["▁", "▁mat"]``; after the prompt it is ``["▁mat"]``).
- otherwise a token straddles the boundary (prompt ``"the ma"`` + continuation ``"t"`` merge into ``" mat"``):
  the prompt keeps its own tokens and the continuation is tokenised on its own.
- score = sum over the continuation tokens of log p(token | prompt tokens, earlier continuation tokens).

(The official UniDetox code tokenised prompt and prompt+generation separately and subtracted the losses;
that equals this score when the prompt's tokens are a prefix of the joint ones, and is approximate otherwise.)
When a sequence exceeds the model's context, the oldest prompt tokens are dropped (BOS kept).

:func:`continuation_logprobs` runs one padded forward pass per pair (the reference);
:func:`continuation_logprobs_shared` gives the same numbers with each distinct prompt encoded once and its KV
cache reused by all of its continuations (used by :func:`conditional_perplexity`, i.e. the evaluation).

>>> from unidetox.models.loading import load_model
>>> lm = load_model("tiny:gpt2")
>>> [(round(lp, 1), n) for lp, n in continuation_logprobs(lm.model, lm.tokenizer, ["Hello"], [" world"])]
[(-10.9, 1)]
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Sequence

import numpy as np
import torch

from unidetox.errors import UnidetoxError
from unidetox.measure.shared_prefill import pack_groups, score_shared_block
from unidetox.models.loading import model_max_length


class LikelihoodError(UnidetoxError, ValueError):
    """Inputs that cannot be scored; the message names the problem and the fix."""


def adds_bos(tokenizer) -> bool:
    """Whether the tokenizer puts a BOS token in front of a text when asked for special tokens."""
    bos = tokenizer.bos_token_id
    if bos is None:
        return False
    with_special = tokenizer("a", add_special_tokens=True).input_ids
    plain = tokenizer("a", add_special_tokens=False).input_ids
    return len(with_special) > len(plain) and with_special[0] == bos


def _start_token(tokenizer) -> int:
    tok = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if tok is None:
        raise LikelihoodError("the tokenizer has neither BOS nor EOS, so an empty prompt cannot be scored")
    return tok


def encode_pairs(
    tokenizer, prompts: Sequence[str], continuations: Sequence[str], max_length: int | None = None
) -> list[tuple[list[int], int]]:
    """Token ids of each prompt+continuation and the number of prompt tokens, by the module's tokenisation rule.

    Returns one (ids, n_prompt) per pair; the continuation tokens are ``ids[n_prompt:]``.
    """
    if isinstance(prompts, str) or isinstance(continuations, str):
        raise LikelihoodError("prompts and continuations must be lists of strings, not a single string")
    if len(prompts) != len(continuations):
        raise LikelihoodError(f"{len(prompts)} prompts but {len(continuations)} continuations; pass one per pair")
    if len(prompts) == 0:
        return []
    p_ids = tokenizer(list(prompts), add_special_tokens=False).input_ids
    joint = tokenizer([p + c for p, c in zip(prompts, continuations)], add_special_tokens=False).input_ids
    c_ids = [list(j[len(p) :]) if list(j[: len(p)]) == list(p) else None for p, j in zip(p_ids, joint)]
    straddle = [i for i, c in enumerate(c_ids) if c is None]  # a token crosses the boundary: tokenise apart
    if straddle:
        alone = tokenizer([continuations[i] for i in straddle], add_special_tokens=False).input_ids
        for i, c in zip(straddle, alone):
            c_ids[i] = list(c)
    bos = [tokenizer.bos_token_id] if adds_bos(tokenizer) else []
    out = []
    for p, c in zip(p_ids, c_ids):
        p = bos + list(p)
        if not p:
            p = [_start_token(tokenizer)]
        if max_length is not None and len(p) + len(c) > max_length:
            if len(c) + len(bos) + 1 > max_length:
                raise LikelihoodError(
                    f"a continuation of {len(c)} tokens does not fit the model's context of {max_length} tokens; "
                    "shorten the continuations"
                )
            p = bos + p[len(bos) :][-(max_length - len(c) - len(bos)) :]
        out.append((p + list(c), len(p)))
    return out


def _accepts(model, name: str) -> bool:
    try:
        return name in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):  # pragma: no cover - exotic wrappers
        return False


@torch.no_grad()
def _score_batch(model, seqs: list[tuple[list[int], int]], pad_id: int, padding_side: str, device) -> list[float]:
    """Sum of continuation-token log-probs for each (ids, n_prompt) in one padded forward pass."""
    width = max(len(ids) for ids, _ in seqs)
    input_ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    offsets = []
    for i, (ids, _) in enumerate(seqs):
        off = width - len(ids) if padding_side == "left" else 0
        input_ids[i, off : off + len(ids)] = torch.tensor(ids)
        mask[i, off : off + len(ids)] = 1
        offsets.append(off)
    # logits at position t predict token t+1: for row i we need positions off+n_prompt-1 .. off+len-2
    first = min(off + n_p - 1 for off, (_, n_p) in zip(offsets, seqs))
    keep = width - first
    kwargs = {"input_ids": input_ids.to(device), "attention_mask": mask.to(device)}
    if _accepts(model, "position_ids"):
        kwargs["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0).to(device)
    if _accepts(model, "logits_to_keep"):
        kwargs["logits_to_keep"] = keep
        start = width - keep
    else:
        start = 0
    logits = model(**kwargs).logits  # (batch, width - start, vocab)
    out = []
    for i, ((ids, n_p), off) in enumerate(zip(seqs, offsets)):
        lo, hi = off + n_p - 1 - start, off + len(ids) - 1 - start
        logp = torch.log_softmax(logits[i, lo:hi].float(), dim=-1)
        target = torch.tensor(ids[n_p:], device=logp.device)
        out.append(float(logp.gather(-1, target[:, None]).sum()))
    return out


def _encode(model, tokenizer, prompts: Sequence[str], continuations: Sequence[str], device):
    """The pairs' token ids (truncated to the model's context), the device (default: the model's) and the pad id."""
    pairs = encode_pairs(tokenizer, prompts, continuations, model_max_length(model))
    if device is None:
        device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        pad_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
    return pairs, device, pad_id


def continuation_logprobs(
    model,
    tokenizer,
    prompts: Sequence[str],
    continuations: Sequence[str],
    batch_size: int = 16,
    device=None,
    padding_side: str = "left",
) -> list[tuple[float, int]]:
    """(sum of log p(continuation tokens | prompt) in nats, number of continuation tokens) per pair.

    Pairs are sorted by length and scored `batch_size` at a time with padding on `padding_side` (results do
    not depend on either; left padding keeps only the logits the continuations need, and a left-padded batch
    whose result is NaN is scored again with right padding; a model whose forward takes no ``position_ids`` is
    always right padded, as left padding would shift its positions). A continuation without tokens gives
    (0.0, 0). `device` defaults to the model's.
    """
    if batch_size < 1:
        raise LikelihoodError(f"batch_size must be >= 1, got {batch_size}")
    if padding_side not in ("left", "right"):
        raise LikelihoodError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    if not _accepts(model, "position_ids"):
        padding_side = "right"
    pairs, device, pad_id = _encode(model, tokenizer, prompts, continuations, device)
    results: list[tuple[float, int]] = [(0.0, 0)] * len(pairs)
    todo = sorted((i for i, (ids, n_p) in enumerate(pairs) if len(ids) > n_p), key=lambda i: -len(pairs[i][0]))
    for b in range(0, len(todo), batch_size):
        chunk = todo[b : b + batch_size]
        batch = [pairs[i] for i in chunk]
        sums = _score_batch(model, batch, pad_id, padding_side, device)
        if padding_side == "left" and any(np.isnan(sums)):
            # some attention kernels give NaN on rows that are all padding; right padding never has such rows
            sums = _score_batch(model, batch, pad_id, "right", device)
        if any(np.isnan(sums)):
            raise LikelihoodError("the model produced NaN log-probabilities; check the weights and dtype (try float32)")
        for i, s in zip(chunk, sums):
            results[i] = (s, len(pairs[i][0]) - pairs[i][1])
    return results


def _keeps_logits_by_mask(model) -> bool:
    """Whether `model.forward` passes `logits_to_keep` through transformers' ``slice_logits_to_keep``.

    That helper accepts a boolean ``(B, T)`` mask and returns logits for the True positions only, flattened.
    """
    module = sys.modules.get(getattr(type(model).forward, "__module__", ""), None)
    return getattr(module, "slice_logits_to_keep", None) is not None


def _supports_shared(model) -> bool:
    return all(_accepts(model, k) for k in ("cache", "use_cache", "position_ids", "logits_to_keep"))


def continuation_logprobs_shared(
    model, tokenizer, prompts: Sequence[str], continuations: Sequence[str], batch_size: int = 16, device=None
) -> list[tuple[float, int]]:
    """Same result as :func:`continuation_logprobs`, with each distinct prompt encoded once for all its pairs.

    Pairs are tokenised by the module's rule and grouped by their prompt tokens (after any truncation, so a
    straddle pair shares its prompt with the others); pairs with identical tokens are scored once. Up to
    `batch_size` distinct prompts are prefilled in one forward pass with a KV cache; the cache rows are then
    repeated per pair and the continuations scored in passes of at most `batch_size` rows (counting every
    repeat of a prompt). Only the logits at real continuation positions are computed where the model
    supports a boolean ``logits_to_keep``. Models without a KV cache interface (``cache``, ``use_cache``,
    ``position_ids``, ``logits_to_keep``), and chunks whose result is NaN (some attention kernels on padded
    rows) or that return no cache, are scored by :func:`continuation_logprobs`. Returns ``(sum of log p in
    nats, n tokens)`` per pair; ``(0.0, 0)`` for an empty continuation.
    """
    if batch_size < 1:
        raise LikelihoodError(f"batch_size must be >= 1, got {batch_size}")
    if not _supports_shared(model):
        return continuation_logprobs(model, tokenizer, prompts, continuations, batch_size=batch_size, device=device)
    pairs, device, pad_id = _encode(model, tokenizer, prompts, continuations, device)
    groups: dict[tuple[int, ...], list[int]] = {}
    first_of: dict[tuple[int, tuple[int, ...]], int] = {}
    copies: list[tuple[int, int]] = []  # (pair, the identical pair that is scored instead)
    for i, (ids, n_p) in enumerate(pairs):
        if len(ids) > n_p:
            j = first_of.setdefault((n_p, tuple(ids)), i)
            if j != i:
                copies.append((i, j))
            else:
                groups.setdefault(tuple(ids[:n_p]), []).append(i)
    results: list[tuple[float, int]] = [(0.0, 0)] * len(pairs)
    by_mask = _keeps_logits_by_mask(model)
    retry: list[int] = []
    for block in pack_groups(list(groups.items()), batch_size):
        for chunk, sums in zip(block, score_shared_block(model, pairs, block, pad_id, device, by_mask)):
            if sums is None:
                retry.extend(i for _, idx in chunk for i in idx)
                continue
            for i, s in sums.items():
                results[i] = (s, len(pairs[i][0]) - pairs[i][1])
    if retry:  # the reference path has its own right-padding fallback, and raises on NaN
        redo = continuation_logprobs(model, tokenizer, [prompts[i] for i in retry], [continuations[i] for i in retry],
                                     batch_size=batch_size, device=device)  # fmt: skip
        for i, r in zip(retry, redo):
            results[i] = r
    for i, j in copies:
        results[i] = results[j]
    return results


def conditional_perplexity(
    model,
    tokenizer,
    prompts: Sequence[str],
    continuations: Sequence[str],
    batch_size: int = 16,
    device=None,
    shared: bool = True,
) -> np.ndarray:
    """Per-pair perplexity of the continuation given the prompt: exp(-sum log p / n_tokens); NaN when 0 tokens.

    `shared` scores with :func:`continuation_logprobs_shared` (each distinct prompt encoded once), else with
    :func:`continuation_logprobs`; both give the same numbers. Returns shape (n_pairs,), float64.
    """
    score = continuation_logprobs_shared if shared else continuation_logprobs
    scored = score(model, tokenizer, prompts, continuations, batch_size=batch_size, device=device)
    lp = np.array([s for s, _ in scored], dtype=float)
    n = np.array([k for _, k in scored], dtype=float)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        return np.where(n > 0, np.exp(-lp / np.where(n > 0, n, 1.0)), np.nan)


__all__ = [
    "LikelihoodError",
    "adds_bos",
    "conditional_perplexity",
    "continuation_logprobs",
    "continuation_logprobs_shared",
    "encode_pairs",
]
