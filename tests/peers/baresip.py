"""A baresip softphone driven over ctrl_tcp: a real SIP UA with real RTP for tests.

Each phone gets its own config directory, ports and tone. It sends its tone as
microphone audio (aufile) and records what it receives (sndfile), so a test can tell
by content whose audio reached whom. See /work/shared/notes/real-peers.md for the traps
this module works around.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import shutil
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from . import audio
from .ports import free_port, free_ports
from .process import spawn, tail, wait_or_kill

BARESIP = shutil.which("baresip") or "/usr/bin/baresip"
MODULE_PATH = Path("/usr/lib/baresip/modules")
# Two RTP+RTCP pairs per call (rtcp_mux off), call_max_calls calls.
_RTP_PORTS = 8
_MAX_CALLS = 4
_START_TIMEOUT = 10.0
# The call status line baresip rewrites several times a second would bury the log tail.
_STATUS_LINE = re.compile(r"^\[\d+:\d\d:\d\d\] +audio=")


class BaresipError(AssertionError):
    """A phone did not do what the test expected; the message carries its log."""


@dataclass(frozen=True)
class Event:
    """One ctrl_tcp event, e.g. type CALL_ESTABLISHED with peeruri, id, direction."""

    type: str
    data: Mapping[str, Any] = field(repr=False)

    @property
    def param(self) -> str:
        """The event's free-text parameter (the status line for REGISTER_FAIL...)."""
        return str(self.data.get("param", ""))


@dataclass
class _Pending:
    future: asyncio.Future[dict[str, Any]]
    command: str


class BaresipPhone:
    """One baresip process with one account.

    Direct use (no registrar): `BaresipPhone(tmp, "alice", tone_wav=wav)` and dial
    `phone_b.uri`. Registered use: pass `domain`, `password` and `proxy`
    ("sip:127.0.0.1:5060"); the account then registers with `regint` and a test waits
    for REGISTER_OK.
    """

    def __init__(
        self,
        workdir: Path,
        user: str,
        *,
        tone_wav: Path,
        domain: str | None = None,
        password: str | None = None,
        proxy: str | None = None,
        transport: str = "udp",
        regint: int = 600,
        answermode: str = "auto",
        codecs: str = "pcmu",
        extra_config: Mapping[str, str] | None = None,
        extra_account: str = "",
    ) -> None:
        self.user = user
        self.dir = workdir / f"baresip-{user}"
        self.dir.mkdir(parents=True, exist_ok=False)
        self.log = self.dir / "baresip.log"
        self.tone_wav = tone_wav
        # baresip binds TLS on SIP port + 1.
        self.sip_port = free_ports(2)
        self.ctrl_port = free_port()
        rtp_base = free_ports(_RTP_PORTS)
        self.rtp_ports = range(rtp_base, rtp_base + _RTP_PORTS)
        self.domain = domain
        params = [f"audio_codecs={codecs}", f"answermode={answermode}"]
        if domain is None:
            # No registrar: the AOR is the phone's own address, and dialling it reaches it.
            aor = f"<sip:{user}@127.0.0.1:{self.sip_port};transport={transport}>"
            params.append("regint=0")
        else:
            aor = f"<sip:{user}@{domain};transport={transport}>"
            params.append(f"regint={regint}")
        if password is not None:
            params.append(f"auth_pass={password}")
        if proxy is not None:
            params.append(f'outbound="{proxy};transport={transport}"')
        self.account = ";".join([aor, *params]) + extra_account
        self._write_config(extra_config or {})

        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._read_task: asyncio.Task[None] | None = None
        self._pending: dict[str, _Pending] = {}
        self._tokens = itertools.count(1)
        self._events: list[Event] = []
        self._consumed: set[int] = set()
        self._changed = asyncio.Condition()

    @property
    def uri(self) -> str:
        """Where to dial this phone directly, bypassing any registrar."""
        return f"sip:{self.user}@127.0.0.1:{self.sip_port}"

    @property
    def events(self) -> list[Event]:
        """Every event received so far, oldest first (consumed or not)."""
        return list(self._events)

    def _write_config(self, extra: Mapping[str, str]) -> None:
        settings: dict[str, str] = {
            "poll_method": "epoll",
            "sip_listen": f"127.0.0.1:{self.sip_port}",
            # The interface name `lo` fails ("could not get network address").
            "net_interface": "127.0.0.1",
            "rtp_ports": f"{self.rtp_ports.start}-{self.rtp_ports.stop - 1}",
            "call_max_calls": str(_MAX_CALLS),
            "audio_source": f"aufile,{self.tone_wav}",
            # alsa,null spins at ~90 % CPU; aubridge,nil plays into nothing for free.
            "audio_player": "aubridge,nil",
            "audio_alert": "aubridge,nil",
            "module_path": str(MODULE_PATH),
            "snd_path": str(self.dir),
            "ctrl_tcp_listen": f"127.0.0.1:{self.ctrl_port}",
        }
        settings.update(extra)
        lines = [f"{key}\t{value}" for key, value in settings.items()]
        lines += [
            f"module\t{m}" for m in ("g711.so", "g722.so", "aufile.so", "aubridge.so", "sndfile.so")
        ]
        # menu provides dial/hangup/accept/uanew; ctrl_tcp only forwards commands to it.
        lines += ["module_tmp\taccount.so", "module_app\tmenu.so", "module_app\tctrl_tcp.so"]
        (self.dir / "config").write_text("\n".join(lines) + "\n")
        # The account is created with `uanew` once our ctrl_tcp connection is up, so that
        # its REGISTER_OK/FAIL events are not sent before anyone listens.
        (self.dir / "accounts").write_text("")
        (self.dir / "contacts").write_text("")

    # --- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start baresip, connect ctrl_tcp, create the account (which may register)."""
        self._proc = await spawn([BARESIP, "-f", str(self.dir)], self.log, self.dir)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _START_TIMEOUT
        while True:
            if self._proc.returncode is not None:
                raise BaresipError(self._explain(f"baresip exited ({self._proc.returncode})"))
            try:
                self._reader, self._writer = await asyncio.open_connection(
                    "127.0.0.1", self.ctrl_port
                )
                break
            except OSError:
                if loop.time() > deadline:
                    raise BaresipError(self._explain("ctrl_tcp never came up")) from None
                await asyncio.sleep(0.05)
        self._read_task = asyncio.create_task(self._read_loop())
        await self.command("uanew", self.account)

    async def crash(self) -> None:
        """SIGKILL: the phone vanishes mid-call, as on a crash or a lost network, no BYE."""
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()
            await self._proc.wait()

    async def stop(self, grace: float = 5.0) -> int | None:
        """Quit cleanly (un-registering if registered), killing after `grace` s."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None and self._writer is not None:
            with contextlib.suppress(OSError, RuntimeError):
                self._send("quit", "", "quit")
        code = None if proc is None else await wait_or_kill(proc, grace)
        if self._read_task is not None:
            self._read_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._read_task
            self._read_task = None
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
            self._writer = None
        return code

    # --- ctrl_tcp --------------------------------------------------------------------

    def _send(self, command: str, params: str, token: str) -> None:
        assert self._writer is not None, "phone not started"
        body = json.dumps({"command": command, "params": params, "token": token}).encode()
        self._writer.write(b"%d:%s," % (len(body), body))

    async def command(self, command: str, params: str = "", within: float = 5.0) -> str:
        """Run a menu command (dial, hangup, accept, hold, ...) and return its output."""
        token = f"t{next(self._tokens)}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[token] = _Pending(future, command)
        try:
            self._send(command, params, token)
            assert self._writer is not None
            await self._writer.drain()
            reply = await asyncio.wait_for(future, within)
        except TimeoutError:
            raise BaresipError(self._explain(f"no reply to {command} {params}")) from None
        finally:
            self._pending.pop(token, None)
        data = str(reply.get("data", ""))
        if not reply.get("ok", False):
            raise BaresipError(self._explain(f"{command} {params} failed: {data}"))
        return data

    async def _read_loop(self) -> None:
        assert self._reader is not None
        try:
            while True:
                # Netstring: "<length>:<payload>,".
                length = int((await self._reader.readuntil(b":"))[:-1])
                payload = await self._reader.readexactly(length + 1)
                message: dict[str, Any] = json.loads(payload[:-1])
                if message.get("response"):
                    pending = self._pending.get(str(message.get("token")))
                    if pending is not None and not pending.future.done():
                        pending.future.set_result(message)
                elif message.get("event"):
                    async with self._changed:
                        self._events.append(Event(str(message.get("type")), message))
                        self._changed.notify_all()
        except (asyncio.IncompleteReadError, ConnectionError):
            # baresip quit or died; waiters time out with the log in their message.
            async with self._changed:
                self._changed.notify_all()

    # The brief's API names it `timeout`; it bounds only this wait, not the phone.
    async def wait_event(
        self,
        types: str | Collection[str],
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> Event:
        """The oldest not yet consumed event of one of `types`, waiting up to `timeout` s.

        Each event is returned once, so a test can wait for CALL_RINGING and then
        CALL_ESTABLISHED in order even if both arrived before the first wait.
        """
        wanted = {types} if isinstance(types, str) else set(types)

        def find() -> int | None:
            for index, event in enumerate(self._events):
                if index not in self._consumed and event.type in wanted:
                    return index
            return None

        async def wait() -> int:
            async with self._changed:
                while (index := find()) is None:
                    await self._changed.wait()
                return index

        try:
            index = await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            raise BaresipError(
                self._explain(f"no {'/'.join(sorted(wanted))} within {timeout} s")
            ) from None
        self._consumed.add(index)
        return self._events[index]

    # --- calls -----------------------------------------------------------------------

    async def dial(self, uri: str) -> None:
        """Call `uri`; follow with wait_event("CALL_ESTABLISHED") or similar."""
        await self.command("dial", uri)

    async def accept(self) -> None:
        """Answer the ringing incoming call (answermode=manual)."""
        await self.command("accept")

    async def hangup(self) -> None:
        """Hang up (or reject, or cancel) the current call."""
        await self.command("hangup")

    async def reginfo(self) -> str:
        return await self.command("reginfo")

    # --- audio -----------------------------------------------------------------------

    def received_samples(self) -> tuple[audio.Samples, int]:
        """Everything received so far, all streams in order (complete after CALL_CLOSED)."""
        return audio.read_received(self.dir)

    def received_audio(self, candidates: Sequence[float]) -> list[float | None]:
        """Per-20 ms timeline of which candidate tone the phone received."""
        return audio.received_timeline(self.dir, candidates)

    # --- diagnosis -------------------------------------------------------------------

    def _explain(self, problem: str) -> str:
        events = ", ".join(e.type for e in self._events) or "none"
        return (
            f"baresip {self.user}: {problem}\nevents: {events}\n{tail(self.log, skip=_STATUS_LINE)}"
        )
