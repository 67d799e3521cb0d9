"""The params reference (docs/params.md), generated from the field descriptions of
:mod:`worldmodel.config` so it cannot go stale (``wm params-doc --write docs/params.md``)."""

from __future__ import annotations

from pydantic import BaseModel

from worldmodel.config import Params


def params_markdown() -> str:
    """A Markdown table of every param with its type, default and description."""
    rows = ["| key | type | default | description |", "|---|---|---|---|"]

    def walk(model: type[BaseModel], prefix: str, values: BaseModel) -> None:
        # `values`: the default instance, so a section's own defaults (e.g. the tokenizer's
        # `train.steps`) show rather than those of the shared nested class.
        for name, field in model.model_fields.items():
            ann = field.annotation
            key = f"{prefix}{name}"
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                walk(ann, f"{key}.", getattr(values, name))
                continue
            default = getattr(values, name)
            type_name = getattr(ann, "__name__", str(ann)).replace("typing.", "")
            if str(ann).startswith("typing.Literal"):
                type_name = " \\| ".join(f"`{a}`" for a in ann.__args__)
            type_name = type_name.replace("|", "\\|")
            desc = (field.description or "").replace("|", "\\|")
            rows.append(f"| `{key}` | {type_name} | `{default}` | {desc} |")

    walk(Params, "", Params())
    return "\n".join(rows) + "\n"


PARAMS_START, PARAMS_END = "<!-- params:start -->", "<!-- params:end -->"


def replace_params_section(text: str) -> str:
    """``text`` with the block between the params markers replaced by :func:`params_markdown`."""
    head, sep, rest = text.partition(PARAMS_START)
    _, sep2, tail = rest.partition(PARAMS_END)
    if not sep or not sep2:
        raise ValueError(f"markers {PARAMS_START} ... {PARAMS_END} not found")
    return f"{head}{PARAMS_START}\n{params_markdown()}{PARAMS_END}{tail}"
