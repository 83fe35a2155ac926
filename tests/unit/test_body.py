"""``to_body`` writes what JavaScript's JSON.stringify writes (checked against real Node)."""

import json
import random
import subprocess

import pytest

from app.body import js_number, to_body


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (10.0, "10"),
        (-0.0, "0"),
        (1e16, "10000000000000000"),
        (1e-6, "0.000001"),
        (1.5e-7, "1.5e-7"),
        (1e21, "1e+21"),
        (2.5e20, "250000000000000000000"),
        (123.456, "123.456"),
        (-3.0, "-3"),
        (5e-324, "5e-324"),
    ],
)
def test_js_number_table(value: float, text: str) -> None:
    assert js_number(value) == text


def test_integer_like_keys_come_first_ascending() -> None:
    assert to_body({"b": 1, "2": 2, "1": 3, "01": 4}) == b'{"1":3,"2":2,"b":1,"01":4}'


def test_plain_bodies_take_the_fast_path_unchanged() -> None:
    import orjson

    value = {"id": "evt_1", "data": {"name": "Zoë", "n": 3, "ok": True, "x": None}}
    assert to_body(value) == orjson.dumps(value)


def test_node_json_stringify_reproduces_every_body() -> None:
    rng = random.Random(7)
    values: list[object] = [
        {"amount": 10.0, "z": -0.0, "k": {"10": 1, "2": 2, "a": 3}},
        [1e-5, 0.00012, 1e19, 1e300, 0.1, 'a \u2028 \u0001 " \\ /'],
    ]
    for _ in range(300):
        values.append(
            [
                rng.uniform(-1e6, 1e6),
                rng.random() * 10 ** rng.randint(-12, 25),
                float(rng.randint(-99, 99)),
            ]
        )
    bodies = [to_body(v).decode() for v in values]
    script = (
        "const a = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
        "console.log(JSON.stringify(a.map((b) => JSON.stringify(JSON.parse(b)))));"
    )
    out = subprocess.run(
        ["node", "-e", script], input=json.dumps(bodies), capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == bodies
