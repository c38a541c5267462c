"""MMLU prompt format, choice scoring against independent log-likelihoods, and accuracy arithmetic."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from unidetox.config import DataConfig
from unidetox.data.mmlu import load_mmlu
from unidetox.measure.mmlu import MMLUError, build_prompt, mmlu_summary, score_mmlu, split_context
from unidetox.models.loading import load_model as _load_model

# each tiny model is built once per module (tiny:gpt2 takes a moment on a busy CPU); tests do not modify them
load_model = functools.cache(_load_model)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


DATA = Path(os.environ.get("UNIDETOX_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))

DEV = pd.DataFrame(
    {
        "subject": ["geo", "geo", "math"],
        "question": ["Capital of France?", "Capital of Peru?", "2 + 2 = ?"],
        "choices": [["Rome", "Paris", "Oslo", "Bern"], ["Lima", "Quito", "Cusco", "La Paz"], ["3", "4", "5", "22"]],
        "answer": [1, 0, 1],
    }
)
TEST = pd.DataFrame(
    {
        "subject": ["geo", "math", "geo"],
        "question": ["Capital of Italy?", "3 * 3 = ?", "Largest ocean?"],
        # choices of different lengths, so that log-likelihoods of a random model are far from ties
        "choices": [
            ["Rome", "Milan in the north", "Turin city", "Naples on the bay of"],
            ["9", "six", "twelve or so", "nine hundred and one"],
            ["the Pacific Ocean", "Atlantic", "an Indian one", "Arctic sea ice of the north"],
        ],
        "answer": [0, 0, 0],
    }
)


def test_build_prompt_exact_strings():
    geo = DEV[DEV["subject"] == "geo"]
    assert build_prompt(geo, "Q?", 0) == "Question: Q?\nAnswer: "
    assert build_prompt(geo, "Q?", 1) == "Question: Capital of France?\nAnswer: Paris\n\nQuestion: Q?\nAnswer: "
    assert build_prompt(geo, "Q?", 2) == (
        "Question: Capital of France?\nAnswer: Paris\n\n"
        "Question: Capital of Peru?\nAnswer: Lima\n\n"
        "Question: Q?\nAnswer: "
    )
    with pytest.raises(MMLUError, match="exemplars"):
        build_prompt(geo, "Q?", 3)


def test_split_context_moves_trailing_space():
    assert split_context("Question: Q?\nAnswer: ", "Paris") == ("Question: Q?\nAnswer:", " Paris")
    prompt = build_prompt(DEV.iloc[:0], "Q?", 0)
    context, cont = split_context(prompt, "Rome")
    assert context + cont == prompt + "Rome"


def _naive_loglik(lm, context: str, cont: str) -> float:
    """Unpadded forward pass; sum of log p of the continuation's own tokens given the context's."""
    tok = lm.tokenizer
    bos = [tok.bos_token_id] if lm.spec == "tiny:llama" else []
    p = tok.encode(context, add_special_tokens=False)
    joint = tok.encode(context + cont, add_special_tokens=False)
    assert joint[: len(p)] == p  # "...Answer:" + " choice" never straddles a token here
    p, c = bos + p, joint[len(p) :]
    with torch.no_grad():
        logits = lm.model(torch.tensor([p + c])).logits[0]
    logp = torch.log_softmax(logits[len(p) - 1 : -1].double(), dim=-1)  # position t predicts token t + 1
    return float(logp[torch.arange(len(c)), torch.tensor(c)].sum())


def _full_text_loglik(lm, text: str) -> float:
    """The official code's score: log p of every token of the jointly tokenised text (after the first)."""
    ids = lm.tokenizer(text).input_ids
    with torch.no_grad():
        logp = torch.log_softmax(lm.model(torch.tensor([ids])).logits[0, :-1], dim=-1)
    return float(logp[torch.arange(len(ids) - 1), torch.tensor(ids[1:])].sum())


@pytest.mark.numerics
@pytest.mark.parametrize("spec", ["tiny:gpt2", "tiny:llama"])
@pytest.mark.parametrize("shots", [0, 1])
def test_predictions_are_argmax_of_independent_logliks(spec, shots):
    lm = load_model(spec)
    out = score_mmlu(lm.model, lm.tokenizer, TEST, DEV, shots=shots, batch_size=3)
    assert list(out["subject"]) == list(TEST["subject"])
    for i, row in TEST.reset_index(drop=True).iterrows():
        dev_rows = DEV[DEV["subject"] == row["subject"]]
        prompt = build_prompt(dev_rows, row["question"], shots)
        ref = np.array([_naive_loglik(lm, *split_context(prompt, c)) for c in row["choices"]])
        # batched, cached vs one naive forward: a sum of a few token log-probs, each ~1e-6 apart (see test_likelihood)
        np.testing.assert_allclose(out.loc[i, "loglik"], ref, atol=1e-4, rtol=0)
        assert out.loc[i, "pred"] == int(np.argmax(ref))
        per_char = ref / np.array([len(" " + c) for c in row["choices"]])
        assert out.loc[i, "pred_norm"] == int(np.argmax(per_char))
        assert out.loc[i, "correct"] == (out.loc[i, "pred"] == row["answer"])
        assert out.loc[i, "correct_norm"] == (out.loc[i, "pred_norm"] == row["answer"])
        # same ranking as the official code's whole-text log-likelihood of prompt + choice
        official = [_full_text_loglik(lm, prompt + c) for c in row["choices"]]
        assert out.loc[i, "pred"] == int(np.argmax(official))


def test_n_tokens_are_the_choice_tokens():
    lm = load_model("tiny:gpt2")
    out = score_mmlu(lm.model, lm.tokenizer, TEST.iloc[:1], DEV, shots=1)
    expected = [len(lm.tokenizer.encode(" " + c)) for c in TEST["choices"].iloc[0]]
    assert out.loc[0, "n_tokens"] == expected


def test_summary_arithmetic_by_hand():
    per_q = pd.DataFrame(
        {
            "subject": ["a", "a", "a", "b", "c", "c"],
            "correct": [True, True, False, False, True, False],
            "correct_norm": [True, False, False, True, True, True],
        }
    )
    s = mmlu_summary(per_q).set_index("subject")
    assert s.loc["a", "accuracy"] == pytest.approx(2 / 3) and s.loc["a", "n"] == 3
    assert s.loc["b", "accuracy"] == 0.0 and s.loc["c", "accuracy"] == 0.5
    assert s.loc["micro_average", "accuracy"] == pytest.approx(3 / 6)
    assert s.loc["macro_average", "accuracy"] == pytest.approx((2 / 3 + 0 + 1 / 2) / 3)
    assert s.loc["micro_average", "accuracy_norm"] == pytest.approx(4 / 6)
    assert s.loc["macro_average", "accuracy_norm"] == pytest.approx((1 / 3 + 1 + 1) / 3)
    assert s.loc["micro_average", "n"] == 6


def test_end_to_end_summary_consistent_with_per_question():
    lm = load_model("tiny:llama")
    out = score_mmlu(lm.model, lm.tokenizer, TEST, DEV, shots=1)
    s = mmlu_summary(out).set_index("subject")
    assert s.loc["micro_average", "accuracy"] == pytest.approx(out["correct"].mean())


def test_bad_frames_are_rejected():
    lm = load_model("tiny:gpt2")
    bad = TEST.copy()
    bad.at[0, "choices"] = ["a", "b", "c"]
    with pytest.raises(MMLUError, match="4 strings"):
        score_mmlu(lm.model, lm.tokenizer, bad, DEV)
    bad = TEST.copy()
    bad["answer"] = [0, 4, 1]
    with pytest.raises(MMLUError, match="0-3"):
        score_mmlu(lm.model, lm.tokenizer, bad, DEV)
    with pytest.raises(MMLUError, match="fewer than shots"):
        score_mmlu(lm.model, lm.tokenizer, TEST, DEV, shots=2)  # 'math' has one dev row
    with pytest.raises(MMLUError, match="missing"):
        score_mmlu(lm.model, lm.tokenizer, TEST.drop(columns="answer"), DEV)


@pytest.mark.skipif(not (DATA / "mmlu" / "dev" / "anatomy_dev.csv").exists(), reason="local MMLU data not found")
def test_real_rows_from_local_csv():
    dev = load_mmlu(DataConfig(dir=str(DATA)), "dev", subjects=["anatomy"])
    assert len(dev) == 5
    assert all(len(c) == 4 for c in dev["choices"]) and dev["answer"].between(0, 3).all()
    lm = load_model("tiny:gpt2")
    out = score_mmlu(lm.model, lm.tokenizer, dev.iloc[1:3].reset_index(drop=True), dev.iloc[:1], shots=1)
    assert len(out) == 2 and out["pred"].between(0, 3).all()
    prompt = build_prompt(dev.iloc[:1], dev["question"].iloc[1], 1)
    assert prompt.startswith("Question: " + dev["question"].iloc[0] + "\nAnswer: ")


def _graded(subjects, correct):
    return pd.DataFrame({"subject": subjects, "question": [f"q{i}" for i in range(len(correct))],
                         "correct": correct})  # fmt: skip


def test_paired_accuracy_ci_is_the_agresti_min_interval_by_hand():
    from unidetox.measure.mmlu import paired_accuracy_ci

    subjects = ["a"] * 6 + ["b"] * 4
    cand = _graded(subjects, [1, 1, 0, 0, 1, 0, 1, 1, 0, 1])
    ref = _graded(subjects, [1, 0, 0, 1, 0, 0, 1, 0, 0, 0])
    diff, lo, hi, n = paired_accuracy_ci(cand, ref)
    assert n == 10 and diff == pytest.approx(0.3)  # 6 - 3 correct of 10
    # by hand: discordant cells 4 (cand right only) and 1 (ref right only); +0.5 each, over n + 2 = 12
    p12, p21 = 4.5 / 12, 1.5 / 12
    half = 1.959963984540054 * np.sqrt((p12 + p21 - (p12 - p21) ** 2) / 12)
    assert (lo, hi) == pytest.approx((p12 - p21 - half, p12 - p21 + half))
    # all pairs concordant: the difference is 0, yet the interval is wide on 3 questions (not [0, 0])
    d, lo3, hi3, _ = paired_accuracy_ci(cand.iloc[:3], cand.iloc[:3])
    assert d == 0 and lo3 == pytest.approx(-hi3) and hi3 > 0.3
    assert paired_accuracy_ci(cand, cand, level=0.5)[2] < paired_accuracy_ci(cand, cand)[2]


def test_paired_accuracy_ci_refuses_other_questions():
    from unidetox.measure.mmlu import MMLUError, paired_accuracy_ci

    a = _graded(["x", "x"], [1, 0])
    with pytest.raises(MMLUError, match="same questions"):
        paired_accuracy_ci(a, a.iloc[:1])
    with pytest.raises(MMLUError, match="same order"):
        paired_accuracy_ci(a, a.iloc[::-1].reset_index(drop=True))
