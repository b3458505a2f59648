"""Names and versions of the three JSON documents of a listening test: the page configuration, the key, the answers.

Kept in one place so the writer (``page``) and the readers (``answers``) cannot drift apart; the page's own copy
of the answer format name lives in ``static/mos.js``.
"""

from __future__ import annotations

PAGE_FORMAT = "audioldm-lora-mos-test"
KEY_FORMAT = "audioldm-lora-mos-key"
ANSWER_FORMAT = "audioldm-lora-mos-answers"
FORMAT_VERSION = 1
