"""Where a dataset lives on disk: one pydantic model per supported layout (a section of the config)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    root: Path = Field(description="Dataset root folder; every other path is relative to it.")
    max_rejected_fraction: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="build-manifests fails (and publishes nothing) when a table rejects more than this "
        "fraction of its items: a wrong folder, not a damaged dataset.",
    )


class CocoSpec(_Spec):
    """COCO 2014 images, Karpathy split file, optional COCO caption annotations and SpokenCOCO speech."""

    kind: Literal["coco"] = "coco"
    images: str = Field("COCO_2014", description="Folder holding train2014/ and val2014/.")
    annotations: str | None = Field(
        "COCO_2014/annotations",
        description="Folder with captions_{train,val}2014.json; captions come "
        "from here when present, else from the Karpathy file.",
    )
    karpathy: str = Field("karpathy/dataset_coco.json", description="Karpathy split file.")
    speech: str | None = Field("SpokenCOCO", description="SpokenCOCO folder (SpokenCOCO_{train,val}.json, wavs/).")


class Flickr8kSpec(_Spec):
    """Flickr8k images and captions, optional Karpathy split file, optional Flickr Audio speech."""

    kind: Literal["flickr8k"] = "flickr8k"
    images: str | None = Field(None, description="Image folder; default Flicker8k_Dataset/ or Images/.")
    text: str = Field("Flickr8k_text", description="Folder with Flickr8k.token.txt and Flickr_8k.*Images.txt.")
    captions_csv: str | None = Field(None, description="Kaggle captions.txt (image,caption) instead of token.txt.")
    karpathy: str | None = Field(None, description="dataset_flickr8k.json; splits come from it when given.")
    speech: str | None = Field("flickr_audio", description="Flickr Audio folder (wavs/, wav2capt.txt, wav2spk.txt).")


DatasetSpec = Annotated[CocoSpec | Flickr8kSpec, Field(discriminator="kind")]
