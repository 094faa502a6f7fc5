"""Encoders and predictor (V-JEPA 2-compatible video ViT with 3D RoPE), self-describing checkpoints
(:mod:`.checkpoint`: our own, and V-JEPA 2 / SurgMotion released weights), and the Hugging Face
transformers V-JEPA 2 layout (:mod:`.hf`)."""

from .predictor import Predictor
from .vit import VisionTransformer, create_model, list_models, register_model

__all__ = ["Predictor", "VisionTransformer", "create_model", "list_models", "register_model"]
