"""JSON and YAML config files: one object/mapping (`uwsgi`, or the asked section) of options.

uWSGI turns each key into an option: a list gives the option once per element, `true` is "1",
`false` is "0". What differs from uWSGI, and why:

  * a repeated key is kept once per occurrence, in order, like in ini files (jansson and
    PyYAML would silently keep only the last, losing e.g. a second attach-daemon);
  * JSON `null` is "0" as in uWSGI, but a YAML `key:` with nothing after it is "" (a bare key,
    true for flags), because that is how uWSGI's libyaml reader sees it;
  * YAML scalars other than booleans and null keep the text as written, again as libyaml
    gives it to uWSGI, so `umask: 022` stays "022" instead of becoming the integer 18;
  * JSON floats and nested objects are skipped, as in uWSGI (which logs nothing either).

Syntax errors name the file and line. Keys carry their line number: exact for YAML (from the
parser's marks), best effort for JSON (the next `"key":` in the text).
"""

from __future__ import annotations

import json
import re

import yaml
from yaml.constructor import SafeConstructor

from nsuwsgi.config.items import Item, Parsed
from nsuwsgi.errors import Origin, UserError

YAML_BOOL = "tag:yaml.org,2002:bool"
YAML_NULL = "tag:yaml.org,2002:null"


# --------------------------------------------------------------------------- JSON

class Pairs(list):
    """A JSON object as its (key, value) pairs, duplicates and order kept."""


def parse_json(text: str, path: str, section: str) -> Parsed:
    document = decode_json(text, path)
    if not isinstance(document, Pairs):
        raise UserError("the top level must be an object", origin=Origin(file=path),
                        hint=f'write {{"{section}": {{"option": "value"}}}}')
    sections = [key for key, value in document if isinstance(value, Pairs)]
    body = next((value for key, value in document if key == section), None)
    if body is None:
        return Parsed([], False, sections)
    if not isinstance(body, Pairs):
        raise UserError(f'"{section}" must be an object', origin=Origin(file=path),
                        hint=f'write "{section}": {{"option": "value"}}')
    return Parsed(json_items(body, text, path, section), True, sections)


def decode_json(text: str, path: str) -> object:
    try:
        return json.loads(text, object_pairs_hook=Pairs)
    except json.JSONDecodeError as error:
        raise UserError(f"invalid JSON: {error.msg} (column {error.colno})",
                        origin=Origin(file=path, line=error.lineno),
                        hint="check commas, quotes and brackets near this line") from None
    except ValueError as error:
        raise UserError(f"invalid JSON: {error}", origin=Origin(file=path),
                        hint="check the numbers in the file") from None
    except RecursionError:
        raise UserError("invalid JSON: nested too deeply", origin=Origin(file=path),
                        hint="a config needs only one level of objects") from None


def json_items(body: Pairs, text: str, path: str, section: str) -> list[Item]:
    lines = KeyLines(text, section)
    items = []
    for key, value in body:
        origin = Origin(file=path, line=lines.next_line(key))
        for text_value in json_values(value):
            items.append(Item(key, text_value, origin, from_file=True))
    return items


def json_values(value: object) -> list[str]:
    if isinstance(value, Pairs):
        return []
    if isinstance(value, list):
        return [text for element in value for text in json_scalar(element)]
    return json_scalar(value)


def json_scalar(value: object) -> list[str]:
    """uWSGI's mapping of one JSON value; floats and containers give nothing."""
    if value is True:
        return ["1"]
    if value is False or value is None:
        return ["0"]
    if isinstance(value, str):
        return [value]
    if isinstance(value, int):
        return [str(value)]
    return []


class KeyLines:
    """Best-effort line numbers for JSON keys: each key is searched after the previous one."""

    def __init__(self, text: str, section: str):
        self.text = text
        start = self.find(section, 0)
        self.position = start[1] if start else 0

    def find(self, key: str, position: int) -> tuple[int, int] | None:
        pattern = re.escape(json.dumps(key)) + r"\s*:"
        match = re.compile(pattern).search(self.text, position)
        return (match.start(), match.end()) if match else None

    def next_line(self, key: str) -> int | None:
        found = self.find(key, self.position)
        if found is None:
            return None
        self.position = found[1]
        return self.text.count("\n", 0, found[0]) + 1


# --------------------------------------------------------------------------- YAML

def parse_yaml(text: str, path: str, section: str) -> Parsed:
    try:
        return parse_yaml_document(text, path, section)
    except yaml.YAMLError as error:
        raise UserError(f"invalid YAML: {yaml_problem(error)}",
                        origin=Origin(file=path, line=yaml_line(error, text)),
                        hint="check the indentation and quoting near this line") from None
    except RecursionError:
        raise UserError("invalid YAML: nested too deeply", origin=Origin(file=path),
                        hint="a config needs only one level of mappings") from None


def parse_yaml_document(text: str, path: str, section: str) -> Parsed:
    loader = yaml.SafeLoader(text)
    try:
        return yaml_section(loader, path, section)
    finally:
        loader.dispose()


def yaml_problem(error: yaml.YAMLError) -> str:
    problem = getattr(error, "problem", None)
    return problem or str(error).splitlines()[0]


def yaml_line(error: yaml.YAMLError, text: str) -> int | None:
    """The error's line: from its mark, or from the offset a reader error gives."""
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    if mark is not None:
        return mark.line + 1
    if isinstance(error, yaml.reader.ReaderError):
        return text.count("\n", 0, error.position) + 1
    return None


def yaml_section(loader: yaml.SafeLoader, path: str, section: str) -> Parsed:
    root = loader.get_single_node()
    if root is None:
        return Parsed([], False, [])
    if not isinstance(root, yaml.MappingNode):
        raise UserError("the top level must be a mapping", origin=Origin(file=path, line=1),
                        hint=f"write '{section}:' then indented 'option: value' lines")
    loader.flatten_mapping(root)
    sections = [key.value for key, value in root.value
                if isinstance(key, yaml.ScalarNode) and isinstance(value, yaml.MappingNode)]
    body = next((value for key, value in root.value
                 if isinstance(key, yaml.ScalarNode) and key.value == section), None)
    if body is None:
        return Parsed([], False, sections)
    return Parsed(yaml_items(loader, body, path, section), True, sections)


def yaml_items(loader: yaml.SafeLoader, body: yaml.Node, path: str, section: str) -> list[Item]:
    if isinstance(body, yaml.ScalarNode) and body.tag == YAML_NULL:
        return []
    if not isinstance(body, yaml.MappingNode):
        raise UserError(f"'{section}' must be a mapping",
                        origin=Origin(file=path, line=body.start_mark.line + 1),
                        hint="indent 'option: value' lines under it")
    loader.flatten_mapping(body)
    items = []
    for key, value in body.value:
        if not isinstance(key, yaml.ScalarNode):
            continue
        origin = Origin(file=path, line=key.start_mark.line + 1)
        for text_value in yaml_values(value):
            items.append(Item(key.value, text_value, origin, from_file=True))
    return items


def yaml_values(node: yaml.Node) -> list[str]:
    if isinstance(node, yaml.SequenceNode):
        return [text for element in node.value for text in yaml_scalar(element)]
    return yaml_scalar(node)


def yaml_scalar(node: yaml.Node) -> list[str]:
    """A scalar as uWSGI sees it: booleans as 1/0, null as "", anything else as written."""
    if not isinstance(node, yaml.ScalarNode):
        return []
    if node.tag == YAML_BOOL and node.value.lower() in SafeConstructor.bool_values:
        return ["1" if SafeConstructor.bool_values[node.value.lower()] else "0"]
    if node.tag == YAML_NULL:
        return [""]
    return [node.value]
