"""``audioldm-lora app``: listen to adapters against the base model in the browser (Gradio, ``pip install .[app]``).

    audioldm-lora app [--base ID|DIR] [--adapter [NAME=]PATH[=WEIGHT] ...] [--runs runs] [--host 127.0.0.1]
        [--port 7860] [--out runs/app] [--device cpu|cuda]

One weight slider per adapter mixes them as ``generate`` does; each Generate plays the adapted clip and the base
clip (adapters off, same seed) side by side with their mel images. Without ``--adapter`` the adapters found under
``--runs`` (folders holding ``adapter_info.json``) are offered, the newest at weight 1 and the others at 0. The page
is also the API endpoint ``/generate`` (``gradio_client``). Offline: no analytics, no share link; it binds to
127.0.0.1 unless ``--host`` says otherwise. Exit status 2 for bad input, before any model is loaded.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from jsonargparse import ArgumentParser, Namespace

from audioldm_lora.adapter_inputs import CommandInputError, add_model_arguments, load_model, resolve_base
from audioldm_lora.tool_convention import add_device_argument, resolve_device, run_tool, tool_parser


def build_parser() -> ArgumentParser:
    """The command's arguments."""
    parser = tool_parser("app", __doc__.split("\n\n")[0])
    add_model_arguments(parser)
    parser.add_argument("--runs", type=str, default="runs", help="where to look for adapters when no --adapter.")
    parser.add_argument("--host", type=str, default="127.0.0.1",
                        help="address to bind (0.0.0.0 serves every network the machine is on).")
    parser.add_argument("--port", type=int | None, default=None, help="port (default: the first free from 7860).")
    parser.add_argument("--out", type=str, default="runs/app", help="folder of the generated clips.")
    parser.add_argument("--prompt", type=str, default="", help="the prompt the page starts with.")
    parser.add_argument("--steps", type=int, default=50, help="the steps the page starts with.")
    parser.add_argument("--duration", type=float, default=5.12, help="the seconds per clip the page starts with.")
    add_device_argument(parser)
    return parser


def require_gradio() -> None:
    """Refuse with the install command when Gradio, an optional extra, is missing."""
    if importlib.util.find_spec("gradio") is None:
        raise CommandInputError("The app needs Gradio, an optional extra: pip install 'audioldm-lora[app]' "
                                "(or pip install gradio).")


def adapter_files(arguments: list[str], runs: str):
    """The adapters to load: ``--adapter``'s, or the ones found under ``runs`` whose base is the newest's (an
    unreadable one found there is skipped with a note; one named on the command line is an error)."""
    from audioldm_lora.app.discovery import discovered_adapters
    from lightning_modules.adapter_files import AdapterError, parse_adapter_specs, read_adapter
    from lightning_modules.base_identity import recorded_base

    if arguments:
        return [read_adapter(spec) for spec in parse_adapter_specs(arguments)]
    found = []
    for spec in parse_adapter_specs(discovered_adapters(runs)):
        try:
            found.append(read_adapter(spec))
        except AdapterError as error:
            print(f"app: skipping {spec.directory}: {error}", file=sys.stderr)
    if found:
        base = str(recorded_base(found[0].info))
        others = [a for a in found if str(recorded_base(a.info)) != base]
        for adapter in others:
            print(f"app: skipping {adapter.spec.directory}: trained on {adapter.info.get('base_model')}, not {base}",
                  file=sys.stderr)
        found = [a for a in found if a not in others]
        print(f"app: offering {len(found)} adapter(s) found under {runs}/: {[a.spec.name for a in found]}")
    return found


def run(args: Namespace) -> int:
    """Load the model and its adapters, then serve the page until Ctrl-C."""
    require_gradio()
    if not 1 <= args.steps or args.duration <= 0:
        raise CommandInputError("--steps must be at least 1 and --duration positive.")
    adapters = adapter_files(args.adapter, args.runs)
    if not adapters and not args.base:
        raise CommandInputError(f"No --adapter given and none found under {args.runs}/; pass --base ID|DIR to hear "
                                "the base model alone, or --adapter PATH.")
    base = resolve_base(args.base, adapters)
    out = Path(args.out).expanduser().resolve()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CommandInputError(f"--out {out} cannot be created ({error}).") from error
    from audioldm_lora.app.page import build_page, launch
    from audioldm_lora.app.session import AppRequest, AppSession

    backbone = load_model(base, adapters, resolve_device(args.device), args.allow_other_base)
    session = AppSession(backbone, base, adapters, out)
    page = build_page(session, AppRequest(prompt=args.prompt, steps=args.steps, duration=args.duration))
    url = launch(page, args.host, args.port, str(out))
    print(f"app: serving {url} (bound to {args.host}; no share link, no analytics); clips go to {out}. Ctrl-C stops.",
          flush=True)
    try:
        try:
            page.block_thread()  # returns on Ctrl-C
        finally:
            page.close()
    except KeyboardInterrupt:  # a second Ctrl-C while the server closes: still a clean stop, no traceback
        pass
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 after Ctrl-C, 2 bad input)."""
    return run_tool("app", build_parser(), argv, run)
