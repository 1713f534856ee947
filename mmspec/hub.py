"""Hugging Face hub ids: tell a hub id from a folder, and fail in seconds when the hub is unreachable.

Without network, transformers and huggingface_hub retry each file for about a minute before they
give up. We check once per process (``HF_HUB_OFFLINE``, else one HEAD request with a short
timeout); when the hub cannot be reached we switch huggingface_hub to offline mode, so every later
lookup (model, processor, draft checkpoints) reads the local hub cache at once, and an id that is
not cached fails in seconds with a message saying how to pass a downloaded folder instead.
"""

from __future__ import annotations

import os
import re
import urllib.error
import urllib.request
from functools import cache
from pathlib import Path

from mmspec.errors import MmspecError

#: ``owner/name`` as the hub spells repository ids
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[\w.-]{1,96}$")
PROBE_TIMEOUT_S = 3.0
_TRUE = ("1", "true", "yes", "on")


class HubUnavailableError(MmspecError):
    """A hub id was given, the hub cannot be reached and the local cache does not hold it."""


def looks_like_hub_id(text: str) -> bool:
    """``owner/name`` that is not an existing path and does not start like one (``./``, ``/``, ``~``)."""
    return bool(HUB_ID.match(text)) and not text.startswith((".", "~")) and not Path(text).exists()


@cache
def hub_unavailable_reason() -> str | None:
    """Why the hub cannot be used now (``None`` when it answers); checked once per process."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in _TRUE:
        return "HF_HUB_OFFLINE is set"
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    try:
        urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=PROBE_TIMEOUT_S)
    except urllib.error.HTTPError:
        return None  # it answered (any status): reachable
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"{endpoint} is unreachable ({reason})"
    return None


def local_snapshot(repo_id: str, revision: str | None = None) -> Path | None:
    """The folder of ``repo_id`` in the local hub cache, or None (never touches the network)."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, revision=revision, local_files_only=True))
    except Exception:  # not cached (LocalEntryNotFoundError), bad revision, no huggingface_hub
        return None


def check_hub_id(repo_id: str, revision: str | None, what: str, flag: str) -> None:
    """Fail at once if ``repo_id`` cannot be loaded: hub unusable and the id not in the local cache.

    When the hub is unreachable, huggingface_hub is switched to offline mode for this process (as
    ``HF_HUB_OFFLINE=1`` would), so the load that follows reads the cache without retrying.
    ``what`` names the thing being loaded, ``flag`` the option that takes a folder instead.
    """
    reason = hub_unavailable_reason()
    if reason is None:
        return
    _go_offline()
    if local_snapshot(repo_id, revision) is None:
        raise HubUnavailableError(
            f"{what} {repo_id!r} is a Hugging Face hub id, but {reason} and it is not in the local hub "
            f"cache. Download it where there is network (`hf download {repo_id} --local-dir DIR`) and "
            f"pass {flag}."
        )


def _go_offline() -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        import huggingface_hub.constants

        huggingface_hub.constants.HF_HUB_OFFLINE = True  # read at call time by every hub request
    except ImportError:
        pass
