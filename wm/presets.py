"""Tier presets: ``presets/<name>.yaml`` are partial params files merged over the
defaults and written into ``params.yaml`` with its comments kept (``wm preset tier2``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from worldmodel.config import Params, ParamsError, parse_params, read_yaml

PRESETS_DIR = Path(__file__).resolve().parent.parent / "presets"


def list_presets() -> list[str]:
    """Names of the presets shipped in ``presets/``."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def preset_summary(name: str) -> str:
    """The first comment line of ``presets/<name>.yaml`` (what the preset is for)."""
    for line in (PRESETS_DIR / f"{name}.yaml").read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def resolve_preset(name: str) -> Params:
    """The params of a preset: ``presets/<name>.yaml`` over the defaults, validated.

    Raises :class:`ParamsError` for a name that is not a shipped preset (paths included).
    """
    if name not in list_presets():
        raise ParamsError(f"unknown preset {name!r}; available: {', '.join(list_presets())}")
    overrides = read_yaml(PRESETS_DIR / f"{name}.yaml") or {}
    return parse_params(_merge(Params().model_dump(), overrides), source=f"preset {name}")


def apply_preset(name: str, params_path: str | Path = "params.yaml") -> tuple[Params, list[str]]:
    """Make ``params_path`` hold exactly preset ``name`` over the defaults.

    Whatever the file held before (another preset, hand edits), every value afterwards is
    the preset's where it sets one and the default elsewhere; so applying ``tier1`` (the
    defaults) after any other preset restores the default params. The file's comments,
    key order and styles (``null``, flow lists) are kept; values are changed in place.
    The result is validated before anything is written.

    Returns:
        ``(params, changes)``: the validated params and one ``key: old -> new`` line per
        value that changed in the file.
    """
    from ruamel.yaml import YAML

    target = resolve_preset(name).model_dump()
    params_path = Path(params_path)
    rt = _round_trip_yaml(YAML)
    doc = rt.load(params_path.read_text()) if params_path.is_file() else None
    if doc is None:
        doc = rt.load("{}")
    changes: list[str] = []
    _sync(doc, target=target, default=Params().model_dump(), prefix="", changes=changes)
    text = _dump(rt, doc)
    if parse_params(yaml.safe_load(text), source=str(params_path)).model_dump() != target:
        raise ParamsError(f"{params_path}: could not write preset {name} (file left unchanged)")
    tmp = params_path.with_name(params_path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(params_path)
    return parse_params(target), changes


def _round_trip_yaml(yaml_cls: Any) -> Any:
    rt = yaml_cls()
    rt.preserve_quotes = True
    rt.width = 100
    rt.indent(mapping=2, sequence=4, offset=2)
    # ruamel writes None as an empty value (`camera:`); keep the explicit `null`
    rt.representer.add_representer(
        type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null")
    )
    return rt


def _sync(
    node: Any, target: dict[str, Any], default: dict[str, Any], prefix: str, changes: list[str]
) -> None:
    """Set ``node`` (a round-trip mapping) to ``target``, in place, keeping styles.

    A key missing from the file is added only where its value is not the default.
    """
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    for key in [k for k in node if k not in target]:  # e.g. a `per_task` entry dropped
        changes.append(f"{prefix}{key}: {_fmt(node[key])} -> (removed)")
        del node[key]
    for key, value in target.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            base = default.get(key) or {}
            if key in node and isinstance(node[key], dict):
                _sync(node[key], target=value, default=base, prefix=f"{name}.", changes=changes)
            elif value != base:
                node[key] = CommentedMap()
                _sync(node[key], target=value, default=base, prefix=f"{name}.", changes=changes)
            continue
        present = key in node
        old = node[key] if present else default.get(key)
        if (list(old) if isinstance(old, list) else old) == value:
            continue
        if not present and value == default.get(key):
            continue
        if isinstance(value, list):
            seq = CommentedSeq(value)
            seq.fa.set_flow_style()  # lists in params files are written `[a, b]`
            value_node: Any = seq
        else:
            value_node = value
        node[key] = value_node
        changes.append(f"{name}: {_fmt(old)} -> {_fmt(value)}")


def _fmt(value: Any) -> str:
    return "null" if value is None else str(list(value) if isinstance(value, list) else value)


def _dump(rt: Any, data: Any) -> str:
    import io

    buf = io.StringIO()
    rt.dump(data, buf)
    return buf.getvalue()
