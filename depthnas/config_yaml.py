"""How depthnas reads YAML, in config files and `--set` values alike: the safe loader,
with numbers read as flags read them and a key given twice refused."""
from __future__ import annotations

import re
from typing import Any

import yaml

__all__ = ["load_yaml", "typed_text"]


def load_yaml(text: str) -> Any:
    """`text` read as YAML by `_UniqueKeyLoader` (yaml.YAMLError if it is not YAML)."""
    return yaml.load(text, Loader=_UniqueKeyLoader)


_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"


class _Int(int):
    """An int that keeps the characters it was read from (`yaml_text`)."""


class _Float(float):
    """A float that keeps the characters it was read from (`yaml_text`)."""


def typed_text(value: Any) -> str | None:
    """The characters a YAML number was written with, or None: a text field keeps
    them, where the number would rewrite them (`out: 2024.10` named runs 2024.1,
    `1_000` 1000)."""
    return getattr(value, "yaml_text", None)


def _keeping_text(number: Any, node: yaml.ScalarNode, kind: type) -> Any:
    if type(number) not in (int, float):  # an explicit tag's reading: left as it is
        return number
    kept = kind(number)
    kept.yaml_text = str(node.value)
    return kept


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load, but a key given twice in one mapping is an error: YAML keeps the last
    silently, and a config edited by hand often holds a stale line above a new one.
    Numbers are decimal, as flags read them: YAML 1.1 reads `seed: 010` as octal 8,
    0x64 as 100 and 1:30 as 90 (base 60). Here those stay text, which a number field
    reads as flags do (010 as 10, the others refused) and a text field keeps as
    typed (an `out: 0812` keeps its zero, as config.yaml writes it). No field holds a
    date: `out: 2024-01-01T10:00:00` is text, not a datetime printed back with a space."""

    yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag not in (_INT_TAG, _FLOAT_TAG, _TIMESTAMP_TAG)]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        text = str(self.construct_scalar(node)).replace("_", "")
        try:
            return _keeping_text(int(text, 10), node, _Int)
        except ValueError:  # an explicit `!!int 0x10`: YAML's own reading
            return super().construct_yaml_int(node)

    def construct_yaml_float(self, node: yaml.ScalarNode) -> float:
        return _keeping_text(super().construct_yaml_float(node), node, _Float)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor` may be overridden
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                twice = key in seen
            except TypeError:  # a list or mapping as a key: the base class says so
                break
            if twice:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in one mapping", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_implicit_resolver(_INT_TAG, re.compile(r"^[-+]?(?:0|[1-9][0-9_]*)$"),
                                       list("-+0123456789"))
# YAML 1.1's floats without the base-60 form (1:30.5)
_UniqueKeyLoader.add_implicit_resolver(_FLOAT_TAG, re.compile(
    r"^(?:[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"), list("-+0123456789."))
_UniqueKeyLoader.add_constructor(_INT_TAG, _UniqueKeyLoader.construct_yaml_int)
_UniqueKeyLoader.add_constructor(_FLOAT_TAG, _UniqueKeyLoader.construct_yaml_float)
