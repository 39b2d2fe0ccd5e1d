"""DeliveryAnomalies.parse: what `ferry replicate --anomalies` accepts, and clear errors."""

from __future__ import annotations

import pytest

from ferry.errors import SpecError
from ferry_dev.anomalies import DeliveryAnomalies

pytestmark = pytest.mark.unit


def test_parse_reads_every_anomaly():
    parsed = DeliveryAnomalies.parse("duplicate=0.2, delay=0.1,reorder,redeliver=0.05,seed=9")
    assert (parsed.duplicate, parsed.delay, parsed.reorder, parsed.redeliver, parsed.seed) == (0.2, 0.1, True, 0.05, 9)
    assert DeliveryAnomalies.parse("") == DeliveryAnomalies()


@pytest.mark.parametrize("text", ["dupe=0.1", "duplicate=x", "delay=1", "redeliver=-0.1", "seed=1.5"])
def test_bad_anomalies_are_a_usage_error_naming_the_option(text):
    with pytest.raises(SpecError) as raised:
        DeliveryAnomalies.parse(text)
    assert raised.value.field == "--anomalies"


def test_the_same_seed_gives_the_same_decisions():
    a, b = DeliveryAnomalies(duplicate=0.5, seed=3), DeliveryAnomalies(duplicate=0.5, seed=3)
    assert [a.chance(0.5) for _ in range(50)] == [b.chance(0.5) for _ in range(50)]
