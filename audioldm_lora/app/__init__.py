"""``audioldm-lora app``: a Gradio page that plays an adapter's clip beside the base model's, same prompt and seed.

- :mod:`audioldm_lora.app.session`: the loaded model, the checks of a request and the pair of clips (no Gradio).
- :mod:`audioldm_lora.app.discovery`: the adapters under ``runs/`` offered when none is named.
- :mod:`audioldm_lora.app.page`: the Gradio page and its ``/generate`` API endpoint.
"""
