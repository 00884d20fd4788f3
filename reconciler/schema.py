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
    adapter: TypeAdapter[FavorStock | BusifavorStock] = TypeAdapter(
        Annotated[FavorStock | BusifavorStock, Field(discriminator="kind")]
    )
    schema = adapter.json_schema(schema_generator=_Generator, mode="validation")
    schema["$schema"] = DIALECT
    schema["title"] = "reconciler stock file"
    schema["description"] = (
        "One WeChat Pay coupon stock: id, kind (favor = 代金券, busifavor = 商家券), merchant, "
        "and spec, the API create body without out_request_no."
    )
    return schema


def stock_schema_text() -> str:
    return json.dumps(stock_schema(), ensure_ascii=False, indent=2, sort_keys=True) + "\n"
