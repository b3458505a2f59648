"""The Gradio page of ``audioldm-lora app`` and its ``/generate`` API endpoint: one function serves both.

The page: prompt, negative prompt, seed (and "New seed"), steps, guidance, scheduler, duration, one weight slider
per adapter (0: off); Generate plays the adapted and the base clip side by side, each with its mel image on one
colour scale, and offers the adapted clip's wav and sidecar for download. The Generate event is the API endpoint
``/generate``: its parameters are named (``prompt`` first; every other one defaults to the page's starting value,
an adapter's weight is ``weight_<name>``), so ``gradio_client.Client(url).predict(prompt="...",
api_name="/generate")`` returns the same files the page shows.

Offline by design: no analytics, no share link, and a theme of system fonts (Gradio's default theme fetches web
fonts from Google). Requests queue, one at a time (the model is one).
"""

from __future__ import annotations

import os
import random
from typing import Any

from audioldm_lora.app.session import MAX_STEPS, AppInputError, AppRequest, AppSession, weight_parameter
from lightning_modules.sampling_settings import SCHEDULER_NAMES

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no usage reports

import gradio as gr  # noqa: E402

SYSTEM_FONTS = ["ui-sans-serif", "system-ui", "sans-serif"]
MONO_FONTS = ["ui-monospace", "monospace"]
MAX_SEED = 2**31 - 1


def generate_handler(session: AppSession):
    """The Generate function: page and API alike. Bad settings become ``gr.Error`` (shown on the page, returned to
    the API caller); the server keeps serving."""

    def generate(prompt: str, negative_prompt: str = "", seed: float = 0, steps: float = 50, guidance: float = 2.5,
                 scheduler: str = "ddim", duration: float = 5.12, progress: gr.Progress = gr.Progress(),
                 **weights: float) -> tuple[str, str, str, str, list[str]]:
        parameters = {weight_parameter(name): name for name in session.adapter_names}
        try:
            request = AppRequest(
                prompt=prompt, negative_prompt=negative_prompt or "", seed=_whole(seed, "Seed"),
                steps=_whole(steps, "Steps"), guidance=_number(guidance, "Guidance"), scheduler=scheduler,
                duration=_number(duration, "Duration"),
                weights={parameters.get(key, key): _number(value, f"Weight {key}") for key, value in weights.items()},
            )
            pair = session.generate(request, lambda done, text: progress(done, desc=text))
        except AppInputError as error:
            raise gr.Error(str(error)) from None
        return str(pair.adapted), str(pair.adapted_mel), str(pair.base), str(pair.base_mel), [str(pair.adapted),
                                                                                               str(pair.sidecar)]

    return generate


def _number(value: Any, name: str) -> float:
    """``value`` as a float, or :class:`AppInputError` naming the setting (an API caller may send anything)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise AppInputError(f"{name} must be a number, got {value!r}.")
    return float(value)


def _whole(value: Any, name: str) -> int:
    """``value`` as an int (a whole float is one), or :class:`AppInputError`."""
    number = _number(value, name)
    if not number.is_integer():
        raise AppInputError(f"{name} must be a whole number, got {value!r}.")
    return int(number)


def build_page(session: AppSession, defaults: AppRequest | None = None) -> gr.Blocks:
    """The page over ``session``; ``defaults`` are the controls' starting values (the API's defaults)."""
    start = defaults or AppRequest(prompt="")
    with gr.Blocks(title="audioldm-lora: adapter vs base", analytics_enabled=False) as page:
        gr.Markdown(f"## Adapter vs base model\nBase: `{session.base}`. Same prompt and seed; the base clip is "
                    "sampled with every adapter off.")
        with gr.Row():
            with gr.Column(scale=3):
                prompt = gr.Textbox(label="Prompt", value=start.prompt, lines=2, elem_id="prompt")
                negative = gr.Textbox(label="Negative prompt", value=start.negative_prompt, elem_id="negative")
                with gr.Row():
                    seed = gr.Number(label="Seed", value=start.seed, precision=0, minimum=0, maximum=MAX_SEED,
                                     elem_id="seed")
                    new_seed = gr.Button("New seed", elem_id="new-seed")
                with gr.Row():
                    steps = gr.Number(label="Steps", value=start.steps, precision=0, elem_id="steps",
                                      info=f"1 to {MAX_STEPS}")
                    guidance = gr.Number(label="Guidance", value=start.guidance, elem_id="guidance")
                    duration = gr.Number(label="Duration (s)", value=start.duration, elem_id="duration")
                scheduler = gr.Dropdown(label="Scheduler", choices=sorted(SCHEDULER_NAMES), value=start.scheduler,
                                        elem_id="scheduler")
            with gr.Column(scale=2):
                sliders = {
                    weight_parameter(a.spec.name): gr.Slider(
                        label=f"{a.spec.name} weight", minimum=-2.0, maximum=2.0, step=0.05,
                        value=start.weights.get(a.spec.name, a.spec.weight),
                        elem_id=weight_parameter(a.spec.name), info=str(a.spec.directory))
                    for a in session.adapters
                }
                if not sliders:
                    gr.Markdown("No adapter loaded: both clips are the base model's.")
                button = gr.Button("Generate", variant="primary", elem_id="generate")
        with gr.Row():
            with gr.Column():
                adapted = gr.Audio(label="Adapted", type="filepath", elem_id="adapted-audio", interactive=False)
                adapted_mel = gr.Image(label="Adapted: mel", type="filepath", elem_id="adapted-mel",
                                       interactive=False)
            with gr.Column():
                base = gr.Audio(label="Base (adapters off)", type="filepath", elem_id="base-audio",
                                interactive=False)
                base_mel = gr.Image(label="Base: mel", type="filepath", elem_id="base-mel", interactive=False)
        files = gr.File(label="Download: adapted wav and its sidecar", file_count="multiple", elem_id="download",
                        interactive=False)
        new_seed.click(lambda: random.randint(0, MAX_SEED), outputs=seed, api_visibility="private")
        button.click(
            generate_handler(session),
            inputs_kwargs={"prompt": prompt, "negative_prompt": negative, "seed": seed, "steps": steps,
                           "guidance": guidance, "scheduler": scheduler, "duration": duration, **sliders},
            outputs=[adapted, adapted_mel, base, base_mel, files],
            api_name="generate",
        )
    return page.queue(default_concurrency_limit=1)


def launch(page: gr.Blocks, host: str, port: int | None, out_dir: str) -> str:
    """Start serving ``page`` on ``host:port`` (``port`` None: the first free one from 7860) in the background,
    never through a share link, with only ``out_dir`` (the generated files) readable besides Gradio's own; returns
    the URL it serves. ``page.block_thread()`` then serves until Ctrl-C; ``page.close()`` stops it."""
    page.launch(server_name=host, server_port=port, share=False, prevent_thread_lock=True, quiet=True,
                allowed_paths=[out_dir], ssr_mode=False, show_error=True,
                theme=gr.themes.Default(font=SYSTEM_FONTS, font_mono=MONO_FONTS))
    return f"http://{page.server_name}:{page.server_port}/"
