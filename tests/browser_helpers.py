"""The browser policy of the tests that drive a page in headless Chromium (the listening-test kit's page, the app).

They need Debian's Chromium (``/usr/bin/chromium``, or ``$MOS_CHROMIUM``; ``make browser`` installs it) and the Python
package ``playwright`` (never ``playwright install``: the system browser is used). Where either is absent the test
is skipped with the reason, unless ``REQUIRE_BROWSER=1`` is set (as CI does), in which case it fails: a CI that
silently skipped the end-to-end tests would prove nothing.
"""

from __future__ import annotations

import importlib.util
import os
import shutil

# Chromium as root on this closed network: no sandbox, and none of its background connections.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_problem() -> tuple[str | None, str]:
    """(why the browser test cannot run or None, the Chromium executable path)."""
    executable = os.environ.get("MOS_CHROMIUM", "/usr/bin/chromium")
    if shutil.which(executable) is None:
        return f"Chromium not found at {executable} (apt-get install chromium chromium-driver)", executable
    if importlib.util.find_spec("playwright") is None:
        return (
            "the Python package playwright is not installed (pip install playwright; no 'playwright install')",
            executable,
        )
    return None, executable
