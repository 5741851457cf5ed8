"""telugu-codec: train and run neural speech codecs (SEANet + RVQ + GAN), Telugu first."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Codec", "load_config", "__version__"]


def __getattr__(name: str):  # lazy: importing the package does no work
    if name == "Codec":
        from .model.codec import Codec

        return Codec
    if name == "load_config":
        from .config import load_config

        return load_config
    raise AttributeError(name)
