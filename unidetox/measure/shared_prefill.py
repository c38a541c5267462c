"""The shared-prefill path of :func:`unidetox.measure.likelihood.continuation_logprobs_shared`: how pairs are packed
into forward passes, and one block's passes (each distinct prompt prefilled once with a KV cache, its rows repeated
for its continuations, log-probs read at the continuation positions only)."""

from __future__ import annotations

import copy

import torch


def pack_groups(groups: list[tuple[tuple[int, ...], list[int]]], batch_size: int) -> list[list[list[tuple]]]:
    """Plan the forward passes of the shared-prefix path.

    groups: ``[(prompt_ids, [pair index, ...]), ...]``. Each group is split into pieces of at most `batch_size`
    pairs; whole pieces, longest prompts first, are packed into chunks of at most `batch_size` pairs (the rows of
    one continuation pass), and consecutive chunks into blocks of at most `batch_size` distinct prompts (the rows
    of one prefill pass). Returns blocks, each a list of chunks, each a list of pieces ``(prompt_ids, [i, ...])``.
    """
    pieces = [(p, idx[s : s + batch_size]) for p, idx in groups for s in range(0, len(idx), batch_size)]
    pieces.sort(key=lambda g: -len(g[0]))
    chunks: list[list[tuple]] = []
    rows = batch_size
    for piece in pieces:
        if rows + len(piece[1]) > batch_size:
            chunks.append([])
            rows = 0
        chunks[-1].append(piece)
        rows += len(piece[1])
    blocks: list[list[list[tuple]]] = []
    seen: set[tuple[int, ...]] = set()
    for chunk in chunks:
        prompts = {p for p, _ in chunk}
        if not blocks or len(seen | prompts) > batch_size:
            blocks.append([])
            seen = set()
        blocks[-1].append(chunk)
        seen |= prompts
    return blocks


def row_logprobs(logits: torch.Tensor, targets: torch.Tensor, block: int = 128) -> torch.Tensor:
    """log softmax(logits)[target] for logits ``(N, V)`` and targets ``(N,)``, `block` rows at a time; float32.

    (``log_softmax`` then gather: on CPU it is about twice as fast as ``logsumexp`` over a large vocabulary.)
    """
    out = [
        torch.log_softmax(logits[s : s + block].float(), dim=-1).gather(-1, targets[s : s + block, None])[:, 0]
        for s in range(0, logits.shape[0], block)
    ]
    return torch.cat(out) if out else logits.new_zeros(0, dtype=torch.float32)


@torch.no_grad()
def score_shared_block(
    model, pairs: list[tuple[list[int], int]], block: list[list[tuple]], pad_id: int, device, by_mask: bool
) -> list[dict[int, float] | None]:
    """Sum of continuation log-probs for each pair of a block (see :func:`pack_groups`), one dict per chunk.

    The block's distinct prompts are left padded and encoded once with a KV cache (position ids
    ``cumsum(mask) - 1``); the last prompt position's logits score every pair's first continuation token. For
    each chunk the cache rows are repeated once per pair and the continuation tokens but the last (right padded,
    positions continuing from the prompt's length) are run in one forward pass whose logits score tokens 2..n.
    None for a chunk that cannot be scored this way (NaN log-probs, no KV cache returned, logits of an
    unexpected shape): the caller scores its pairs with the reference path.
    """
    prompts = list(dict.fromkeys(p for chunk in block for p, _ in chunk))
    row_of = {p: g for g, p in enumerate(prompts)}
    pw = max(len(p) for p in prompts)
    p_ids = torch.full((len(prompts), pw), pad_id, dtype=torch.long)
    p_mask = torch.zeros((len(prompts), pw), dtype=torch.long)
    for g, p in enumerate(prompts):
        p_ids[g, pw - len(p) :] = torch.tensor(p)
        p_mask[g, pw - len(p) :] = 1
    p_pos = (p_mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=p_ids.to(device), attention_mask=p_mask.to(device), position_ids=p_pos.to(device),
                use_cache=True, logits_to_keep=1)  # fmt: skip
    cache = getattr(out, "cache", None)
    if cache is None:
        cache = getattr(out, "past_key_values", None)
    first = torch.log_softmax(out.logits[:, -1, :].float(), dim=-1)  # (n_prompts, V): predicts token 1
    if torch.isnan(first).any():
        return [None] * len(block)
    results = []
    for c, chunk in enumerate(block):
        # every chunk but the last repeats rows of its own copy of the prefill cache
        chunk_cache = cache if c == len(block) - 1 or cache is None else copy.deepcopy(cache)
        results.append(score_chunk(model, pairs, chunk, row_of, first, p_mask, chunk_cache, pad_id, device, by_mask))
    return results


def score_chunk(model, pairs, chunk, row_of, first, p_mask, cache, pad_id, device, by_mask) -> dict[int, float] | None:
    """One continuation pass of :func:`score_shared_block` over the pairs of `chunk`."""
    rep = [row_of[p] for p, idx in chunk for _ in idx]
    order = [i for _, idx in chunk for i in idx]
    conts = [pairs[i][0][pairs[i][1] :] for i in order]
    rep_t = torch.tensor(rep, device=device)
    sums = first[rep_t, torch.tensor([c[0] for c in conts], device=device)].double()
    cw = max(len(c) for c in conts) - 1  # the last continuation token is predicted, never fed
    if cw > 0:
        if cache is None or not hasattr(cache, "batch_select_indices"):
            return None
        cache.batch_select_indices(rep_t)
        c_ids = torch.full((len(conts), cw), pad_id, dtype=torch.long)
        c_mask = torch.zeros((len(conts), cw), dtype=torch.long)
        targets = torch.zeros((len(conts), cw), dtype=torch.long)
        for r, c in enumerate(conts):
            c_ids[r, : len(c) - 1] = torch.tensor(c[:-1], dtype=torch.long)
            c_mask[r, : len(c) - 1] = 1
            targets[r, : len(c) - 1] = torch.tensor(c[1:], dtype=torch.long)
        n_p = p_mask.sum(-1)[torch.tensor(rep)]
        steps = torch.arange(cw).unsqueeze(0)
        # padding positions repeat the row's last real position, so they never exceed the model's context
        c_pos = n_p[:, None] + torch.minimum(steps, (c_mask.sum(-1, keepdim=True) - 1).clamp(min=0))
        mask = torch.cat([p_mask[torch.tensor(rep)], c_mask], dim=1)
        keep = c_mask.bool().to(device)
        out = model(input_ids=c_ids.to(device), attention_mask=mask.to(device), position_ids=c_pos.to(device),
                    cache=cache, use_cache=True, logits_to_keep=keep if by_mask else 0)  # fmt: skip
        logits = out.logits if by_mask else out.logits[keep]
        if logits.ndim != 2 or logits.shape[0] != int(keep.sum()):
            return None
        lp = row_logprobs(logits, targets.to(device)[keep]).double()
        row = torch.arange(len(conts), device=device)[:, None].expand(-1, cw)[keep]
        sums = sums.index_add(0, row, lp)
    if torch.isnan(sums).any():
        return None
    return dict(zip(order, sums.tolist()))
