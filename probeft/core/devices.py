"""Device strings: the one function that validates them and the one that resolves them.

Every stage takes ``device=`` as ``"auto"`` or any string ``torch.device`` accepts (``"cpu"``,
``"cuda"``, ``"cuda:1"``, ``"mps"``, ...). Config files are checked with :func:`check_device`
(syntax only, so a config written for a GPU machine validates anywhere); :func:`resolve_device`
turns the string into a ``torch.device`` where the work runs and fails if that device is absent.

This module imports nothing else from :mod:`probeft`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["AUTO", "check_device", "resolve_device"]

AUTO = "auto"


def check_device(device: str | torch.device, *, parameter: str = "device") -> str:
    """Validate a device argument without needing the device to be present.

    Args:
        device: ``"auto"`` or anything ``torch.device`` parses (``"cuda:1"``, ``torch.device("cpu")``).
        parameter: the name shown in the error (e.g. ``"finetune.device"``).

    Returns:
        The normalised string: ``"auto"``, or ``str(torch.device(device))`` (e.g. ``"cuda:1"``).

    Raises:
        ValueError: not a device string; the message names ``parameter``.
    """
    import torch  # here, not at the top: validating a config (and ``probeft --help``) need not load torch first

    if isinstance(device, torch.device):
        return str(device)
    text = str(device).strip()
    if text.lower() == AUTO:
        return AUTO
    try:
        return str(torch.device(text))
    except (RuntimeError, TypeError) as error:
        raise ValueError(
            f"{parameter}={device!r} is not a device: use 'auto' or a torch device such as 'cpu', 'cuda', 'cuda:1' "
            f"({error})"
        ) from error


def resolve_device(device: str | torch.device = AUTO) -> torch.device:
    """Turn a device argument into a ``torch.device`` on this machine.

    Args:
        device: ``"auto"`` (CUDA when available, else CPU), or anything :func:`check_device` accepts.

    Returns:
        The device.

    Raises:
        ValueError: the string is not a device, CUDA is asked for but absent, or the CUDA index
            is past the visible GPUs.
    """
    import torch

    text = check_device(device)
    if text == AUTO:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(text)
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={text!r} asked for CUDA, but CUDA is not available on this machine")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(f"device={text!r}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    return resolved
