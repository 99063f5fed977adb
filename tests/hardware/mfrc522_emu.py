"""A register-level MFRC522 and a field of ISO 14443-3 type A cards.

The chip answers SPI transfers (``[addr<<1 | 0x80, ...]`` reads, ``[addr<<1,
data...]`` writes) with its registers, a 64-byte FIFO and the commands Idle,
CalcCRC (real CRC_A with the ModeReg preset), Transceive and SoftReset; the
other commands raise NotImplementedError so a test notices. Transceive sends
the FIFO (BitFramingReg TxLastBits) to every card in the field, merges their
answers bit by bit (a bit on which answers differ is a collision: ErrorReg
CollErr, CollReg CollPos counted from bit 0 of the first FIFO byte, RxAlign
included, 0 meaning 32; CollReg ValuesAfterColl=0 clears the bits from the
collision on) and stores them at RxAlign.

Time: chip time is the injected ``now()`` plus the time the SPI bus spent so
far (bits / clock), so a driver that never sleeps still sees time pass as it
polls. Answers arrive a frame delay plus their air time after the frame was
sent; with TModeReg TAuto the timer starts at the end of transmission, stops
on the first received bit, and sets TimerIRq after (TPrescaler*2+1)*
(TReload+1)/13.56 MHz. Without TAuto no timer runs. FIFO alert IRQs,
MFAuthent and the other radio settings are not emulated; a Transceive with
TxModeReg/RxModeReg bit 7 (TxCRCEn/RxCRCEn) set raises NotImplementedError,
since the driver appends and checks CRC_A itself. The 64-byte FIFO is the
frame limit both ways: a byte written to a full FIFO, or received into one,
is lost and sets ErrorReg BufferOvfl, as on the chip. A card may take longer
than the frame delay to answer (``answer_delay_s``, for ISO-DEP cards at work):
the timer then runs on until the first bit.

Controls for tests: :meth:`Mfrc522Chip.add_card`, :meth:`remove_card`,
:meth:`stop_answering` (every read gives 0x00 or 0xFF, writes are lost, until
:meth:`resume` or, with ``until_reset``, a reset pulse), :meth:`brownout`
(registers back to reset values behind the driver's back), ``io_error`` (every
transfer raises it, like a bus that went away), ``radio_errors`` (ErrorReg
bits such as ParityErr or ProtocolErr added to every reception, like a card
at the edge of the field), ``version`` and
``transfers`` (SPI transfers so far).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from agent.readers.iso14443 import CASCADE_TAG, REQA, WUPA, bcc, cascade_levels, crc_a

FC = 13.56e6
BIT_S = 128 / FC  # one bit at 106 kbit/s
FDT_S = 1236 / FC  # card's frame delay time after the end of a frame

COMMAND, COM_IEN, DIV_IEN, COM_IRQ, DIV_IRQ, ERROR, STATUS1, STATUS2 = range(1, 9)
FIFO_DATA, FIFO_LEVEL, WATER_LEVEL, CONTROL, BIT_FRAMING, COLL = range(9, 15)
MODE, TX_MODE, RX_MODE, TX_CONTROL, TX_ASK = range(0x11, 0x16)
CRC_RESULT_H, CRC_RESULT_L = 0x21, 0x22
T_MODE, T_PRESCALER, T_RELOAD_H, T_RELOAD_L = range(0x2A, 0x2E)
VERSION = 0x37

CMD_IDLE, CMD_CALC_CRC, CMD_TRANSCEIVE, CMD_SOFT_RESET = 0x00, 0x03, 0x0C, 0x0F
IRQ_TX, IRQ_RX, IRQ_IDLE, IRQ_ERR, IRQ_TIMER = 0x40, 0x20, 0x10, 0x02, 0x01
ERR_BUFFER_OVFL, ERR_COLL = 0x10, 0x08
FIFO_SIZE = 64

RESET_VALUES = {
    COMMAND: 0x20, COM_IEN: 0x80, COM_IRQ: 0x14, STATUS1: 0x21, WATER_LEVEL: 0x08,
    CONTROL: 0x10, COLL: 0x80, MODE: 0x3F, TX_CONTROL: 0x80, 0x16: 0x10, 0x17: 0x84,
    0x18: 0x84, 0x19: 0x4D, 0x1C: 0x62, 0x1F: 0xEB, CRC_RESULT_H: 0xFF,
    CRC_RESULT_L: 0xFF, 0x24: 0x26, 0x26: 0x48, 0x27: 0x88, 0x28: 0x20, 0x29: 0x20,
}  # fmt: skip
CRC_PRESETS = (0x0000, 0x6363, 0xA671, 0xFFFF)


def to_bits(data: bytes, count: int | None = None) -> list[int]:
    """Bits LSB first in each byte, as they go over the air."""
    bits = [(byte >> i) & 1 for byte in data for i in range(8)]
    return bits if count is None else bits[:count]


def from_bits(bits: list[int]) -> bytes:
    out = bytearray((len(bits) + 7) // 8)
    for i, bit in enumerate(bits):
        if bit:
            out[i // 8] |= 1 << (i % 8)
    return bytes(out)


def crc_with_preset(data: bytes, preset: int) -> int:
    crc = preset
    for byte in data:
        b = (byte ^ crc) & 0xFF
        b = (b ^ (b << 4)) & 0xFF
        crc = ((crc >> 8) ^ (b << 8) ^ (b << 3) ^ (b >> 4)) & 0xFFFF
    return crc


class EmulatedCard:
    """One ISO 14443-3 type A card: IDLE, READY (per cascade level), ACTIVE, HALT.

    REQA wakes an IDLE card, WUPA an IDLE or HALT one; ANTICOLLISION answers the
    rest of the level's 40 bits when the sent bits match; a matching SELECT
    (CRC_A checked) answers SAK, 0x04 while levels remain; HLTA halts an ACTIVE
    card. A non-matching ANTICOLLISION or SELECT leaves a READY card silent and
    READY; any other frame (REQA/WUPA included) sends a READY or ACTIVE card
    back to IDLE, or to HALT if it was woken from HALT, without an answer.
    """

    def __init__(self, uid: bytes | str, *, sak: int | None = None) -> None:
        self.uid = bytes.fromhex(uid) if isinstance(uid, str) else bytes(uid)
        self.levels = [cl + bytes((bcc(cl),)) for cl in cascade_levels(self.uid)]
        size = len(self.levels) - 1
        self.sak = sak if sak is not None else (0x08, 0x00, 0x20)[size]
        self.atqa = bytes(((0x04, 0x44, 0x84)[size], 0x00))  # bits 7-6: UID size
        self.state = "IDLE"
        self.level = 0
        self.from_halt = False
        self.selected = 0  # times this card reached ACTIVE
        # Time the card takes beyond the standard frame delay to start its
        # answer to the frame it last received (an ISO-DEP card computing).
        self.answer_delay_s = 0.0

    @property
    def uid_hex(self) -> str:
        return self.uid.hex().upper()

    def power_cycle(self) -> None:
        self.state, self.level, self.from_halt = "IDLE", 0, False

    def receive(self, bits: list[int]) -> list[int] | None:
        """A frame from the reader; the answer's bits, or None for silence."""
        if len(bits) == 7:
            command = from_bits(bits)[0]
            if (command == REQA and self.state == "IDLE") or (
                command == WUPA and self.state in ("IDLE", "HALT")
            ):
                self.from_halt = self.state == "HALT"
                self.state, self.level = "READY", 0
                return to_bits(self.atqa)
            return self._other()
        data = from_bits(bits)
        if self.state == "READY" and len(bits) >= 16 and data[0] == (0x93, 0x95, 0x97)[self.level]:
            return self._anticollision_or_select(data, bits)
        halt = len(bits) == 32 and data[:2] == b"\x50\x00" and crc_a(data[:2]) == data[2:4]
        if self.state == "ACTIVE" and halt:
            self.state = "HALT"
            return None
        return self._other()

    def _anticollision_or_select(self, data: bytes, bits: list[int]) -> list[int] | None:
        nvb = data[1]
        mine = self.levels[self.level]
        if nvb == 0x70 and len(bits) == 72:
            if crc_a(data[:7]) != data[7:9] or data[2:7] != mine:
                return None  # not for this card: stay READY, silent
            if self.level < len(self.levels) - 1:
                sak = 0x04
                self.level += 1
            else:
                sak = self.sak
                self.state = "ACTIVE"
                self.selected += 1
            return to_bits(bytes((sak,)) + crc_a(bytes((sak,))))
        count = ((nvb >> 4) - 2) * 8 + (nvb & 0x0F)
        if not (2 <= nvb >> 4 <= 6 and nvb & 0x0F < 8 and 0 <= count < 40):
            return self._other()
        if len(bits) != 16 + count:
            return self._other()
        own = to_bits(mine)
        return own[count:] if own[:count] == bits[16:] else None

    def _other(self) -> None:
        if self.state in ("READY", "ACTIVE"):
            self.state = "HALT" if self.from_halt else "IDLE"
        return None

    def __repr__(self) -> str:
        return f"<EmulatedCard {self.uid_hex} {self.state}>"


@dataclass
class _Exchange:
    tx_end: float
    answers: list[list[int]]
    rx_align: int
    answer_at: float | None
    timer_at: float | None
    delay: float = 0.0  # the card's processing time beyond the standard frame delay
    tx_done: bool = False
    timer_fired: bool = False


class Mfrc522Chip:
    def __init__(self, *, version: int = 0x92, now: Callable[[], float] = time.monotonic) -> None:
        self.version = version
        self._now = now
        self.bus_time = 0.0
        self.transfers = 0
        self.cards: list[EmulatedCard] = []
        self.resets = 0  # hardware reset pulses seen
        self.io_error: OSError | None = None  # raised by every transfer while set
        self.radio_errors = 0  # ErrorReg bits added to every reception while set
        self._dead: int | None = None
        self._dead_until_reset = False
        self._powered_down = False
        self._reset_line = 1
        self.regs = [0] * 64
        self.fifo: list[int] = []
        self._exchange: _Exchange | None = None
        self._power_on_reset()

    # -- controls -----------------------------------------------------------

    def add_card(self, card: EmulatedCard | bytes | str) -> EmulatedCard:
        card = card if isinstance(card, EmulatedCard) else EmulatedCard(card)
        card.power_cycle()
        self.cards.append(card)
        return card

    def remove_card(self, card: EmulatedCard) -> None:
        self.cards.remove(card)
        card.power_cycle()

    def stop_answering(self, value: int = 0x00, *, until_reset: bool = False) -> None:
        self._dead = value
        self._dead_until_reset = until_reset

    def resume(self) -> None:
        self._dead = None
        self._dead_until_reset = False

    def brownout(self) -> None:
        self._power_on_reset()

    def set_reset_line(self, level: int) -> None:
        """NRSTPD: low is hard power-down; a rising edge resets the chip."""
        if level and not self._reset_line:
            self.resets += 1
            self._powered_down = False
            if self._dead_until_reset:
                self.resume()
            self._power_on_reset()
        elif not level:
            self._powered_down = True
            self._field(False)
        self._reset_line = 1 if level else 0

    def time(self) -> float:
        return self._now() + self.bus_time

    @property
    def antenna_on(self) -> bool:
        return bool(self.regs[TX_CONTROL] & 0x03)

    # -- SPI ------------------------------------------------------------------

    def transfer(self, data: list[int], speed_hz: int) -> list[int]:
        self.transfers += 1
        self.bus_time += len(data) * 8 / speed_hz
        if self.io_error is not None:
            raise self.io_error
        if self._dead is not None:
            return [self._dead] * len(data)
        if self._powered_down:
            return [0x00] * len(data)
        self._advance()
        out = [0]
        first = data[0]
        if first & 0x80:  # read: each byte clocks out the register the previous one named
            address = (first >> 1) & 0x3F
            for nxt in data[1:]:
                out.append(self._read(address))
                address = (nxt >> 1) & 0x3F
        else:
            address = (first >> 1) & 0x3F
            for value in data[1:]:
                self._write(address, value)
                out.append(0)
        return out

    def _read(self, reg: int) -> int:
        if reg == FIFO_DATA:
            return self.fifo.pop(0) if self.fifo else 0x00
        if reg == FIFO_LEVEL:
            return len(self.fifo)
        if reg == VERSION:
            return self.version
        if reg in (COM_IRQ, DIV_IRQ):
            return self.regs[reg] & 0x7F
        return self.regs[reg]

    def _write(self, reg: int, value: int) -> None:
        if reg == COMMAND:
            self._command(value)
        elif reg in (COM_IRQ, DIV_IRQ):
            if value & 0x80:
                self.regs[reg] |= value & 0x7F
            else:
                self.regs[reg] &= ~value & 0x7F
        elif reg == FIFO_DATA:
            if len(self.fifo) < FIFO_SIZE:
                self.fifo.append(value)
            else:
                self.regs[ERROR] |= ERR_BUFFER_OVFL
        elif reg == FIFO_LEVEL:
            if value & 0x80:
                self.fifo.clear()
                self.regs[ERROR] &= ~ERR_BUFFER_OVFL
        elif reg == BIT_FRAMING:
            self.regs[reg] = value
            if value & 0x80 and self.regs[COMMAND] & 0x0F == CMD_TRANSCEIVE:
                self._transmit()
        elif reg == TX_CONTROL:
            was_on = self.antenna_on
            self.regs[reg] = value
            if was_on != self.antenna_on:
                self._field(self.antenna_on)
        elif reg == COLL:
            self.regs[reg] = (self.regs[reg] & 0x7F) | (value & 0x80)
        elif reg in (ERROR, STATUS1, VERSION):
            pass  # read-only
        else:
            self.regs[reg] = value

    # -- commands -------------------------------------------------------------

    def _command(self, value: int) -> None:
        command = value & 0x0F
        self.regs[COMMAND] = value & 0x30 | command
        self._exchange = None
        if command == CMD_IDLE:
            return
        if command == CMD_SOFT_RESET:
            self._power_on_reset()
            return
        if command == CMD_CALC_CRC:
            preset = CRC_PRESETS[self.regs[MODE] & 0x03]
            crc = crc_with_preset(bytes(self.fifo), preset)
            self.fifo.clear()
            self.regs[CRC_RESULT_H], self.regs[CRC_RESULT_L] = crc >> 8, crc & 0xFF
            self.regs[DIV_IRQ] |= 0x04
            self.regs[STATUS1] |= 0x20  # CRCReady
            return
        if command == CMD_TRANSCEIVE:
            if self.regs[BIT_FRAMING] & 0x80:
                self._transmit()
            return
        raise NotImplementedError(f"emulated MFRC522: command 0x{command:X} is not emulated")

    def _transmit(self) -> None:
        framing = self.regs[BIT_FRAMING]
        last_bits, rx_align = framing & 0x07, (framing >> 4) & 0x07
        data = bytes(self.fifo)
        self.fifo.clear()
        count = len(data) * 8 if last_bits == 0 else (len(data) - 1) * 8 + last_bits
        bits = to_bits(data, max(count, 0))
        now = self.time()
        tx_end = now + (len(bits) + len(bits) // 8 + 2) * BIT_S  # + parity, SOF, EOF
        self.regs[ERROR] &= ERR_BUFFER_OVFL
        if (self.regs[TX_MODE] | self.regs[RX_MODE]) & 0x80:
            # TxCRCEn/RxCRCEn: the driver appends and checks CRC_A itself
            # (decision 0901); an emulator guessing at the chip's CRC handling
            # could hide a driver that relies on it.
            raise NotImplementedError("emulated MFRC522: TxCRCEn/RxCRCEn are not emulated")
        answers: list[list[int]] = []
        delay = 0.0
        if self.antenna_on:
            for card in self.cards:
                answer = card.receive(bits)
                if answer:
                    answers.append(answer)
                    delay = max(delay, card.answer_delay_s)
        answer_at = None
        if answers:
            longest = max(len(a) for a in answers)
            answer_at = tx_end + FDT_S + delay + (longest + longest // 8 + 2) * BIT_S
        self._exchange = _Exchange(
            tx_end, answers, rx_align, answer_at, self._timer_at(tx_end), delay=delay
        )

    def _timer_at(self, start: float) -> float | None:
        mode = self.regs[T_MODE]
        if not mode & 0x80:  # TAuto off: nothing starts the timer
            return None
        prescaler = ((mode & 0x0F) << 8) | self.regs[T_PRESCALER]
        reload = (self.regs[T_RELOAD_H] << 8) | self.regs[T_RELOAD_L]
        return start + (2 * prescaler + 1) * (reload + 1) / FC

    def _advance(self) -> None:
        exchange = self._exchange
        if exchange is None:
            return
        now = self.time()
        if not exchange.tx_done and now >= exchange.tx_end:
            exchange.tx_done = True
            self.regs[COM_IRQ] |= IRQ_TX
        first_bit = exchange.tx_end + FDT_S + exchange.delay
        timer = exchange.timer_at
        # the timer stops on the first received bit: it fires only before that
        if (
            timer is not None
            and not exchange.timer_fired
            and now >= timer
            and (exchange.answer_at is None or timer < first_bit)
        ):
            exchange.timer_fired = True
            self.regs[COM_IRQ] |= IRQ_TIMER
        if exchange.answer_at is not None and now >= exchange.answer_at:
            self._receive(exchange)
            self._exchange = None
        elif exchange.answer_at is None and exchange.timer_fired:
            self._exchange = None

    def _receive(self, exchange: _Exchange) -> None:
        answers, rx_align = exchange.answers, exchange.rx_align
        length = max(len(a) for a in answers)
        bits: list[int] = []
        collision: int | None = None
        for i in range(length):
            values = {a[i] for a in answers if len(a) > i}
            if len(values) > 1:
                collision = i if collision is None else collision
                bits.append(1)
            else:
                bits.append(values.pop())
        if collision is not None and not self.regs[COLL] & 0x80:
            bits[collision:] = [0] * (length - collision)
        packed = from_bits([0] * rx_align + bits)
        for byte in packed:
            if len(self.fifo) < FIFO_SIZE:
                self.fifo.append(byte)
            else:
                self.regs[ERROR] |= ERR_BUFFER_OVFL
        self.regs[CONTROL] = (self.regs[CONTROL] & ~0x07) | ((rx_align + length) % 8)
        self.regs[ERROR] |= self.radio_errors
        coll = self.regs[COLL] & 0x80
        if collision is None:
            coll |= 0x20  # CollPosNotValid: no collision
        else:
            self.regs[ERROR] |= ERR_COLL
            position = rx_align + collision + 1
            coll |= 0x20 if position > 32 else position & 0x1F
        self.regs[COLL] = coll
        self.regs[COM_IRQ] |= IRQ_RX | (IRQ_ERR if self.regs[ERROR] else 0)

    def _field(self, on: bool) -> None:
        for card in self.cards:
            card.power_cycle()  # losing the field resets every card

    def _power_on_reset(self) -> None:
        was_on = self.antenna_on
        self.regs = [RESET_VALUES.get(i, 0) for i in range(64)]
        self.fifo.clear()
        self._exchange = None
        if was_on:
            self._field(False)


SPI_SPEED_HZ = 1_000_000  # what the driver's real bus (and the mfrc522 package) set


class EmulatedBus:
    """The driver's register bus on an emulated board, transfer for transfer the package's.

    A register read is one ``[addr<<1 | 0x80, 0]`` transfer and a write one
    ``[addr<<1, value]`` transfer at 1 MHz, as ``Read_MFRC522``/``Write_MFRC522``
    do over spidev, and the FIFO's bulk reads and writes are one transfer as the
    real bus's ``xfer2``, so chip time and transfer counts are the same either way.
    """

    def __init__(self, board: EmulatedBoard, reset_pin: int | None) -> None:
        self.board = board
        self.reset_pin = reset_pin
        self.closed = False

    def read(self, register: int) -> int:
        return self._transfer([((register << 1) & 0x7E) | 0x80, 0])[1]

    def write(self, register: int, value: int) -> None:
        self._transfer([(register << 1) & 0x7E, value])

    def read_many(self, register: int, count: int) -> bytes:
        address = ((register << 1) & 0x7E) | 0x80
        return bytes(self._transfer([address] * count + [0])[1:])

    def write_many(self, register: int, values: bytes) -> None:
        if values:
            self._transfer([(register << 1) & 0x7E, *values])

    def set_reset(self, level: int) -> None:
        if self.reset_pin is not None and self.reset_pin == self.board.reset_pin:
            self.board.reset_levels.append(level)
            self.board.chip.set_reset_line(level)

    def close(self) -> None:
        self.closed = True

    def _transfer(self, data: list[int]) -> list[int]:
        if self.closed:
            raise OSError(9, "Bad file descriptor")
        if any(not 0 <= v <= 0xFF for v in data):
            raise OverflowError("Byte value out of range")
        return self.board.chip.transfer(data, SPI_SPEED_HZ)


class EmulatedBoard:
    """An RC522 module on ``/dev/spidev{bus}.{device}`` with its reset line on a GPIO.

    The driver reaches it through :meth:`open_bus`, its ``open_bus`` argument;
    :meth:`plug_into_fakes` wires it to the fake spidev and RPi.GPIO modules
    instead, for the tests of the real ``mfrc522`` package
    (tests/readers/test_mfrc522_package.py). ``reset_levels`` lists the levels
    the driver put on the reset line through the bus.
    """

    def __init__(
        self,
        *,
        now: Callable[[], float] = time.monotonic,
        bus: int = 0,
        device: int = 0,
        reset_pin: int | None = 25,
        version: int = 0x92,
    ) -> None:
        self.chip = Mfrc522Chip(version=version, now=now)
        self.bus, self.device, self.reset_pin = bus, device, reset_pin
        self.reset_levels: list[int] = []
        self.opened: list[EmulatedBus] = []
        self.present = True  # False: /dev/spidevB.D is not there (SPI off, board unplugged)
        self._plugged = False

    def open_bus(self, spi_bus: int, spi_device: int, reset_pin: int | None) -> EmulatedBus:
        """What the driver's ``open_bus`` does; fails like a missing ``/dev/spidevB.D``."""
        if not self.present or (spi_bus, spi_device) != (self.bus, self.device):
            raise FileNotFoundError(
                2, f"No such file or directory: '/dev/spidev{spi_bus}.{spi_device}'"
            )
        bus = EmulatedBus(self, reset_pin)
        self.opened.append(bus)
        return bus

    def plug_into_fakes(self) -> EmulatedBoard:
        """Attach the chip to the fake spidev and its reset line to the fake RPi.GPIO."""
        from tests.hardware.fakes import spidev
        from tests.hardware.fakes.RPi import GPIO

        spidev.attach(self.bus, self.device, self.chip)
        if self.reset_pin is not None:
            GPIO.attach(self.reset_pin, self.chip.set_reset_line)
        self._plugged = True
        return self

    def close(self) -> None:
        if not self._plugged:
            return
        from tests.hardware.fakes import spidev
        from tests.hardware.fakes.RPi import GPIO

        spidev.detach(self.bus, self.device)
        if self.reset_pin is not None:
            GPIO.detach(self.reset_pin)
        self._plugged = False


__all__ = ["CASCADE_TAG", "EmulatedBoard", "EmulatedBus", "EmulatedCard", "Mfrc522Chip"]
