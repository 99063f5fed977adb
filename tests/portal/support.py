"""Helpers for portal tests: a simulated device that signs records like the agent."""

from __future__ import annotations

import itertools
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.protocol import ZERO_HASH, build_record, public_key_b64

_counter = itertools.count()


@dataclass
class SimDevice:
    """Builds a valid chain for ``device_id`` with its own key."""

    device_id: str = ""
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    seq: int = 0
    prev: str = ZERO_HASH
    boot: str = field(default_factory=lambda: str(uuid.uuid4()))
    wall_ms: int = 1_764_000_000_000

    @property
    def public_key(self) -> str:
        return public_key_b64(self.key)

    def record(
        self, type: str = "badge", data: dict[str, Any] | None = None, **over: Any
    ) -> dict[str, Any]:
        """The next record of the chain (advances the head)."""
        self.seq += 1
        self.wall_ms += 1000
        fields: dict[str, Any] = {
            "device": self.device_id,
            "seq": self.seq,
            "prev": self.prev,
            "type": type,
            "wall_ms": self.wall_ms,
            "synced": True,
            "boot": self.boot,
            "mono_ns": self.seq * 1_000_000_000,
            "anchor": "",
            "data": data
            if data is not None
            else {
                "reader": "door1",
                "driver": "simulated",
                "uid": f"{next(_counter):08X}",
                "uid_len": 4,
            },
        }
        fields.update(over)
        record = build_record(self.key, **fields)
        self.prev = record["hash"]
        return record

    def batch(self, n: int) -> list[dict[str, Any]]:
        return [self.record() for _ in range(n)]

    def skip(self, n: int) -> str:
        """Lose the next ``n`` seqs (as a crash would); returns the hash of the last one."""
        lost = [self.record() for _ in range(n)]
        return lost[-1]["hash"]

    def gap(
        self, first: int, last: int, last_hash: str, reason: str = "quarantined"
    ) -> dict[str, Any]:
        return self.record(
            "gap", {"first_seq": first, "last_seq": last, "last_hash": last_hash, "reason": reason}
        )


class LiveServer:
    """The real app under uvicorn on 127.0.0.1, in a thread."""

    def __init__(self, app: Any) -> None:
        import socket

        self.sock = socket.socket()
        # Accepted connections inherit this. Without it every answer waits about
        # 40 ms: uvicorn writes head and body apart, Nagle holds the body back,
        # and the client delays its ACK.
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def start(self, timeout: float = 20.0) -> None:
        self.thread.start()
        done = threading.Event()
        for _ in range(int(timeout * 100)):
            if self.server.started:
                return
            done.wait(0.01)
        raise TimeoutError("uvicorn did not start")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()
