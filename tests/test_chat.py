"""Chat-template-aware evaluation (``eval.chat_template``, ``eval.system_prompt``): rendering, truncation, stage keys,
the recorded template hash, and ``unidetox score --chat-template auto`` on a tiny model folder with a template."""

from __future__ import annotations

import hashlib
import json

import pytest

from unidetox.cli import run
from unidetox.config import ConfigError
from unidetox.config.loader import load_profile
from unidetox.measure import evaluate as E
from unidetox.method.generate import (
    ChatTemplateError,
    GenerationSettings,
    chat_template_sha256,
    fit_left_chat,
    generate_unit,
    render_prompts,
    unit_generator,
)
from unidetox.method.sampling import CausalLMSource, sample_loop, strip_after_eos
from unidetox.models.loading import load_model, save_model
from unidetox.pipeline.evaluation import generation_key
from unidetox.store.jsonl import read_jsonl

# A ChatML-like template in the style of SmolLM2's (its own is checked in test_packaged_templates below)
TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
NO_SYSTEM = (
    "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{{ m['content'] }}{% endfor %}"
)


@pytest.fixture
def chat_llama():
    lm = load_model("tiny:llama")
    lm.tokenizer.chat_template = TEMPLATE
    return lm


def test_chat_mode_renders_the_user_turn_and_puts_the_preprompt_in_the_system_message(chat_llama):
    tok = chat_llama.tokenizer
    raw = GenerationSettings(prefix="Be kind.\n")
    assert render_prompts(tok, ["hi"], raw) == (["Be kind.\nhi"], True)  # raw mode as before
    chat = GenerationSettings(prefix="Be kind.\n", chat=True, system_prompt="You are terse.")
    (text,), special = render_prompts(tok, ["hi"], chat)
    assert special is False  # the template's text holds its special tokens: none are added a second time
    assert text == "<|system|>You are terse.\n\nBe kind.</s><|user|>hi</s><|assistant|>"
    assert text == tok.apply_chat_template(
        [{"role": "system", "content": "You are terse.\n\nBe kind."}, {"role": "user", "content": "hi"}],
        tokenize=False, add_generation_prompt=True,
    )  # fmt: skip
    (bare,), _ = render_prompts(tok, ["hi"], GenerationSettings(chat=True))
    assert bare == "<|user|>hi</s><|assistant|>"  # no system message at all: a template's own default applies


@pytest.mark.numerics
def test_chat_generation_is_sampling_from_the_rendered_conversation(chat_llama):
    """Independent reference: render with apply_chat_template, tokenise without special tokens, sample."""
    tok, model = chat_llama.tokenizer, chat_llama.model
    st = GenerationSettings(samples_per_prompt=2, max_new_tokens=6, chat=True)
    prompts = ["hello", "a longer prompt here"]
    got = generate_unit(model, tok, prompts, st, unit_generator("cpu", 5, 0))
    texts = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
             for p in prompts]  # fmt: skip
    enc = tok(texts, padding=True, padding_side="left", return_tensors="pt", add_special_tokens=False)
    assert enc.input_ids[1, -1].item() == tok("<|assistant|>", add_special_tokens=False).input_ids[-1]
    new = sample_loop(CausalLMSource(model), enc.input_ids, enc.attention_mask, repeats=2, max_new_tokens=6,
                      params=st.params, generator=unit_generator("cpu", 5, 0), eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id)  # fmt: skip
    rows = [tok.decode(r, skip_special_tokens=True) for r in strip_after_eos(new, tok.eos_token_id)]
    assert got == [rows[0:2], rows[2:4]]


def test_a_long_prompt_keeps_the_template_around_it(chat_llama):
    tok = chat_llama.tokenizer
    head = tok("<|system|>S</s><|user|>", add_special_tokens=False).input_ids
    tail = tok("</s><|assistant|>", add_special_tokens=False).input_ids
    ids, mask = fit_left_chat(tok, "S", ["x" * 300, "short"], 64)
    long_row = ids[0][mask[0].bool()].tolist()
    assert len(long_row) == 64 and long_row[: len(head)] == head and long_row[-len(tail) :] == tail
    middle = long_row[len(head) : -len(tail)]
    assert middle == tok("x" * 300, add_special_tokens=False).input_ids[-len(middle) :]
    short = tok(tok.apply_chat_template([{"role": "system", "content": "S"}, {"role": "user", "content": "short"}],
                                        tokenize=False, add_generation_prompt=True), add_special_tokens=False)  # fmt: skip
    assert ids[1][mask[1].bool()].tolist() == short.input_ids
    # the evaluator counts the rendered prompt's tokens and cuts it the same way
    st = GenerationSettings(samples_per_prompt=1, max_new_tokens=4, chat=True, system_prompt="S")
    limit, n_long = E.prompt_budget(chat_llama, ["x" * 600, "short"], "", 4, st)
    assert limit == 508 and n_long == 1


def test_a_template_without_a_system_role_says_what_to_do():
    lm = load_model("tiny:llama")
    lm.tokenizer.chat_template = NO_SYSTEM
    with pytest.raises(ChatTemplateError, match="System role not supported.*eval.system_prompt=''"):
        render_prompts(lm.tokenizer, ["hi"], GenerationSettings(chat=True, prefix="Be kind."))


def test_the_evaluate_key_changes_only_when_chat_mode_is_on():
    off = load_profile("tiny").eval
    assert off.chat_template == "off" and not {"chat_template", "system_prompt"} & set(generation_key(off))
    auto = load_profile("tiny", ["eval.chat_template=auto"]).eval
    assert generation_key(auto) == {**generation_key(off), "chat_template": "auto", "system_prompt": ""}
    sys = load_profile("tiny", ["eval.chat_template=auto", "eval.system_prompt=Be brief."]).eval
    assert generation_key(sys)["system_prompt"] == "Be brief."
    with pytest.raises(ConfigError, match="eval.system_prompt applies in chat mode only"):
        load_profile("tiny", ["eval.system_prompt=Be brief."])
    with pytest.raises(ConfigError, match="eval.chat_template must be off or auto"):
        load_profile("tiny", ["eval.chat_template=always"])


def test_auto_without_a_template_is_raw_mode():
    tiny = load_profile("tiny", ["eval.chat_template=auto"]).eval
    tok = load_model("tiny:gpt2").tokenizer
    assert not E.uses_chat(tiny, tok) and chat_template_sha256(tok) is None
    assert E.generation_settings(tiny, "P: ", E.uses_chat(tiny, tok)) == GenerationSettings(
        samples_per_prompt=tiny.samples_per_prompt, max_new_tokens=tiny.max_new_tokens, temperature=tiny.temperature,
        top_p=tiny.top_p, top_k=tiny.top_k, batch_size=tiny.batch_size, prefix="P: ")  # fmt: skip


def test_score_in_chat_mode_records_the_template_hash(chat_llama, tmp_path, capsys, one_torch_thread):
    folder = tmp_path / "chat-llama"
    save_model(chat_llama, folder)
    args = ["--profile", "tiny", "--quiet", "--set", f"runs_dir={tmp_path / 'runs'}", "--model", str(folder), "--k",
            "2", "--seeds", "1", "--prompts-per-domain", "2"]  # fmt: skip
    assert run(["score", *args, "--json", str(tmp_path / "raw.json")]) == 0
    assert run(["score", *args, "--chat-template", "auto", "--system-prompt", "Be kind.",
                "--json", str(tmp_path / "chat.json")]) == 0  # fmt: skip
    raw, chat = (json.loads((tmp_path / f"{m}.json").read_text()) for m in ("raw", "chat"))
    assert raw["settings"]["chat"] is False and raw["settings"]["chat_template_sha256"] is None
    assert chat["settings"]["chat"] is True and chat["settings"]["system_prompt"] == "Be kind."
    assert chat["settings"]["chat_template_sha256"] == hashlib.sha256(TEMPLATE.encode()).hexdigest()
    assert raw["models"][0]["evaluation_dir"] != chat["models"][0]["evaluation_dir"]
    done = json.loads((tmp_path / chat["models"][0]["evaluation_dir"] / "DONE").read_text())  # absolute path
    assert done["chat_template_sha256"] == chat["settings"]["chat_template_sha256"]
    gens = read_jsonl(f"{chat['models'][0]['evaluation_dir']}/generations.jsonl")
    assert len(gens) == 4 * 2 * 2 and all("<|assistant|>" not in g["continuation"] for g in gens)


@pytest.mark.slow
def test_packaged_templates():
    """SmolLM2-135M-Instruct keeps its ChatML template after de-quantisation; Gemma-3-270M (a base model) has none,
    so auto evaluates it as raw text."""
    from unidetox.models.loading import load_tokenizer

    smol = load_tokenizer("packaged:smollm2-135m")
    (text,), _ = render_prompts(smol, ["Hi"], GenerationSettings(chat=True))
    assert text.startswith("<|im_start|>system\n") and text.endswith(
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )
    assert smol.eos_token == "<|im_end|>"  # a reply ends at the end of its turn
    assert chat_template_sha256(load_tokenizer("packaged:gemma3-270m")) is None


def test_off_reads_as_a_word_not_yaml_false():
    """YAML 1.1 reads `off` as false: a setting with choices gets its word back (profile files and --set alike)."""
    assert load_profile("tiny", ["eval.chat_template=off"]).eval.chat_template == "off"
    with pytest.raises(ConfigError, match="eval.chat_template must be a string, got True"):
        load_profile("tiny", ["eval.chat_template=true"])  # no choice is spelt as YAML's true
