"""unknown_reader: drivers no device of ours has, and readers the boot record did not list."""

from __future__ import annotations

import pytest

from .support import END, MIN, START, Log, S, confirm, run, sorted_log, status

UID = "04A1B2C3"


def _read(
    reader: str, driver: str, listed: dict[str, str] | None = None, *, old_boot: bool = False
) -> tuple[str, tuple[str, ...]]:
    log = Log()
    if old_boot:
        # An agent of before reader_drivers: names and drivers in two lists.
        pairs = listed or {"main": "mfrc522"}
        data = {"doors": ["front"], "readers": list(pairs), "drivers": sorted(set(pairs.values()))}
        log.add("boot", START - 2 * 3600 * S, data)
    else:
        log.boot_record(START - 2 * 3600 * S, readers=listed)
    log.heartbeats(START - 2 * 3600 * S + MIN, END + 3600 * S)
    log.door(START - 2 * S, "open")
    log.badge(START, UID, reader=reader, driver=driver)
    log.door(START + 8 * S, "closed")
    log.log = sorted_log(log.log)
    return status(run([log.log], [confirm()]))


@pytest.mark.parametrize("driver", ["mfrc522", "MFRC522", "rdm6300", "serial-line"])
def test_a_listed_hardware_reader_is_verified(driver: str) -> None:
    assert _read("main", driver, {"main": driver.lower()}) == ("verified", ())
    assert _read("MAIN", driver, {"main": driver.lower()}) == ("verified", ())  # any case


@pytest.mark.parametrize("driver", ["simulated", "Simulated", "SIMULATED"])
def test_the_simulated_driver_in_any_case(driver: str) -> None:
    assert _read("desk", driver, {"desk": "simulated"}) == ("suspect", ("simulated_reader",))


@pytest.mark.parametrize("driver", ["sim", "Simulated-v2", "mock", "", "fake-mfrc522"])
def test_a_driver_that_is_no_hardware_driver(driver: str) -> None:
    assert _read("main", driver, {"main": driver}) == ("suspect", ("unknown_reader",))


def test_a_hardware_driver_the_boot_did_not_list_for_that_reader() -> None:
    # A reader renamed or added after boot, or a driver swapped in under a listed name.
    assert _read("side", "mfrc522") == ("suspect", ("unknown_reader",))
    assert _read("main", "rdm6300") == ("suspect", ("unknown_reader",))


def test_an_older_boot_record_lists_names_and_drivers_apart() -> None:
    assert _read("main", "mfrc522", old_boot=True) == ("verified", ())
    assert _read("side", "mfrc522", old_boot=True) == ("suspect", ("unknown_reader",))
    assert _read("main", "rdm6300", old_boot=True) == ("suspect", ("unknown_reader",))


def test_the_boot_before_the_range_lists_the_readers() -> None:
    log = Log()
    log.heartbeats(START - 2 * 3600 * S, END + 3600 * S)
    log.door(START - 2 * S, "open")
    log.badge(START, UID, reader="main", driver="mfrc522")
    log.badge(START + 30 * MIN, "04A1B2C4", reader="usb", driver="mfrc522")
    log.door(START + 8 * S, "closed")
    log.door(START + 30 * MIN - 2 * S, "open")
    log.door(START + 30 * MIN + 8 * S, "closed")
    log.log = sorted_log(log.log)
    log.log.boot_before = {"doors": ["front"], "reader_drivers": {"main": "mfrc522"}}
    result = run([log.log], [confirm(), confirm("K2")])
    assert status(result) == ("verified", ())
    assert status(result, "K2") == ("suspect", ("unknown_reader",))
