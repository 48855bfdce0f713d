"""`{{name}}`: a wasmeter alarm rule. Alarms when every point is above the
parameter `threshold`, is ok when none is, and is equivocal otherwise
(trending to the last point's state). No points: insufficient data."""

import json
from typing import List, Tuple

import wit_world
from componentize_py_types import Err
from wit_world.imports.alarm import Evaluation, SeriesAggregates, State
from wit_world.imports.types import Error, ErrorKind


def _threshold(params: List[Tuple[str, str]]) -> float:
    value = dict(params).get("threshold")
    if value is None:
        raise Err(Error(kind=ErrorKind.INVALID_SETTINGS, message="missing setting `threshold`"))
    try:
        return float(value.strip())
    except ValueError:
        message = f"setting `threshold`: expected a number, got {json.dumps(value)}"
        raise Err(Error(kind=ErrorKind.INVALID_SETTINGS, message=message))


class WitWorld(wit_world.WitWorld):
    def init(self, settings: List[Tuple[str, str]]) -> None:
        pass

    def evaluate(
        self, params: List[Tuple[str, str]], input: List[SeriesAggregates]
    ) -> List[Evaluation]:
        threshold = _threshold(params)
        out = []
        for s in input:
            points = len(s.values)
            outside = sum(1 for v in s.values if v > threshold)
            last = s.values[-1] if s.values else None
            equivocal = 0 < outside < points
            if last is None:
                state = State.INSUFFICIENT_DATA
            elif equivocal:
                state = State.ALARM if last > threshold else State.OK
            else:
                state = State.ALARM if outside == points else State.OK
            out.append(
                Evaluation(
                    state=state,
                    equivocal=equivocal,
                    points=points,
                    outside=outside,
                    most_recent=last,
                    reason="no datapoints" if points == 0 else "",
                )
            )
        return out
