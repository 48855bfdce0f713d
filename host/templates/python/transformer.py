"""`{{name}}`: a wasmeter transformer. Multiplies every value by the
setting `factor` (default 1)."""

import json
from typing import List, Tuple

import wit_world
from componentize_py_types import Err
from wit_world.imports.types import Batch, Error, ErrorKind

_factor = 1.0


class WitWorld(wit_world.WitWorld):
    def init(self, settings: List[Tuple[str, str]]) -> None:
        global _factor
        value = dict(settings).get("factor")  # a repeated key: its last value
        if value is not None:
            try:
                _factor = float(value.strip())
            except ValueError:
                message = f"setting `factor`: expected a number, got {json.dumps(value)}"
                raise Err(Error(kind=ErrorKind.INVALID_SETTINGS, message=message))

    def transform(self, input: Batch) -> Batch:
        """One call per batch: the values are one column."""
        factor = _factor
        input.values = [v * factor for v in input.values]
        return input
