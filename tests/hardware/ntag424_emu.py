"""An NTAG 424 DNA's application layer, for tests: APDUs in, response data + SW out.

Hosted by the ISO 14443-4 card emulator (tests/hardware/isodep_emu.py) through
``apdu``, or driven directly by tests through :class:`EmulatedChannel`. The crypto
here is written again from the datasheet's description (plain ``cryptography``
calls, ``zlib`` for the CRC), not imported from agent.protocol, so that a bug shared
by the station and the card cannot hide; both are anchored on AN12196's examples
(tests/protocol/test_ntag424_ev2.py, tests/protocol/test_ntag424_emu.py).

What it models, as read from the NT4H2421Gx datasheet:
- the NDEF application (DF name D2760000850101) with the capability container
  (file 1, E103), the NDEF file (file 2, E104, 256 bytes) and the proprietary file
  (file 3, E105, 128 bytes, CommMode.Full), factory settings and keys (all zero,
  version 0);
- ISOSelectFile by DF name and by file id, ISOReadBinary, ISOUpdateBinary (free
  access only), ReadData, WriteData, GetFileSettings, GetKeyVersion,
  AuthenticateEV2First, ChangeKey, ChangeFileSettings, with EV2 secure messaging:
  CommMode.MAC/Full per command or file, command counter, TI;
- SDM on the NDEF file: the read counter is reset to 0 when SDM is enabled and
  incremented by the first ReadData/ISOReadBinary of the file after each
  activation or selection, and every read then mirrors the encrypted PICCData and
  the SDMMAC as uppercase ASCII hex at the configured offsets.
- Status words: 91AE when the key a command needs is not the authenticated one,
  919D when the access right is "never", 917E for a wrong length, 911E for a MAC,
  padding or CRC that does not check, 911C for an unknown command, 9140 for a key
  number that does not exist, 91BE for reads or writes outside the file. As on the
  card, an error status ends an authenticated session.

Not modelled: AuthenticateEV2NonFirst, LRP, GetVersion, originality signature,
failed-authentication delays, CommMode.MAC file data, the read counter limit,
encrypted file data mirroring.
"""

from __future__ import annotations

import hmac
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

from agent.exceptions import ReaderError

__all__ = ["DEFAULT_UID", "EmulatedChannel", "Ntag424App", "PowerCut"]

DEFAULT_UID = bytes.fromhex("04A1B2C3D4E580")
NDEF_AID = bytes.fromhex("D2760000850101")
FREE, NEVER = 0xE, 0xF

# ISO 7816-4 and native status words
SW_OK = b"\x90\x00"
SW_FILE_NOT_FOUND = b"\x6a\x82"
SW_SECURITY = b"\x69\x82"
SW_WRONG_LENGTH = b"\x67\x00"
SW_WRONG_P1P2 = b"\x6b\x00"
SW_INS = b"\x6d\x00"
SW_CLA = b"\x6e\x00"
OK = b"\x91\x00"
MORE = b"\x91\xaf"
ILLEGAL = b"\x91\x1c"
INTEGRITY = b"\x91\x1e"
NO_SUCH_KEY = b"\x91\x40"
LENGTH = b"\x91\x7e"
DENIED = b"\x91\x9d"
PARAMETER = b"\x91\x9e"
AUTH = b"\x91\xae"
BOUNDARY = b"\x91\xbe"
NOT_FOUND = b"\x91\xf0"

# The capability container the datasheet gives as delivered: NDEF file E104 of 256
# bytes, read and write free; proprietary file E105 of 128 bytes, restricted.
FACTORY_CC = bytes.fromhex("001720010000FF0406E104010000000506E10500808283") + bytes(9)


def _cbc(key: bytes, iv: bytes, data: bytes, encrypt: bool) -> bytes:
    c = Cipher(algorithms.AES(key), modes.CBC(iv))
    op = c.encryptor() if encrypt else c.decryptor()
    return op.update(data) + op.finalize()


def _cmac(key: bytes, data: bytes) -> bytes:
    m = CMAC(algorithms.AES(key))
    m.update(data)
    return m.finalize()


def _mact(key: bytes, data: bytes) -> bytes:
    return _cmac(key, data)[1::2]


class _Error(Exception):
    def __init__(self, sw: bytes) -> None:
        self.sw = sw


class PowerCut(ReaderError):
    """The card left the field (or lost power) during a command."""


@dataclass
class _File:
    number: int
    iso_id: bytes
    data: bytearray
    comm: int  # 0 plain, 1 MAC, 3 full
    read: int
    write: int
    read_write: int
    change: int
    sdm_options: int = 0
    sdm_ctr_ret: int = NEVER
    sdm_meta_read: int = NEVER
    sdm_file_read: int = NEVER
    picc_offset: int = 0
    mac_input_offset: int = 0
    mac_offset: int = 0

    @property
    def sdm(self) -> bool:
        return bool(self.sdm_options)

    def settings(self) -> bytes:
        option = self.comm | (0x40 if self.sdm else 0)
        out = bytes(
            [0x00, option, (self.read_write << 4) | self.change, (self.read << 4) | self.write]
        )
        out += len(self.data).to_bytes(3, "little")
        if self.sdm:
            out += bytes(
                [
                    self.sdm_options,
                    0xF0 | self.sdm_ctr_ret,
                    (self.sdm_meta_read << 4) | self.sdm_file_read,
                ]
            )
            if self.sdm_meta_read <= 4:
                out += self.picc_offset.to_bytes(3, "little")
            if self.sdm_file_read <= 4:
                out += self.mac_input_offset.to_bytes(3, "little")
                out += self.mac_offset.to_bytes(3, "little")
        return out


@dataclass
class _Session:
    key_no: int
    enc: bytes
    mac: bytes
    ti: bytes
    counter: int = 0

    def iv(self, label: bytes, counter: int) -> bytes:
        block = label + self.ti + counter.to_bytes(2, "little") + bytes(8)
        return _cbc(self.enc, bytes(16), block, True)


@dataclass
class Ntag424App:
    """A factory-blank NTAG 424 DNA unless told otherwise; state survives ``activate``."""

    uid: bytes = DEFAULT_UID
    random: Callable[[int], bytes] = os.urandom
    keys: list[bytes] = field(default_factory=lambda: [bytes(16)] * 5)
    key_versions: list[int] = field(default_factory=lambda: [0] * 5)
    read_counter: int = 0
    commands: list[bytes] = field(default_factory=list)  # every APDU received, for tests
    cut_at: int | None = None  # the number of the APDU at which the power is cut ...
    cut_after_execution: bool = False  # ... before it takes effect, or after

    def __post_init__(self) -> None:
        if len(self.uid) != 7:
            raise ValueError("an NTAG 424 DNA has a 7-byte UID")
        ndef = bytearray(256)  # NLEN 0: no NDEF message
        self.files = {
            1: _File(1, b"\xe1\x03", bytearray(FACTORY_CC), 0, FREE, 0, 0, 0),
            2: _File(2, b"\xe1\x04", ndef, 0, FREE, FREE, FREE, 0),
            3: _File(3, b"\xe1\x05", bytearray(128), 3, 2, 3, 3, 0),
        }
        self.activate()

    # --- field -------------------------------------------------------------------

    def activate(self) -> None:
        """The card (re-)enters the field: PICC level, nothing selected, no session."""
        self.app_selected = False
        self.file: _File | None = None
        self.session: _Session | None = None
        self.pending: tuple[int, bytes] | None = None  # key number, RndB
        self.counted = False

    def reset(self) -> None:
        """What an ISO-DEP card (tests/hardware/isodep_emu.py) calls when its session ends."""
        self.activate()

    def apdu(self, command: bytes) -> bytes:
        self.commands.append(bytes(command))
        cut = self.cut_at is not None and len(self.commands) >= self.cut_at
        if cut and not self.cut_after_execution:
            self.cut_at = None
            self.activate()
            raise PowerCut("the card lost power before the command")
        try:
            answer = self._dispatch(bytes(command))
        except _Error as exc:
            self.session = None
            self.pending = None
            answer = exc.sw
        if cut:
            self.cut_at = None
            self.activate()
            raise PowerCut("the card lost power before answering")
        return answer

    def _dispatch(self, c: bytes) -> bytes:
        if len(c) < 4:
            return SW_WRONG_LENGTH
        cla, ins = c[0], c[1]
        if cla == 0x00:
            return self._iso(c)
        if cla != 0x90:
            return SW_CLA
        # Native commands wrapped in ISO 7816-4: 90 INS 00 00 [Lc data] 00.
        if len(c) < 5 or c[2:4] != b"\x00\x00":
            raise _Error(LENGTH)
        if len(c) == 5:
            data = b""
        elif len(c) != 6 + c[4] or c[-1] != 0:
            raise _Error(LENGTH)
        else:
            data = c[5:-1]
        if ins == 0xAF and self.pending is not None:
            return self._auth_part2(data)
        self.pending = None
        if not self.app_selected:
            raise _Error(DENIED)
        handler = {
            0x71: self._auth_first,
            0xF5: self._get_file_settings,
            0x64: self._get_key_version,
            0x5F: self._change_file_settings,
            0xC4: self._change_key,
            0xAD: self._read_data,
            0x8D: self._write_data,
        }.get(ins)
        if handler is None:
            raise _Error(ILLEGAL)
        return handler(ins, data)

    # --- ISO 7816-4 --------------------------------------------------------------

    def _iso(self, c: bytes) -> bytes:
        ins, p1, p2 = c[1], c[2], c[3]
        if ins == 0xA4:
            return self._select(p1, c[5 : 5 + c[4]] if len(c) > 4 else b"")
        if ins == 0xB0:
            if self.file is None:
                return SW_FILE_NOT_FOUND
            offset = ((p1 & 0x7F) << 8) | p2
            le = c[4] if len(c) > 4 else 0
            length = le or 256
            f = self.file
            if p1 & 0x80 or offset > len(f.data):
                return SW_WRONG_P1P2
            if FREE not in (f.read, f.read_write):
                return SW_SECURITY
            view = self._mirrored(f)
            return bytes(view[offset : offset + length]) + SW_OK
        if ins == 0xD6:
            if self.file is None:
                return SW_FILE_NOT_FOUND
            offset = ((p1 & 0x7F) << 8) | p2
            if len(c) < 5 or len(c) != 5 + c[4]:
                return SW_WRONG_LENGTH
            data, f = c[5:], self.file
            if FREE not in (f.write, f.read_write):
                return SW_SECURITY
            if offset + len(data) > len(f.data):
                return SW_WRONG_P1P2
            f.data[offset : offset + len(data)] = data
            return SW_OK
        return SW_INS

    def _select(self, p1: int, name: bytes) -> bytes:
        # Selecting anything ends an authenticated session and restarts SDM counting.
        self.session, self.pending, self.counted = None, None, False
        if p1 == 0x04:
            if name != NDEF_AID:
                return SW_FILE_NOT_FOUND
            self.app_selected, self.file = True, None
            return SW_OK
        if p1 == 0x00 and self.app_selected:
            for f in self.files.values():
                if f.iso_id == name:
                    self.file = f
                    return SW_OK
        return SW_FILE_NOT_FOUND

    # --- authentication ----------------------------------------------------------

    def _auth_first(self, ins: int, data: bytes) -> bytes:
        self.session = None
        if len(data) < 2:
            raise _Error(LENGTH)
        key_no = data[0]
        if key_no > 4:
            raise _Error(NO_SUCH_KEY)
        rnd_b = self.random(16)
        self.pending = (key_no, rnd_b)
        return _cbc(self.keys[key_no], bytes(16), rnd_b, True) + MORE

    def _auth_part2(self, data: bytes) -> bytes:
        assert self.pending is not None
        key_no, rnd_b = self.pending
        self.pending = None
        if len(data) != 32:
            raise _Error(LENGTH)
        key = self.keys[key_no]
        plain = _cbc(key, bytes(16), data, False)
        rnd_a, rnd_b_rot = plain[:16], plain[16:]
        if not hmac.compare_digest(rnd_b_rot, rnd_b[1:] + rnd_b[:1]):
            raise _Error(AUTH)
        ti = self.random(4)
        xor = bytes(a ^ b for a, b in zip(rnd_a[2:8], rnd_b[:6], strict=True))
        tail = b"\x00\x01\x00\x80" + rnd_a[:2] + xor + rnd_b[6:] + rnd_a[8:]
        enc, mac = _cmac(key, b"\xa5\x5a" + tail), _cmac(key, b"\x5a\xa5" + tail)
        self.session = _Session(key_no, enc, mac, ti)
        answer = ti + rnd_a[1:] + rnd_a[:1] + bytes(12)
        return _cbc(key, bytes(16), answer, True) + OK

    # --- secure messaging ----------------------------------------------------------

    def _unwrap(self, ins: int, header_len: int, data: bytes, mode: int) -> tuple[bytes, bytes]:
        """The header and plain data of a command in ``mode``; checks and counts nothing yet."""
        s = self.session
        if s is None or mode == 0:
            if len(data) < header_len:
                raise _Error(LENGTH)
            return data[:header_len], data[header_len:]
        if len(data) < header_len + 8:
            raise _Error(LENGTH)
        body, mac = data[:-8], data[-8:]
        expected = _mact(s.mac, bytes([ins]) + s.counter.to_bytes(2, "little") + s.ti + body)
        if not hmac.compare_digest(mac, expected):
            raise _Error(INTEGRITY)
        header, payload = body[:header_len], body[header_len:]
        if mode == 3 and payload:
            if len(payload) % 16:
                raise _Error(LENGTH)
            plain = _cbc(s.enc, s.iv(b"\xa5\x5a", s.counter), payload, False)
            stripped = plain.rstrip(b"\x00")
            if not stripped or stripped[-1] != 0x80 or len(plain) - len(stripped) > 15:
                raise _Error(INTEGRITY)
            payload = stripped[:-1]
        return header, payload

    def _wrap(self, data: bytes, mode: int) -> bytes:
        """Count the command and answer ``data`` in ``mode``."""
        s = self.session
        if s is None:
            return data + OK
        s.counter += 1
        if mode == 0:
            return data + OK
        if mode == 3 and data:
            padded = data + b"\x80" + bytes(-(len(data) + 1) % 16)
            data = _cbc(s.enc, s.iv(b"\x5a\xa5", s.counter), padded, True)
        mac = _mact(s.mac, b"\x00" + s.counter.to_bytes(2, "little") + s.ti + data)
        return data + mac + OK

    def _mode_when_authenticated(self) -> int:
        return 1 if self.session is not None else 0

    def _need_key(self, condition: int) -> None:
        """Refuse unless ``condition`` (a key number, FREE or NEVER) is met."""
        if condition == FREE:
            return
        if condition == NEVER:
            raise _Error(DENIED)
        if self.session is None or self.session.key_no != condition:
            raise _Error(AUTH)

    def _file(self, number: int) -> _File:
        f = self.files.get(number)
        if f is None:
            raise _Error(NOT_FOUND)
        return f

    # --- commands ----------------------------------------------------------------

    def _get_file_settings(self, ins: int, data: bytes) -> bytes:
        mode = self._mode_when_authenticated()
        header, rest = self._unwrap(ins, 1, data, mode)
        if rest:
            raise _Error(LENGTH)
        return self._wrap(self._file(header[0]).settings(), mode)

    def _get_key_version(self, ins: int, data: bytes) -> bytes:
        mode = self._mode_when_authenticated()
        header, rest = self._unwrap(ins, 1, data, mode)
        if rest:
            raise _Error(LENGTH)
        if header[0] > 4:
            raise _Error(NO_SUCH_KEY)
        return self._wrap(bytes([self.key_versions[header[0]]]), mode)

    def _change_file_settings(self, ins: int, data: bytes) -> bytes:
        mode = 3 if self.session is not None else 0
        if not data:
            raise _Error(LENGTH)
        f = self._file(data[0])
        self._need_key(f.change)
        _, plain = self._unwrap(ins, 1, data, mode)
        if len(plain) < 3:
            raise _Error(LENGTH)
        option = plain[0]
        comm = option & 0x03
        if comm == 2 or option & 0xBC:
            raise _Error(PARAMETER)
        values = {
            "comm": comm,
            "read_write": plain[1] >> 4,
            "change": plain[1] & 0xF,
            "read": plain[2] >> 4,
            "write": plain[2] & 0xF,
        }
        pos = 3
        sdm: dict[str, int] = {"sdm_options": 0}
        if option & 0x40:
            if len(plain) < 6:
                raise _Error(LENGTH)
            options, ctr, rights = plain[3], plain[4], plain[5]
            meta, file_read = rights >> 4, rights & 0xF
            if not options or options & 0x3E or meta == FREE or ctr >> 4 != 0xF:
                raise _Error(PARAMETER)  # only the layouts modelled here
            sdm = {
                "sdm_options": options,
                "sdm_ctr_ret": ctr & 0xF,
                "sdm_meta_read": meta,
                "sdm_file_read": file_read,
            }
            pos = 6
            fields = (["picc_offset"] if meta <= 4 else []) + (
                ["mac_input_offset", "mac_offset"] if file_read <= 4 else []
            )
            for name in fields:
                if len(plain) < pos + 3:
                    raise _Error(LENGTH)
                sdm[name] = int.from_bytes(plain[pos : pos + 3], "little")
                pos += 3
            size = len(f.data)
            if meta <= 4 and sdm["picc_offset"] + 32 > size:
                raise _Error(BOUNDARY)
            if file_read <= 4 and not (sdm["mac_input_offset"] <= sdm["mac_offset"] <= size - 16):
                raise _Error(BOUNDARY)
        if pos != len(plain):
            raise _Error(LENGTH)
        for name, value in {**values, **sdm}.items():
            setattr(f, name, value)
        if f.sdm:
            self.read_counter = 0
        return self._wrap(b"", 1)

    def _change_key(self, ins: int, data: bytes) -> bytes:
        s = self.session
        if s is None or s.key_no != 0:
            raise _Error(AUTH)
        header, plain = self._unwrap(ins, 1, data, 3)
        key_no = header[0]
        if key_no > 4:
            raise _Error(NO_SUCH_KEY)
        if key_no == s.key_no:
            if len(plain) != 17:
                raise _Error(LENGTH)
            self.keys[key_no], self.key_versions[key_no] = plain[:16], plain[16]
            # The session's key is gone: so is the session, and no MAC can be made.
            self.session = None
            return OK
        if len(plain) != 21:
            raise _Error(LENGTH)
        new = bytes(a ^ b for a, b in zip(plain[:16], self.keys[key_no], strict=True))
        crc = ((~zlib.crc32(new)) & 0xFFFFFFFF).to_bytes(4, "little")
        if not hmac.compare_digest(crc, plain[17:21]):
            raise _Error(INTEGRITY)
        self.keys[key_no], self.key_versions[key_no] = new, plain[16]
        return self._wrap(b"", 1)

    def _access(self, f: _File, rights: tuple[int, int]) -> int:
        if FREE in rights:
            return 0
        keys = [r for r in rights if r <= 4]
        if not keys:
            raise _Error(DENIED)
        if self.session is None or self.session.key_no not in keys:
            raise _Error(AUTH)
        return f.comm

    def _read_data(self, ins: int, data: bytes) -> bytes:
        if len(data) < 7:
            raise _Error(LENGTH)
        f = self._file(data[0])
        mode = self._access(f, (f.read, f.read_write))
        header, rest = self._unwrap(ins, 7, data, 1 if mode else 0)
        if rest:
            raise _Error(LENGTH)
        offset = int.from_bytes(header[1:4], "little")
        length = int.from_bytes(header[4:7], "little") or len(f.data) - offset
        if offset + length > len(f.data):
            raise _Error(BOUNDARY)
        view = self._mirrored(f)
        return self._wrap(bytes(view[offset : offset + length]), mode)

    def _write_data(self, ins: int, data: bytes) -> bytes:
        if len(data) < 7:
            raise _Error(LENGTH)
        f = self._file(data[0])
        mode = self._access(f, (f.write, f.read_write))
        header, payload = self._unwrap(ins, 7, data, mode)
        offset = int.from_bytes(header[1:4], "little")
        length = int.from_bytes(header[4:7], "little")
        if length != len(payload):
            raise _Error(LENGTH)
        if offset + length > len(f.data):
            raise _Error(BOUNDARY)
        f.data[offset : offset + length] = payload
        return self._wrap(b"", 1 if mode else 0)

    # --- SDM ---------------------------------------------------------------------

    def _mirrored(self, f: _File) -> bytearray:
        """The file as a read returns it: SDM mirrors filled in, counter counted once."""
        view = bytearray(f.data)
        if not f.sdm:
            return view
        if not self.counted:
            self.read_counter = min(self.read_counter + 1, 0xFFFFFF)
            self.counted = True
        ctr = self.read_counter.to_bytes(3, "little")
        if f.sdm_meta_read <= 4:
            plain = b"\xc7" + self.uid + ctr + self.random(5)
            picc = _cbc(self.keys[f.sdm_meta_read], bytes(16), plain, True)
            view[f.picc_offset : f.picc_offset + 32] = picc.hex().upper().encode("ascii")
        if f.sdm_file_read <= 4:
            sv2 = bytes.fromhex("3CC300010080") + self.uid + ctr
            session = _cmac(self.keys[f.sdm_file_read], sv2)
            mac = _mact(session, bytes(view[f.mac_input_offset : f.mac_offset]))
            view[f.mac_offset : f.mac_offset + 16] = mac.hex().upper().encode("ascii")
        return view


class EmulatedChannel:
    """The station's view of a card in the field (``uid``, ``transceive_apdu``),
    wired straight to an application object: the ISO 14443-4 layer left out."""

    def __init__(self, app: Ntag424App) -> None:
        self.app = app
        self.uid = app.uid
        app.activate()

    def transceive_apdu(self, command: bytes) -> bytes:
        return self.app.apdu(command)
