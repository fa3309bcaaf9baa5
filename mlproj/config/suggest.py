"""Did-you-mean: the one-line messages for a key or a group option that does not exist (difflib's closest
match). Pure functions over names, so every layer that refuses a name can use them."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The choice `word` most likely misspells, if any is close enough."""
    found = difflib.get_close_matches(word, [str(c) for c in choices], n=1, cutoff=0.6)
    return found[0] if found else None


def unknown_key(key: str, known: Iterable[str], more: str = "") -> str:
    """`key` (dotted) is not a setting of its parent node: the close match, else the keys there are.
    `more` ends the list of keys (e.g. "or any pytorch_lightning.Trainer argument")."""
    known = list(known)
    parent, _, name = key.rpartition(".")
    where = f" of {parent}" if parent else ""
    match = closest(name, known)
    if match:
        return f"{key} is not a setting{where}; did you mean {match}?"
    return f"{key} is not a setting{where}; keys: {', '.join(known)}{', ' + more if more else ''}"


def unknown_option(group: str, option: str, options: Iterable[str]) -> str:
    """`group=option` names no config file of the group."""
    options = sorted(options)
    match = closest(option, options)
    if match:
        return f"{group}={option}: did you mean {match}? options: {', '.join(options)}"
    return f"{group}={option} is not an option of {group}; options: {', '.join(options)}"
