"""``GET /api/v1/allocation``: OpenCost's allocation query over the store."""

from __future__ import annotations

from flask import Blueprint, Response, request

from api.allocation import FIELDS, AllocationRequest, allocate, parse_aggregate
from api.params import ALLOCATION, parse_args
from api.render import csv_response, ok
from api.state import state
from api.windows import rfc3339, step_seconds

__all__ = ["bp"]

bp = Blueprint("allocation", __name__)


@bp.get("/api/v1/allocation")
def allocation() -> Response:
    """Validate every parameter first (400 naming it), then ask the store once or twice."""
    st = state()
    args = parse_args(ALLOCATION, request.args, st.now())
    window = args["window"]
    req = AllocationRequest(
        window=window, step=step_seconds(window, args["step"], args["accumulate"]),
        aggregate=parse_aggregate(args["aggregate"]), filter=args["filter"],
        include_idle=args["includeIdle"], share_idle=args["shareIdle"], now=st.now(),
        cluster=st.config.cluster)
    steps = allocate(st.reader, req)
    if args["format"] == "csv":
        keys = [name for name, _ in req.aggregate]
        rows = ([rfc3339(s.start), rfc3339(s.end), item["name"],
                 *(_prop(item["properties"], k) for k in keys), *(item[f] for f in FIELDS)]
                for s in steps for item in s.items.values())
        return csv_response(["start", "end", "name", *keys, *FIELDS], rows)
    return ok([s.items for s in steps])


def _prop(props: dict[str, object], key: str) -> object:
    if key.startswith("label:"):
        labels = props.get("labels")
        return labels.get(key[len("label:"):], "") if isinstance(labels, dict) else ""
    return props.get(key, "")
