"""The API's JSON: what reaches a client is valid JSON, whatever numpy hands the encoder."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from flask import Flask

from api.jsonprovider import OrjsonProvider


@pytest.fixture
def provider() -> OrjsonProvider:
    return OrjsonProvider(Flask("t"))


def test_nan_and_infinities_become_null_and_key_order_is_kept(provider) -> None:
    text = provider.dumps({"z": math.nan, "a": math.inf, "m": -math.inf, "k": 1.5})
    assert json.loads(text) == {"z": None, "a": None, "m": None, "k": 1.5}
    assert list(json.loads(text)) == ["z", "a", "m", "k"]


def test_numpy_views_scalars_and_other_byte_orders(provider) -> None:
    data = {"view": np.arange(6.0).reshape(2, 3)[:, 1], "f32": np.float32(2.5),
            "i64": np.int64(7), "big": np.array([1.0, 2.0], dtype=">f8"), 3: "int key"}
    assert json.loads(provider.dumps(data)) == {"view": [1.0, 4.0], "f32": 2.5, "i64": 7,
                                                "big": [1.0, 2.0], "3": "int key"}
    assert provider.loads(b'{"a": [1, null]}') == {"a": [1, None]}


def test_what_json_cannot_hold_is_a_type_error(provider) -> None:
    with pytest.raises(TypeError, match="object"):
        provider.dumps({"x": object()})
