"""Which emulator starts: the argument, else FERRY_EMULATOR, else the default (ministack; moto for the bench)."""

from __future__ import annotations

import pytest

from bench.common import bench_emulator
from ferry.errors import SetupError
from ferry_dev.emulator import EMULATOR_VARIABLE, MINISTACK, MOTO, emulator_kind

pytestmark = pytest.mark.unit


def test_the_default_is_ministack_and_the_bench_s_is_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(EMULATOR_VARIABLE, raising=False)
    assert emulator_kind() == MINISTACK
    assert bench_emulator() == MOTO


@pytest.mark.parametrize("chosen", [MOTO, MINISTACK])
def test_the_variable_chooses_for_everything_and_an_argument_wins(monkeypatch: pytest.MonkeyPatch, chosen) -> None:
    monkeypatch.setenv(EMULATOR_VARIABLE, chosen)
    assert emulator_kind() == chosen and bench_emulator() == chosen
    other = MINISTACK if chosen == MOTO else MOTO
    assert emulator_kind(other) == other


def test_an_unknown_emulator_is_refused_naming_where_it_came_from(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EMULATOR_VARIABLE, "localstack")
    with pytest.raises(SetupError, match=f"^{EMULATOR_VARIABLE}: 'localstack' is not one of moto, ministack"):
        emulator_kind()
    with pytest.raises(SetupError, match=r"^the emulator: 'dynalite'"):
        emulator_kind("dynalite")
