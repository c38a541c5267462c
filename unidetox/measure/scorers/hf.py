"""Hugging Face sequence classifiers as scorers (``hf:<hub id or local dir>[#<label>]``) and the ``tiny`` test one."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unidetox.measure.scorers.base import ScorerError, check_batch_size, check_texts, scorer_device

#: Label names (case-insensitive, in this order of preference) that :func:`toxic_label_index` takes as "toxic".
TOXIC_LABEL_NAMES = ("toxic", "toxicity", "hate")


def toxic_label_index(id2label: Mapping[int, str], label: str | None = None) -> int:
    """The output index that means "toxic".

    Rule: an explicit `label` (the ``#<label>`` spec suffix) must equal one label name (case-insensitive) or be
    an output index. Otherwise the first of ``TOXIC_LABEL_NAMES`` ("toxic", "toxicity", "hate") found among the
    names (case-insensitive, exact match, so "non-toxic" never matches); else ``LABEL_1`` for an unnamed binary
    head; else index 0 for a single-output head. Anything else is ambiguous and raises :class:`ScorerError`.
    """
    names = {int(i): str(n) for i, n in id2label.items()}
    lower = {n.lower(): i for i, n in sorted(names.items())}
    shown = ", ".join(f"{i}:{n!r}" for i, n in sorted(names.items()))
    if label is not None:
        if label.lower() in lower:
            return lower[label.lower()]
        if label.isdigit() and int(label) in names:
            return int(label)
        raise ScorerError(f"label {label!r} is not one of the model's labels ({shown})")
    for want in TOXIC_LABEL_NAMES:
        if want in lower:
            return lower[want]
    if len(names) == 2 and "label_1" in lower:
        return lower["label_1"]
    if len(names) == 1:
        return next(iter(names))
    raise ScorerError(
        f"cannot tell which output is toxic among the labels ({shown}); name it in the spec, e.g. 'hf:<model>#<label>'"
    )


def hf_max_length(tokenizer: Any, config: Any) -> int:
    """Longest input (tokens) the model accepts: min of the tokenizer's and the config's limits (512 if none)."""
    limits = []
    tok_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(tok_max, int) and 0 < tok_max < 1_000_000:
        limits.append(tok_max)
    for key in ("max_position_embeddings", "n_positions"):
        v = getattr(config, key, None)
        if isinstance(v, int) and v > 0:
            limits.append(v)
            break
    return min(limits) if limits else 512


def _content_hash(model: torch.nn.Module, tokenizer: Any, extra: str = "") -> str:
    """sha256 (16 hex) over the weights (names, dtypes, shapes, bytes), the tokenizer vocabulary and `extra`."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    h.update(json.dumps(vocab, ensure_ascii=False).encode())
    h.update(extra.encode())
    return h.hexdigest()[:16]


class HFScorer:
    """A sequence classifier + tokenizer scoring P(label) per text (the model is kept in fp32, eval mode).

    Inputs are truncated to :func:`hf_max_length` tokens; a text that tokenizes to nothing (e.g. "" with GPT-2)
    is scored as the single token BOS/EOS/UNK. Texts are sorted by length into batches of `batch_size`.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        *,
        name: str,
        label: str | None = None,
        device: str = "cpu",
        batch_size: int = 64,
        version: str | None = None,
    ):
        cfg = model.config
        if tokenizer.pad_token_id is None:
            if tokenizer.eos_token_id is None:
                raise ScorerError(f"{name}: the tokenizer has neither a pad nor an EOS token, so it cannot batch")
            tokenizer.pad_token = tokenizer.eos_token
        if getattr(cfg, "pad_token_id", None) is None:
            cfg.pad_token_id = tokenizer.pad_token_id
        id2label = cfg.id2label or {i: f"LABEL_{i}" for i in range(cfg.num_labels)}
        self.label_index = toxic_label_index(id2label, label)
        self.label_name = str(id2label[self.label_index])
        self.use_sigmoid = cfg.problem_type == "multi_label_classification" or cfg.num_labels == 1
        self.max_length = hf_max_length(tokenizer, cfg)
        self.batch_size = check_batch_size(batch_size)
        self.device = scorer_device(device)
        self.name = name
        self.version = version or "sha256:" + _content_hash(
            model, tokenizer, f"{self.label_index}|{self.use_sigmoid}|{self.max_length}"
        )
        self.tokenizer = tokenizer
        self.model = model.float().to(self.device).eval()
        for tid in (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id, tokenizer.pad_token_id):
            if tid is not None:
                self._filler = int(tid)
                break
        else:
            self._filler = 0

    def _encode(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Token ids, attention mask (and token types) padded to the batch's longest text, shape (b, L)."""
        enc = self.tokenizer(texts, truncation=True, max_length=self.max_length)
        ids = [list(x) or [self._filler] for x in enc["input_ids"]]
        width = max(len(x) for x in ids)
        left = getattr(self.tokenizer, "padding_side", "right") == "left"

        def pad(rows: list[list[int]], value: int) -> torch.Tensor:
            out = [([value] * (width - len(r)) + r) if left else (r + [value] * (width - len(r))) for r in rows]
            return torch.tensor(out, dtype=torch.long, device=self.device)

        batch = {
            "input_ids": pad(ids, self.tokenizer.pad_token_id),
            "attention_mask": pad([[1] * len(x) for x in ids], 0),
        }
        if "token_type_ids" in enc:
            types = [list(t) or [0] for t in enc["token_type_ids"]]
            batch["token_type_ids"] = pad(types, getattr(self.tokenizer, "pad_token_type_id", 0))
        return batch

    def probabilities(self, logits: torch.Tensor) -> np.ndarray:
        """(b, num_labels) logits -> (b,) float64 P(toxic label): sigmoid or softmax as the model was trained."""
        logits = logits.double()
        if self.use_sigmoid:
            return torch.sigmoid(logits[:, self.label_index]).cpu().numpy()
        return torch.softmax(logits, dim=-1)[:, self.label_index].cpu().numpy()

    def score(self, texts: Sequence[str]) -> np.ndarray:
        texts = check_texts(texts)
        out = np.empty(len(texts), dtype=np.float64)
        order = np.argsort([len(t) for t in texts], kind="stable")
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                idx = order[start : start + self.batch_size]
                logits = self.model(**self._encode([texts[i] for i in idx])).logits
                out[idx] = self.probabilities(logits)
        return out


def load_hf(spec_arg: str, *, device: str = "cpu", batch_size: int = 64, trust_remote_code: bool = False) -> HFScorer:
    """The scorer for ``hf:<spec_arg>``, `spec_arg` being ``<hub id or local dir>[#<label>]`` (safetensors only)."""
    target, _, label = spec_arg.partition("#")
    label = label or None
    if not target:
        raise ScorerError("empty hf: spec; use hf:<hub id or local dir>, e.g. hf:unitary/toxic-bert")
    local = Path(target).expanduser()
    if target.startswith(("/", ".", "~")) or local.is_dir():
        if not local.is_dir():
            raise ScorerError(f"hf:{target}: no such directory")
        files = [p.name for p in local.iterdir()]
        if not any(f.endswith(".safetensors") for f in files):
            raise ScorerError(
                f"{local} holds no .safetensors weights (files: {', '.join(sorted(files)) or 'none'}); unidetox loads "
                "safetensors only, since pickle weights can run arbitrary code. Convert once in a trusted environment "
                "with `model.save_pretrained(dir, safe_serialization=True)`."
            )
        path = str(local)
    else:
        path = target
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        model = AutoModelForSequenceClassification.from_pretrained(
            path, use_safetensors=True, trust_remote_code=trust_remote_code, dtype=torch.float32
        )
    except (OSError, ValueError) as e:
        from unidetox.models.hub import explain, hub_problem

        if path == target and hub_problem(e) != "other":  # a Hub id: gated, unknown or offline, said as such
            raise ScorerError(
                f"cannot load the classifier {target!r}: {explain('model', target, e)} Offline, use a local directory "
                "(hf:<dir>) or the offline scorer 'toxblock'."
            ) from None
        raise ScorerError(
            f"cannot load the classifier {target!r} ({type(e).__name__}: {e}). It must be a local directory written "
            "by save_pretrained (safetensors) or a Hub id reachable now; offline, download it elsewhere, copy the "
            "directory here and use hf:<dir>, or use the offline scorer 'toxblock'."
        ) from None
    name = f"hf:{target}" + (f"#{label}" if label is not None else "")
    return HFScorer(model, tokenizer, name=name, label=label, device=device, batch_size=batch_size)


def tiny_classifier() -> tuple[torch.nn.Module, Any]:
    """A tiny random GPT-2 sequence classifier (seed 0; one multi-label output named "toxic") and its tokenizer.

    The score head is initialised wider (std 0.5) than GPT-2's default so that probabilities spread over (0, 1).
    """
    from transformers import GPT2Config, GPT2ForSequenceClassification

    from unidetox.models.tiny import tiny_tokenizer

    tok = tiny_tokenizer("gpt2")
    cfg = GPT2Config(
        vocab_size=len(tok), n_positions=512, n_embd=32, n_layer=2, n_head=2, num_labels=1,
        problem_type="multi_label_classification", id2label={0: "toxic"}, label2id={"toxic": 0},
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = GPT2ForSequenceClassification(cfg)
        torch.nn.init.normal_(model.score.weight, std=0.5)
    return model.eval(), tok


def load_tiny(*, device: str = "cpu", batch_size: int = 64) -> HFScorer:
    """The ``tiny`` scorer: :func:`tiny_classifier` behind :class:`HFScorer`."""
    model, tok = tiny_classifier()
    return HFScorer(model, tok, name="tiny", device=device, batch_size=batch_size)


__all__ = [
    "TOXIC_LABEL_NAMES",
    "HFScorer",
    "hf_max_length",
    "load_hf",
    "load_tiny",
    "tiny_classifier",
    "toxic_label_index",
]
