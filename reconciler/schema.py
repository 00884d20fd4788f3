"""JSON Schema of a stock file, generated from the models, for editors (yaml-language-server)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import Field, TypeAdapter
from pydantic.json_schema import GenerateJsonSchema

from reconciler.spec.stock import BusifavorStock, FavorStock

DIALECT = "https://json-schema.org/draft/2020-12/schema"


class _Generator(GenerateJsonSchema):
    schema_dialect = DIALECT


def stock_schema() -> dict[str, Any]:
    """The schema of a stock file. The kind's branch is chosen with `if`/`then` on `kind`,
    not with `oneOf` and OpenAPI's `discriminator` (pydantic's default): generic validators
    ignore the discriminator, try both branches, and report the wrong kind's fields as the
    "best match" (check-jsonschema did), while `if`/`then` only ever applies the right one."""
    adapter: TypeAdapter[FavorStock | BusifavorStock] = TypeAdapter(
        Annotated[FavorStock | BusifavorStock, Field(discriminator="kind")]
    )
    generated = adapter.json_schema(schema_generator=_Generator, mode="validation")
    branches = generated["discriminator"]["mapping"]
    schema: dict[str, Any] = {"$defs": generated["$defs"]}
    schema["type"] = "object"
    schema["required"] = ["kind"]
    schema["properties"] = {
        "kind": {
            "enum": sorted(branches),
            "description": "favor (代金券) or busifavor (商家券); decides what spec holds.",
        }
    }
    schema["allOf"] = [
        {
            "if": {"properties": {"kind": {"const": kind}}, "required": ["kind"]},
            "then": {"$ref": ref},
        }
        for kind, ref in sorted(branches.items())
    ]
    schema["$schema"] = DIALECT
    schema["title"] = "reconciler stock file"
    schema["description"] = (
        "One WeChat Pay coupon stock: id, kind (favor = 代金券, busifavor = 商家券), merchant, "
        "and spec, the API create body without out_request_no."
    )
    return schema


def stock_schema_text() -> str:
    return json.dumps(stock_schema(), ensure_ascii=False, indent=2, sort_keys=True) + "\n"
