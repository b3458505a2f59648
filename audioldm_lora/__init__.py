"""audioldm-lora: genre-aware LoRA fine-tuning of AudioLDM (command line and tools)."""

__version__ = "0.1.0"
