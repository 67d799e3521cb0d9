"""Pieces the budget-study scripts share: params with ``--set`` overrides, a printed table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from worldmodel.config import Params, parse_params, read_yaml


def set_dotted(data: dict, key: str, value: str) -> None:
    """``data[a][b][c] = yaml(value)`` for ``key = "a.b.c"``."""
    node = data
    *path, last = key.split(".")
    for part in path:
        node = node.setdefault(part, {})
    node[last] = yaml.safe_load(value)


def params_with_overrides(path: Path, overrides: list[str]) -> Params:
    """``path`` with each ``KEY=VALUE`` of ``overrides`` applied, validated."""
    data = read_yaml(path)
    for item in overrides:
        key, _, value = item.partition("=")
        set_dotted(data, key, value)
    return parse_params(data, str(path))


class Table:
    """Rows printed as TSV as they come (header first), optionally written to a file."""

    def __init__(self, header: list[str]) -> None:
        self.header, self.rows = header, []
        print("\t".join(header), flush=True)

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        print(self._line(row), flush=True)

    def _line(self, row: dict[str, Any]) -> str:
        return "\t".join(str(row[k]) for k in self.header)

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = ["\t".join(self.header)] + [self._line(r) for r in self.rows]
        path.write_text("\n".join(lines) + "\n")
