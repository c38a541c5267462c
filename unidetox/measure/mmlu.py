"""MMLU by choice log-likelihood, k-shot, as the official UniDetox evaluation.

Prompt for a test question with `shots` exemplars (the first `shots` dev rows of the same subject)::

    Question: {dev question}\\nAnswer: {dev correct choice text}\\n\\n     (once per exemplar)
    Question: {question}\\nAnswer: {choice text}

Each of the four choices is scored by the sum of its token log-probabilities given the prompt; the prediction
is the argmax (first index on ties). The official code compared log p of the whole text prompt+choice,
tokenised jointly; since the prompt is shared, that ranks choices by the choice's conditional likelihood
with the joint tokenisation at the boundary. We reproduce that boundary by moving the prompt's trailing
spaces onto the continuation (context ``...Answer:``, continuation ``" " + choice``), as lm-evaluation-harness
does, so BPE tokenizers see ``" Paris"`` rather than ``" "`` + ``"Paris"``.

Length-normalised variant (``pred_norm``): argmax of log-likelihood divided by the number of characters of
the scored continuation (``" " + choice``), lm-evaluation-harness's ``acc_norm``; it does not depend on the
tokenizer. Per-choice log-likelihoods and token counts are kept (``loglik``, ``n_tokens``) for other variants.

Data frames have columns ``subject, question, choices`` (list of 4 str) and ``answer`` (int 0-3).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from unidetox.errors import UnidetoxError
from unidetox.measure.likelihood import continuation_logprobs_shared
from unidetox.measure.metrics import mmlu_accuracy

MMLU_COLUMNS = ("subject", "question", "choices", "answer")


class MMLUError(UnidetoxError, ValueError):
    """MMLU input that cannot be scored; the message names the problem and the fix."""


def check_mmlu_frame(df: pd.DataFrame, name: str = "MMLU frame") -> None:
    """Raise MMLUError unless `df` has subject, question, choices (4 strings) and answer (int 0-3)."""
    missing = [c for c in MMLU_COLUMNS if c not in df.columns]
    if missing:
        raise MMLUError(f"{name} needs columns {list(MMLU_COLUMNS)}; missing {missing} (got {list(df.columns)})")
    for i, (choices, answer) in enumerate(zip(df["choices"], df["answer"])):
        if isinstance(choices, str) or len(choices) != 4 or not all(isinstance(c, str) for c in choices):
            raise MMLUError(f"{name} row {i}: 'choices' must be a list of 4 strings, got {choices!r}")
        if isinstance(answer, bool) or not isinstance(answer, (int, np.integer)) or not 0 <= answer <= 3:
            raise MMLUError(f"{name} row {i}: 'answer' must be an integer 0-3, got {answer!r}")


def build_prompt(dev_rows: pd.DataFrame, question: str, shots: int) -> str:
    """The k-shot prompt from the first `shots` rows of `dev_rows` (same subject), ending in ``"Answer: "``."""
    if shots < 0:
        raise MMLUError(f"shots must be >= 0, got {shots}")
    if len(dev_rows) < shots:
        raise MMLUError(f"{shots}-shot prompt needs {shots} dev exemplars but only {len(dev_rows)} were given")
    parts = [
        f"Question: {q}\nAnswer: {choices[answer]}\n\n"
        for q, choices, answer in zip(
            dev_rows["question"][:shots], dev_rows["choices"][:shots], dev_rows["answer"][:shots]
        )
    ]
    return "".join(parts) + f"Question: {question}\nAnswer: "


def split_context(prompt: str, choice: str) -> tuple[str, str]:
    """(context, continuation) scored for one choice: the prompt's trailing spaces move onto the choice."""
    context = prompt.rstrip(" ")
    return context, prompt[len(context) :] + choice


def score_mmlu(
    model,
    tokenizer,
    test_df: pd.DataFrame,
    dev_df: pd.DataFrame,
    shots: int = 1,
    batch_size: int = 16,
    device=None,
) -> pd.DataFrame:
    """Score every test question; one row per question in `test_df` order.

    Columns: subject, question, answer, pred, pred_norm, correct, correct_norm, loglik (4 floats, nats),
    n_tokens (4 ints). Exemplars are the first `shots` rows of `dev_df` with the question's subject.
    """
    check_mmlu_frame(test_df, "test_df")
    if shots > 0:
        check_mmlu_frame(dev_df, "dev_df")
    contexts, conts, n_chars = [], [], []
    for subject, question, choices in zip(test_df["subject"], test_df["question"], test_df["choices"]):
        dev_rows = dev_df[dev_df["subject"] == subject] if shots > 0 else dev_df.iloc[:0]
        if len(dev_rows) < shots:
            raise MMLUError(
                f"subject {subject!r} has {len(dev_rows)} dev exemplars, fewer than shots={shots}; "
                "lower eval.mmlu_shots or provide the subject's dev rows"
            )
        prompt = build_prompt(dev_rows, question, shots)
        for choice in choices:
            context, cont = split_context(prompt, choice)
            contexts.append(context)
            conts.append(cont)
            n_chars.append(max(len(cont), 1))
    scored = continuation_logprobs_shared(model, tokenizer, contexts, conts, batch_size=batch_size, device=device)
    loglik = np.array([s for s, _ in scored], dtype=float).reshape(-1, 4)
    n_tokens = np.array([k for _, k in scored], dtype=int).reshape(-1, 4)
    per_char = loglik / np.array(n_chars, dtype=float).reshape(-1, 4)
    answer = test_df["answer"].to_numpy(dtype=int)
    pred = loglik.argmax(axis=1)
    pred_norm = per_char.argmax(axis=1)
    return pd.DataFrame(
        {
            "subject": test_df["subject"].to_numpy(),
            "question": test_df["question"].to_numpy(),
            "answer": answer,
            "pred": pred,
            "pred_norm": pred_norm,
            "correct": pred == answer,
            "correct_norm": pred_norm == answer,
            "loglik": [row.tolist() for row in loglik],
            "n_tokens": [row.tolist() for row in n_tokens],
        }
    )


def mmlu_summary(per_question: pd.DataFrame) -> pd.DataFrame:
    """Accuracy per subject plus two overall rows, ``micro_average`` (over questions) and ``macro_average``.

    Columns: subject, n (questions), accuracy, accuracy_norm (length-normalised prediction).
    """
    for col in ("subject", "correct", "correct_norm"):
        if col not in per_question.columns:
            raise MMLUError(f"mmlu_summary needs the output of score_mmlu; column {col!r} is missing")
    per, micro, macro = mmlu_accuracy(per_question["correct"], per_question["subject"])
    per_n, micro_n, macro_n = mmlu_accuracy(per_question["correct_norm"], per_question["subject"])
    out = pd.DataFrame({"subject": per["subject"], "n": per["n"], "accuracy": per["accuracy"]})
    out["accuracy_norm"] = per_n["accuracy"].to_numpy()
    total = int(per["n"].sum())
    overall = pd.DataFrame(
        {
            "subject": ["micro_average", "macro_average"],
            "n": [total, total],
            "accuracy": [micro, macro],
            "accuracy_norm": [micro_n, macro_n],
        }
    )
    return pd.concat([out, overall], ignore_index=True)


def paired_accuracy_ci(
    cand: pd.DataFrame, ref: pd.DataFrame, *, level: float = 0.95
) -> tuple[float, float, float, int]:
    """``(diff, lo, hi, n)``: accuracy of `cand` minus `ref` on the same `n` questions, with the Agresti-Min interval
    for a difference of matched proportions (Agresti & Min 2005, Statistics in Medicine 24: the Wald interval after
    adding 0.5 to each cell of the 2 x 2 table of right/wrong pairs; its coverage is close to nominal even for a few
    dozen questions, where a bootstrap of all-concordant pairs collapses to [0, 0]).

    cand, ref: :func:`score_mmlu` tables of the same questions in the same order (``subject``, ``question``,
    ``correct``). ``diff`` is the plain difference of the accuracies (over questions, as the tables' MMLU).
    """
    from statistics import NormalDist

    if len(cand) != len(ref) or len(cand) == 0:
        raise MMLUError(f"a paired MMLU comparison needs the same questions on both sides ({len(cand)} vs {len(ref)})")
    same = (cand["subject"].to_numpy() == ref["subject"].to_numpy()) & (
        cand["question"].to_numpy() == ref["question"].to_numpy()
    )
    if not same.all():
        raise MMLUError("a paired MMLU comparison needs the same questions in the same order on both sides")
    if not 0 < level < 1:
        raise MMLUError(f"level must be in (0, 1), got {level}")
    a, b = cand["correct"].to_numpy(dtype=bool), ref["correct"].to_numpy(dtype=bool)
    n = len(a)
    only_cand, only_ref = float(np.sum(a & ~b)), float(np.sum(~a & b))  # the discordant cells
    p12, p21 = (only_cand + 0.5) / (n + 2), (only_ref + 0.5) / (n + 2)
    centre = p12 - p21
    half = NormalDist().inv_cdf((1 + level) / 2) * np.sqrt((p12 + p21 - centre**2) / (n + 2))
    return (only_cand - only_ref) / n, float(max(-1.0, centre - half)), float(min(1.0, centre + half)), n


__all__ = [
    "MMLU_COLUMNS",
    "MMLUError",
    "build_prompt",
    "check_mmlu_frame",
    "mmlu_summary",
    "paired_accuracy_ci",
    "score_mmlu",
    "split_context",
]
