"""``python -m audioldm_lora``: the same entry point as the ``audioldm-lora`` and ``lightning`` commands."""

import sys

from audioldm_lora.cli import main

if __name__ == "__main__":
    sys.exit(main())
