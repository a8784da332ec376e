"""Conditions on key numbers, as a user types them: ``"permeability_mD_z > 1"``,
``"0.2 <= porosity <= 0.4"``.

The grammar is small on purpose (nothing is evaluated)::

    condition := name op number | number op name | number op name op number
    op        := < | <= | > | >= | == | = | !=     (a range uses < / <= twice, or > / >= twice)
    name      := letters, digits, _ (not starting with a digit)
    number    := a decimal literal, e.g. 1, -0.5, 2e-12
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ooc.errors import ConfigError

__all__ = ["Condition", "parse_condition"]

_TOKEN = re.compile(
    r"\s*(?:(?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?![A-Za-z_\d.])"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op><=|>=|==|!=|<|>|=))"
)
OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
_MIRROR = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
_FORMS = (
    "expected 'name OP number', 'number OP name' or 'number OP name OP number' "
    "with OP one of <, <=, >, >=, ==, !="
)


@dataclass(frozen=True)
class Condition:
    """A condition on the key number ``name``: every ``(op, value)`` of ``bounds`` holds for
    ``name op value``."""

    text: str
    name: str
    bounds: tuple[tuple[str, float], ...]


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text.rstrip()):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise ConfigError(
                f"where condition {text!r}: cannot read {text[pos:].strip()!r}; {_FORMS}"
            )
        kind = match.lastgroup
        assert kind is not None
        out.append((kind, match.group(kind)))
        pos = match.end()
    return out


def _number(text: str, token: str) -> float:
    value = float(token)
    if not math.isfinite(value):
        raise ConfigError(f"where condition {text!r}: {token!r} is not a finite number")
    return value


def parse_condition(text: str) -> Condition:
    """Parse one condition (see the module docstring).

    Raises
    ------
    ConfigError
        Naming the condition, if it does not follow the grammar.
    """
    if not isinstance(text, str):
        raise ConfigError(f"where condition {text!r}: expected a string; {_FORMS}")
    tokens = _tokens(text)
    kinds = [kind for kind, _ in tokens]
    values = [value for _, value in tokens]
    ops = ["==" if v == "=" else v for k, v in tokens if k == "op"]
    if kinds == ["name", "op", "number"]:
        return Condition(text, values[0], ((ops[0], _number(text, values[2])),))
    if kinds == ["number", "op", "name"]:
        return Condition(text, values[2], ((_MIRROR[ops[0]], _number(text, values[0])),))
    if kinds == ["number", "op", "name", "op", "number"]:
        if not (set(ops) <= {"<", "<="} or set(ops) <= {">", ">="}):
            raise ConfigError(
                f"where condition {text!r}: a range needs two '<'/'<=' or two '>'/'>='"
            )
        low, high = _number(text, values[0]), _number(text, values[4])
        return Condition(text, values[2], ((_MIRROR[ops[0]], low), (ops[1], high)))
    raise ConfigError(f"where condition {text!r}: {_FORMS}")
