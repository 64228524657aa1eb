"""The access policy document as YAML (`flask policies export|import`), with problems reported at their line.

`load(text)` composes the YAML (keeping each node's start mark), refuses duplicate keys and anything that is not
plain data, resolves groups given by name through the imported groups, validates with `policies.service.validate`
and maps every FieldError's path (`rules[2].paths[0]`) back to the line it came from. `dump(document)` writes the
canonical document, which `load` reads back to the same document.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from policies import service

PATH_TOKEN = re.compile(r"([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]")  # names: keys and header names (X-Team)
MAX_BYTES = 5 * 1024 * 1024


@dataclass(frozen=True)
class YamlProblem:
    line: int | None  # 1-based
    path: str
    message: str

    def describe(self, filename: str = "") -> str:
        where = f"{filename}:" if filename else ""
        where += f"{self.line}: " if self.line else " " if filename else ""
        return f"{where}{self.path + ': ' if self.path else ''}{self.message}"


class PolicyFileInvalid(Exception):
    def __init__(self, problems: list[YamlProblem]) -> None:
        super().__init__("; ".join(p.describe() for p in problems))
        self.problems = problems


def dump(document: dict[str, Any], version: int | None = None) -> str:
    header = "# Access policies" + (f", version {version}" if version is not None else "") + \
        " (flask policies export). Groups: matched by id; name is for people.\n"
    return header + yaml.safe_dump(service.normalize(document), sort_keys=False, allow_unicode=True,
                                   default_flow_style=False, width=120)


def _line(node: yaml.Node | None) -> int | None:
    return node.start_mark.line + 1 if node is not None else None


def node_at(root: yaml.Node | None, path: str) -> yaml.Node | None:
    """The deepest node along `path` (a key's own node for a mapping entry), or the root."""
    node = root
    found = root
    for name, index in PATH_TOKEN.findall(path):
        if node is None:
            break
        if name and isinstance(node, yaml.MappingNode):
            entry = next(((key, value) for key, value in node.value if getattr(key, "value", None) == name), None)
            if entry is None:
                break
            node = entry[1]
            found = entry[0] if isinstance(node, yaml.MappingNode | yaml.SequenceNode) else node
        elif index and isinstance(node, yaml.SequenceNode) and int(index) < len(node.value):
            node = node.value[int(index)]
            found = node
        else:
            break
    return found


def _duplicates(node: yaml.Node, path: str = "") -> list[YamlProblem]:
    problems: list[YamlProblem] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = str(getattr(key, "value", ""))
            child = f"{path}.{name}" if path else name
            if name in seen:
                problems.append(YamlProblem(_line(key), child, f"the key {name!r} is given twice"))
            seen.add(name)
            problems.extend(_duplicates(value, child))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            problems.extend(_duplicates(item, f"{path}[{index}]"))
    return problems


def _plain(value: Any, path: str, root: yaml.Node | None, problems: list[YamlProblem]) -> None:
    """Only text, numbers, booleans, null, lists and mappings with text keys (no dates, no binary)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                problems.append(YamlProblem(_line(node_at(root, path)), path, f"key {key!r} must be text"))
                continue
            _plain(item, f"{path}.{key}" if path else key, root, problems)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _plain(item, f"{path}[{index}]", root, problems)
    elif not (value is None or isinstance(value, str | int | float | bool)):
        problems.append(YamlProblem(_line(node_at(root, path)), path,
                                    f"must be plain text or a number, not {type(value).__name__} (quote it)"))


def load(text: str) -> dict[str, Any]:
    """The canonical document from YAML text, or PolicyFileInvalid with every problem and its line."""
    if len(text.encode("utf-8", "replace")) > MAX_BYTES:
        raise PolicyFileInvalid([YamlProblem(None, "", "the file is larger than 5 MB")])
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):  # an alias can multiply a small file many times
            if isinstance(event, yaml.AliasEvent):
                line = event.start_mark.line + 1 if event.start_mark else None
                raise PolicyFileInvalid([YamlProblem(line, "", "aliases (*name) are not accepted: write the value "
                                                                "out")])
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        message = f"YAML syntax: {problem}" + (f" ({context})" if context else "")
        if "alias" in str(context or problem):
            message += "; a lone * must be quoted: host: \"*\""
        raise PolicyFileInvalid([YamlProblem(mark.line + 1 if mark else None, "", message)]) from None
    if data is None:
        data = {}
    problems = _duplicates(root) if root is not None else []
    _plain(data, "", root, problems)
    if problems:
        raise PolicyFileInvalid(problems)
    errors = service.resolve_group_references(data) if isinstance(data, dict) else []
    unresolved = tuple(error.path for error in errors)
    errors += [error for error in service.validate(data) if not error.path.startswith(unresolved or ("\0",))]
    if errors:
        raise PolicyFileInvalid([YamlProblem(_line(node_at(root, e.path)), e.path, e.message) for e in errors])
    return service.normalize(data)
