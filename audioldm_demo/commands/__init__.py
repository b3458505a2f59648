"""The demo's tools (``audioldm-lora build-tiny|build-toy-base|toy-report|synth-data``), dispatched by the CLI."""
