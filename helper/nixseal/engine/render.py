"""Templates: placeholders in a template's text replaced by secret values.

Substitution is one pass over the template: a secret whose value happens
to contain another placeholder's text is inserted verbatim, never expanded
again, so no value can pull another secret into a file it was not meant for.
"""

from __future__ import annotations

import re
from collections.abc import Mapping


def referenced(content: str, placeholders: Mapping[str, str]) -> list[str]:
    """Names of the secrets whose placeholder occurs in content."""
    return [name for name, text in placeholders.items() if text in content]


def render(content: str, values: Mapping[str, bytes], placeholders: Mapping[str, str]) -> bytes:
    """content with each placeholder replaced by its secret's value (bytes).

    values must hold every name referenced() returns.
    """
    used = {placeholders[name].encode(): values[name] for name in referenced(content, placeholders)}
    raw = content.encode()
    if not used:
        return raw
    # Longest first, so a placeholder that is a prefix of another loses.
    pattern = re.compile(b"|".join(re.escape(t) for t in sorted(used, key=len, reverse=True)))
    return pattern.sub(lambda m: used[m.group(0)], raw)
