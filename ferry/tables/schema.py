"""What ferry needs to know about a table, read once with DescribeTable."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ferry.aws import describe_table_or_none
from ferry.errors import SetupError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


@dataclass(frozen=True)
class TableShape:
    name: str
    hash_key: str
    range_key: str | None
    key_types: tuple[tuple[str, str], ...]  # (attribute, S|N|B) for the key attributes
    on_demand: bool
    read_units: int
    write_units: int
    stream_arn: str | None
    stream_view_type: str | None
    item_count: int
    raw: dict[str, Any]

    @property
    def key_names(self) -> tuple[str, ...]:
        return (self.hash_key,) if self.range_key is None else (self.hash_key, self.range_key)

    @property
    def key_type_map(self) -> dict[str, str]:
        return dict(self.key_types)


def describe_shape(ddb: DynamoDBClient, name: str, role: str = "table") -> TableShape:
    """DescribeTable → TableShape. A missing table is a SetupError naming it."""
    table = describe_table_or_none(ddb, name)
    if table is None:
        raise SetupError(f"{role} table {name!r} does not exist in this account and region")
    return shape_from_description(table)


def shape_from_description(table: dict[str, Any]) -> TableShape:
    keys = {k["KeyType"]: k["AttributeName"] for k in table["KeySchema"]}
    types = {a["AttributeName"]: a["AttributeType"] for a in table.get("AttributeDefinitions", [])}
    key_names = [keys["HASH"]] + ([keys["RANGE"]] if "RANGE" in keys else [])
    billing = table.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED")
    throughput = table.get("ProvisionedThroughput", {})
    stream = table.get("StreamSpecification") or {}
    return TableShape(
        name=table["TableName"],
        hash_key=keys["HASH"],
        range_key=keys.get("RANGE"),
        key_types=tuple((k, types.get(k, "S")) for k in key_names),
        on_demand=billing == "PAY_PER_REQUEST" or not throughput.get("WriteCapacityUnits"),
        read_units=int(throughput.get("ReadCapacityUnits") or 0),
        write_units=int(throughput.get("WriteCapacityUnits") or 0),
        stream_arn=table.get("LatestStreamArn") if stream.get("StreamEnabled") else None,
        stream_view_type=stream.get("StreamViewType") if stream.get("StreamEnabled") else None,
        item_count=int(table.get("ItemCount") or 0),
        raw=table,
    )


def key_schema_mismatch(source: TableShape, target: TableShape) -> str | None:
    """A sentence saying how the key schemas differ, or None when they are the same."""
    if source.key_types != target.key_types:

        def show(s: TableShape) -> str:
            roles = ("HASH", "RANGE")
            return ", ".join(f"{n} ({t}, {r})" for (n, t), r in zip(s.key_types, roles, strict=False))

        return f"target key schema [{show(target)}] differs from source key schema [{show(source)}]"
    return None


def create_table_arguments(source: TableShape, target_name: str) -> dict[str, Any]:
    """CreateTable arguments mirroring the source: keys, indexes, billing mode, encryption (ImportTable's
    TableCreationParameters are the same without local secondary indexes, which it cannot create)."""
    raw = source.raw
    used = {k["AttributeName"] for k in raw["KeySchema"]}
    for index in raw.get("GlobalSecondaryIndexes", []) + raw.get("LocalSecondaryIndexes", []):
        used |= {k["AttributeName"] for k in index["KeySchema"]}
    definition: dict[str, Any] = {
        "TableName": target_name,
        "KeySchema": raw["KeySchema"],
        "AttributeDefinitions": [a for a in raw["AttributeDefinitions"] if a["AttributeName"] in used],
        "SSESpecification": {"Enabled": True},
    }
    if source.on_demand:
        definition["BillingMode"] = "PAY_PER_REQUEST"
    else:
        definition["BillingMode"] = "PROVISIONED"
        definition["ProvisionedThroughput"] = {
            "ReadCapacityUnits": source.read_units,
            "WriteCapacityUnits": source.write_units,
        }
    gsis = []
    for index in raw.get("GlobalSecondaryIndexes", []):
        gsi: dict[str, Any] = {k: index[k] for k in ("IndexName", "KeySchema", "Projection")}
        if not source.on_demand:
            throughput = index.get("ProvisionedThroughput", {})
            gsi["ProvisionedThroughput"] = {
                "ReadCapacityUnits": throughput.get("ReadCapacityUnits") or source.read_units,
                "WriteCapacityUnits": throughput.get("WriteCapacityUnits") or source.write_units,
            }
        gsis.append(gsi)
    if gsis:
        definition["GlobalSecondaryIndexes"] = gsis
    lsis = [
        {k: index[k] for k in ("IndexName", "KeySchema", "Projection")}
        for index in raw.get("LocalSecondaryIndexes", [])
    ]
    if lsis:
        definition["LocalSecondaryIndexes"] = lsis
    return definition
