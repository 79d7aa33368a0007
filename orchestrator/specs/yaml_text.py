"""YAML as a spec reads it: the constructs that would change a spec's meaning without a word are errors.

PyYAML (YAML 1.1) accepts, silently:
- a key given twice in one mapping (two `tasks:` blocks): the first value is dropped;
- keys that are not text (`on:`, `yes:`, `1:`, `null:`, `? [a, b]`): a task set called `on` becomes True;
- integers with a leading zero (`010` is octal 8) and base-60 numbers (`1:30` is 90);
and reads `1e-3` (no dot) as the text '1e-3'. Here the first three are errors naming the line(s), and
`1e-3` is the number YAML 1.2 and every researcher mean. Merge keys (`<<: *base`) stay: overriding a
merged key is what they are for.
"""
from __future__ import annotations

import re

import yaml

# libyaml's parser where PyYAML has it: a saved spec of a 10,000-trial sweep lists every index
_BASE = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAP_TAG, INT_TAG, FLOAT_TAG = "tag:yaml.org,2002:map", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
MERGE_TAG = "tag:yaml.org,2002:merge"
OCTAL = re.compile(r"^[-+]?0[0-9_]+$")
EXPONENT = re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")


class YamlMeaningError(yaml.YAMLError):
    """YAML that parses, but not to what its author meant; `message` names the line."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class StrictLoader(_BASE):
    pass


def _line(node) -> int:
    return node.start_mark.line + 1


def _mapping(loader: StrictLoader, node: yaml.MappingNode) -> dict:
    seen: dict[str, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == MERGE_TAG:  # `<<: *base`: its keys may be overridden here, that is its use
            continue
        key = loader.construct_object(key_node)
        if not isinstance(key, str):
            if not isinstance(key_node, yaml.ScalarNode):
                raise YamlMeaningError(f"the key at line {_line(key_node)} is a list or mapping; keys are names")
            raise YamlMeaningError(f"key {key_node.value} at line {_line(key_node)} is not text (YAML reads it as "
                                   f"{key!r}); quote it: '{key_node.value}'")
        if key in seen:
            raise YamlMeaningError(f"key {key!r} is given twice in one mapping (lines {seen[key]} and "
                                   f"{_line(key_node)}); YAML would drop the first: keep one")
        seen[key] = _line(key_node)
    loader.flatten_mapping(node)
    return loader.construct_mapping(node, deep=True)


def _int(loader: StrictLoader, node: yaml.ScalarNode) -> int:
    text = node.value
    if not node.style:  # plain, not quoted
        if ":" in text:
            raise YamlMeaningError(f"{text} at line {_line(node)} reads as a base-60 number in YAML "
                                   f"({loader.construct_yaml_int(node)}); write the number, or quote the text")
        if OCTAL.match(text):
            raise YamlMeaningError(f"{text} at line {_line(node)} reads as the octal number "
                                   f"{loader.construct_yaml_int(node)} in YAML; write it without the leading 0, "
                                   "or quote the text")
    return loader.construct_yaml_int(node)


def _float(loader: StrictLoader, node: yaml.ScalarNode) -> float:
    if ":" in node.value and not node.style:
        raise YamlMeaningError(f"{node.value} at line {_line(node)} reads as a base-60 number in YAML; write "
                               "the number, or quote the text")
    return loader.construct_yaml_float(node)


StrictLoader.add_constructor(MAP_TAG, _mapping)
StrictLoader.add_constructor(INT_TAG, _int)
StrictLoader.add_constructor(FLOAT_TAG, _float)
StrictLoader.add_implicit_resolver(FLOAT_TAG, EXPONENT, list("-+0123456789"))


def load_text(text: str):
    """The one YAML document in `text`, read strictly (YamlMeaningError, or PyYAML's own errors)."""
    return yaml.load(text, Loader=StrictLoader)
