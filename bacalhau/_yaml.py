"""Reading YAML that people write (job files, configuration, profiles), within bounds.

PyYAML's ``safe_load`` recurses once per level of nesting (a few thousand levels end in a
``RecursionError``) and builds aliases by reference: ``&a`` and ``*a`` let a few lines stand
for billions of values, or for a value that contains itself, which any later walk over the
document would follow. :func:`load_yaml` refuses both as a ``yaml.YAMLError``, which every
caller already reports as YAML it cannot use.
"""

from __future__ import annotations

from typing import Any

import yaml

__all__ = ["MAX_YAML_VALUES", "YamlTooLarge", "load_yaml"]

#: Values (mappings, lists and scalars) a document may expand to, counting each alias's
#: repetition. A job spec or a node's configuration is tens to hundreds.
MAX_YAML_VALUES = 100_000


class YamlTooLarge(yaml.YAMLError):
    """The document is nested too deeply, or its aliases expand it beyond the bound."""


def load_yaml(text: str) -> Any:
    """``yaml.safe_load(text)``, refusing absurd nesting and alias expansion
    (:class:`YamlTooLarge`, a ``yaml.YAMLError``)."""
    try:
        data = yaml.safe_load(text)
    except RecursionError:
        raise YamlTooLarge(
            "it is nested too deeply to read (a job spec or a configuration is a handful "
            "of levels deep)"
        ) from None
    count = 0
    stack = [data]
    while stack:  # counts without expanding: an alias's value is pushed again, not copied
        value = stack.pop()
        count += 1
        if count > MAX_YAML_VALUES:
            raise YamlTooLarge(
                f"it expands to more than {MAX_YAML_VALUES} values: aliases (*name) repeat "
                "what their anchor (&name) holds; write the values out"
            )
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return data
