"""User-facing errors: the CLI prints their message alone (no traceback) and exits non-zero."""
from __future__ import annotations

import difflib


class WbcError(Exception):
    """An error caused by the user's input (data, names, paths), with a message naming the culprit."""


def unknown(kind: str, name: str, known) -> WbcError:
    """`unknown model 'resnet5' (did you mean 'resnet50'?); known: ...`"""
    known = sorted(known)
    near = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    return WbcError(f"unknown {kind} {name!r}{hint}; known: {', '.join(known)}")
