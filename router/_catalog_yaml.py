"""YAML loading that remembers line numbers, so data/config errors can name
file, line and key (`router.errors.ConfigError`). Used by the catalog loader."""

from __future__ import annotations

from typing import Any

from router.errors import ConfigError

__all__ = ["MarkedDict", "MarkedList", "line_of", "load_yaml_file", "load_yaml_text"]


class MarkedDict(dict):  # type: ignore[type-arg]
    """A dict that knows the 1-based line of each key (`lines`) and of itself (`line`)."""

    line: int | None = None
    lines: dict[Any, int]


class MarkedList(list):  # type: ignore[type-arg]
    line: int | None = None


def line_of(container: Any, key: Any = None) -> int | None:
    """Line of `key` inside a loaded mapping, else of the container, else None."""
    if isinstance(container, MarkedDict):
        if key is not None and key in getattr(container, "lines", {}):
            return container.lines[key]
        return container.line
    if isinstance(container, MarkedList):
        return container.line
    return None


def _loader():  # type: ignore[no-untyped-def]
    import yaml  # lazy: import time (`import router.catalog` loads no yaml until a file is read)

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml parser when available: ~5x faster

    class MarkedLoader(base):  # type: ignore[misc, valid-type]
        pass

    def construct_mapping(loader, node, deep=False):  # type: ignore[no-untyped-def]
        loader.flatten_mapping(node)
        d = MarkedDict()
        d.line = node.start_mark.line + 1
        d.lines = {}
        for knode, vnode in node.value:
            key = loader.construct_object(knode, deep=True)
            try:
                hash(key)
            except TypeError:
                raise ConfigError("unhashable mapping key", line=knode.start_mark.line + 1) from None
            d[key] = loader.construct_object(vnode, deep=True)
            d.lines[key] = knode.start_mark.line + 1
        return d

    def construct_seq(loader, node, deep=False):  # type: ignore[no-untyped-def]
        lst = MarkedList(loader.construct_object(n, deep=True) for n in node.value)
        lst.line = node.start_mark.line + 1
        return lst

    MarkedLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    MarkedLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, construct_seq)
    return MarkedLoader


_LOADER = None


def load_yaml_text(text: str, *, file: str = "<string>") -> Any:
    import yaml  # lazy: import time, as above

    global _LOADER
    if _LOADER is None:
        _LOADER = _loader()
    try:
        return yaml.load(text, Loader=_LOADER)  # noqa: S506 - SafeLoader subclass
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        raise ConfigError(f"invalid YAML: {e.problem or e}", file=file,
                          line=mark.line + 1 if mark else None) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"invalid YAML: {e}", file=file) from None
    except ConfigError as e:
        raise ConfigError(str(e).split(": ", 1)[-1], file=file, line=e.line, key=e.key) from None


def load_yaml_file(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(f"cannot read file: {e.strerror}", file=path) from None
    return load_yaml_text(text, file=path)
