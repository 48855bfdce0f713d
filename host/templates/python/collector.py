"""`{{name}}`: a wasmeter collector. Emits one gauge `heartbeat` = 1 per
tick, for the resource named by the setting `resource_id` (default
`localhost`)."""

from typing import List, Tuple

import wit_world
from wit_world.imports.types import Batch, SampleType, Series

_resource_id = "localhost"


class WitWorld(wit_world.WitWorld):
    def init(self, settings: List[Tuple[str, str]]) -> None:
        global _resource_id
        for key, value in settings:
            if key == "resource_id":
                _resource_id = value

    def collect(self, now: int) -> Batch:
        """`now`: the tick's time, ns since the Unix epoch, UTC."""
        series = Series(
            metric="heartbeat",
            resource_id=_resource_id,
            unit="1",
            type=SampleType.GAUGE,
            attributes=[],
        )
        return Batch(series=[series], series_index=[0], timestamps=[now], values=[1.0])
