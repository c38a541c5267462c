"""Where the data sets come from: :class:`DataConfig`."""

from __future__ import annotations

from dataclasses import dataclass, field

from unidetox.config.base import Settings


@dataclass(frozen=True)
class DataConfig(Settings):
    """Where the data sets come from."""

    source: str = field(
        default="local",
        metadata={
            "help": '"local": files under data.dir; "hub": the paper\'s Hugging Face Hub ids',
            "choices": ("local", "hub"),
        },
    )
    dir: str = field(
        default="", metadata={"help": 'local data folder; "" = $UNIDETOX_DATA_DIR, else ../shared/data beside the repo'}
    )
    dghs_hub_id: str = field(
        default="LennardZuendorf/Dynamically-Generated-Hate-Speech-Dataset",
        metadata={"help": "Hub id of DGHS, the hate speech of the toxic model (source=hub)"},
    )
    toxigen_hub_id: str = field(
        default="skg/toxigen-data", metadata={"help": "Hub id of ToxiGen, the evaluation prompts (source=hub)"}
    )
    mmlu_hub_id: str = field(default="cais/mmlu", metadata={"help": "Hub id of MMLU (source=hub)"})
    wikitext_hub_id: str = field(
        default="Salesforce/wikitext",
        metadata={
            "help": "Hub id of WikiText-2 (config wikitext-2-v1), benign text of the scorer validity (source=hub)"
        },
    )
