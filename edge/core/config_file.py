"""Read a config file and turn every validation problem into one readable line.

Lines read `key.path: bad value — what is allowed (line N)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import yaml
from pydantic import BaseModel, ValidationError

from edge.core.config import SECRET_KEYS, Config, validate
from edge.core.errors import ConfigError, ConfigFileError


def load_config(path: Path | str) -> Config:
    """Parse and validate `path`; ConfigFileError when unreadable/not YAML, ConfigError when invalid."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigFileError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigFileError(f"{path}: cannot read the config file: {exc}") from None
    return config_from_text(text, path)


def config_from_text(text: str, path: Path | str) -> Config:
    """Parse and validate a config file's text (`path` names it in errors): what load_config and a page's save share."""
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigFileError(f"{path}: not valid YAML: {_yaml_problem(exc)}") from None

    if not text.strip() or root is None:
        raise ConfigError(str(path), ["(file): the file is empty — write at least one section, or `{}` for all defaults"])
    if not isinstance(data, dict):
        found = type(data).__name__
        raise ConfigError(str(path), [f"(file): a {found} at the top level — expected a mapping of sections (device:, camera:, ...)"])
    try:
        return validate(data)
    except ValidationError as exc:
        raise ConfigError(str(path), [_describe(err, root) for err in exc.errors()]) from None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark else problem


def _describe(err: dict, root: yaml.Node) -> str:
    loc = tuple(str(part) for part in err["loc"])
    key = ".".join(loc) or "(file)"
    line = _line_of(root, loc)
    where = f" (line {line})" if line else ""
    if err["type"] == "extra_forbidden":
        if loc[-2:] in SECRET_KEYS or loc in SECRET_KEYS:
            return f"{key}: {SECRET_KEYS[loc[-2:]]}{where}"
        return f"{key}: unknown key — allowed here: {', '.join(_allowed_keys(loc[:-1]))}{where}"
    value = err.get("input")
    shown = "(section)" if isinstance(value, dict) else repr(value)
    message = err["msg"].removeprefix("Value error, ")
    return f"{key}: {shown} — {message}{where}"


def _allowed_keys(loc: tuple[str, ...]) -> list[str]:
    model: type[BaseModel] = Config
    for part in loc:
        if part not in model.model_fields:
            continue  # a name or index inside a mapping or list of sections (zones.areas.<name>)
        annotation = model.model_fields[part].annotation
        model = next(a for a in (annotation, *getattr(annotation, "__args__", ())) if isinstance(a, type) and issubclass(a, BaseModel))
    return list(model.model_fields)


def _line_of(node: Optional[yaml.Node], loc: tuple[str, ...]) -> Optional[int]:
    """1-based line of the YAML node at `loc`, or of its deepest existing parent."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
            node = node.value[int(part)]
            line = node.start_mark.line + 1
            continue
        if not isinstance(node, yaml.MappingNode):
            break
        for key_node, value_node in node.value:
            if key_node.value == part:
                node, line = value_node, key_node.start_mark.line + 1
                break
        else:
            break
    return line
