"""sipp as a test peer: run a scenario to completion, or keep a UAS running meanwhile.

Every run writes its statistics, unexpected messages, SIP trace and final screen into
its own files of a work directory, and a failed assertion quotes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import itertools
import shutil
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

from .ports import free_port, free_ports
from .process import spawn, tail, wait_or_kill

SIPP = shutil.which("sipp") or "/usr/bin/sipp"
SCENARIOS = Path(__file__).parent / "scenarios"
# Where Debian's sip-tester keeps the pcaps (g711a.pcap, dtmf_2833_*.pcap) that
# scenarios such as the built-in uac_pcap open relative to the working directory.
PCAP_DIR = Path("/usr/share/sip-tester")
BUILTIN = frozenset(
    {
        "uac",
        "uas",
        "regexp",
        "3pcc-C-A",
        "3pcc-C-B",
        "3pcc-A",
        "3pcc-B",
        "branchc",
        "branchs",
        "uac_pcap",
    }
)
Transport = Literal["u1", "un", "ui", "t1", "tn"]

_names = itertools.count(1)


@dataclass
class SippResult:
    """What one sipp run did; `assert_ok()` fails with its logs."""

    argv: list[str]
    returncode: int
    stats: dict[str, str]
    out: Path
    errors: Path
    messages: Path | None
    screen: Path
    actions: Path

    @property
    def successful(self) -> int:
        return int(self.stats.get("SuccessfulCall(C)", 0))

    @property
    def failed(self) -> int:
        return int(self.stats.get("FailedCall(C)", 0))

    @property
    def created(self) -> int:
        return int(self.stats.get("TotalCallCreated", 0))

    def diagnosis(self) -> str:
        """Command, exit code, counters and the tails of every log, for a failure message."""
        counters = {k: v for k, v in self.stats.items() if v not in ("0", "") and "(C)" in k}
        parts = [
            f"sipp exited {self.returncode}: {' '.join(self.argv)}",
            f"counters: {counters}",
            tail(self.errors, 60),
            tail(self.actions, 20),
            tail(self.screen, 40),
        ]
        if self.messages is not None:
            parts.append(tail(self.messages, 120))
        parts.append(tail(self.out, 15))
        return "\n".join(parts)

    def assert_ok(self, calls: int | None = None) -> None:
        """Exit code 0, no failed call, and `calls` successful calls when given."""
        good = self.returncode == 0 and self.failed == 0
        if calls is not None:
            good = good and self.successful == calls
        if not good:
            wanted = "" if calls is None else f", wanted {calls} successful"
            raise AssertionError(
                f"sipp: {self.successful} successful, {self.failed} failed{wanted}\n"
                + self.diagnosis()
            )


@dataclass
class _Run:
    """Command line and file names of one sipp invocation, shared by both ways to run."""

    workdir: Path
    name: str
    argv: list[str] = field(default_factory=list)
    trace_msg: bool = True

    def file(self, suffix: str) -> Path:
        return self.workdir / f"{self.name}.{suffix}"

    def result(self, returncode: int) -> SippResult:
        return SippResult(
            argv=self.argv,
            returncode=returncode,
            stats=_read_stats(self.file("stats.csv")),
            out=self.file("out"),
            errors=self.file("errors.log"),
            messages=self.file("messages.log") if self.trace_msg else None,
            screen=self.file("screen.log"),
            actions=self.file("actions.log"),
        )


def _read_stats(path: Path) -> dict[str, str]:
    # sipp appends one ';'-separated row per dump period; the last row is the final one.
    try:
        with path.open(newline="") as f:
            rows = [row for row in csv.reader(f, delimiter=";") if row]
    except FileNotFoundError:
        return {}
    if len(rows) < 2:
        return {}
    return dict(zip(rows[0], rows[-1], strict=False))


def _scenario_args(scenario: str | Path) -> tuple[list[str], str]:
    if isinstance(scenario, str) and scenario in BUILTIN:
        return ["-sn", scenario], scenario
    path = Path(scenario)
    if not path.is_absolute() and not path.exists():
        path = SCENARIOS / path
    if not path.exists():
        raise FileNotFoundError(f"sipp scenario {scenario} (looked in {SCENARIOS})")
    return ["-sf", str(path)], path.stem


def account_row(user: str, password: str, domain: str) -> list[str]:
    """An injection row for the scenarios here: [field0..3] = user, password, domain, auth.

    sipp 3.6.1 garbles `[authentication username=[field0] ...]` (the nested keyword is
    printed before the header), so the whole keyword travels in [field3] instead.
    """
    return [user, password, domain, f"[authentication username={user} password={password}]"]


def _write_inject(path: Path, rows: Sequence[Sequence[str]]) -> None:
    # SEQUENTIAL: call n uses row n (mod the row count), which tests can predict.
    lines = ["SEQUENTIAL", *(";".join(row) for row in rows)]
    path.write_text("\n".join(lines) + "\n")


def _build(
    scenario: str | Path,
    target: str | None,
    *,
    workdir: Path,
    name: str | None,
    calls: int | None,
    rate: float | None,
    concurrent: int | None,
    timeout: float,
    media_port: int | None,
    local_port: int,
    transport: Transport,
    service: str | None,
    auth: tuple[str, str] | None,
    keys: Mapping[str, str],
    inject: Path | Sequence[Sequence[str]] | None,
    trace_msg: bool,
    hold_ms: int | None,
    extra_args: Sequence[str],
) -> _Run:
    workdir.mkdir(parents=True, exist_ok=True)
    scenario_args, stem = _scenario_args(scenario)
    run = _Run(workdir, name or f"{stem}-{next(_names)}", trace_msg=trace_msg)
    # sipp binds the media port and media port + 2 (video); the default 6000 clashes
    # between instances.
    media = media_port if media_port is not None else free_ports(4)
    argv = [SIPP, *scenario_args]
    if target is not None:
        argv.append(target)
    argv += ["-i", "127.0.0.1", "-p", str(local_port), "-mp", str(media), "-t", transport]
    # -nostdin: no terminal here; -timeout_error: a hung run fails instead of "passing".
    argv += ["-nostdin", "-timeout", f"{timeout:g}s", "-timeout_error"]
    argv += ["-trace_stat", "-stf", str(run.file("stats.csv")), "-fd", "1"]
    argv += ["-trace_err", "-error_file", str(run.file("errors.log"))]
    argv += ["-trace_screen", "-screen_file", str(run.file("screen.log"))]
    argv += ["-trace_logs", "-log_file", str(run.file("actions.log"))]
    if trace_msg:
        argv += ["-trace_msg", "-message_file", str(run.file("messages.log"))]
    if calls is not None:
        argv += ["-m", str(calls)]
    if rate is not None:
        argv += ["-r", f"{rate:g}"]
    if concurrent is not None:
        argv += ["-l", str(concurrent)]
    if hold_ms is not None:
        argv += ["-d", str(hold_ms)]
    if service is not None:
        argv += ["-s", service]
    if auth is not None:
        argv += ["-au", auth[0], "-ap", auth[1]]
    for key, value in keys.items():
        argv += ["-key", key, value]
    if inject is not None:
        if not isinstance(inject, Path):
            path = run.file("inject.csv")
            _write_inject(path, inject)
            inject = path
        argv += ["-inf", str(inject)]
    argv += list(extra_args)
    run.argv = argv
    pcap = workdir / "pcap"
    if not pcap.exists() and PCAP_DIR.is_dir():
        pcap.symlink_to(PCAP_DIR)
    return run


# `timeout` is sipp's own -timeout (and the brief's name), not only an asyncio bound.
async def run_sipp(
    scenario: str | Path,
    target: str | None = None,
    *,
    workdir: Path,
    name: str | None = None,
    calls: int | None = 1,
    rate: float | None = None,
    concurrent: int | None = None,
    timeout: float = 30.0,  # noqa: ASYNC109
    media_port: int | None = None,
    local_port: int | None = None,
    transport: Transport = "u1",
    service: str | None = None,
    auth: tuple[str, str] | None = None,
    keys: Mapping[str, str] | None = None,
    inject: Path | Sequence[Sequence[str]] | None = None,
    trace_msg: bool = True,
    hold_ms: int | None = None,
    extra_args: Sequence[str] = (),
) -> SippResult:
    """Run `scenario` (a built-in name, a file in scenarios/, or a path) to its end.

    `target` is "host:port" of the peer; `calls` maps to -m, `rate` to -r (calls/s),
    `concurrent` to -l; `service` is the request-URI user (-s); `auth` the digest
    (username, password) for <recv auth="true"> challenges; `keys` sets [key] values;
    `inject` is a CSV path or rows for -inf ([field0], [field1], ...). sipp stops itself
    after `timeout` s as a failure; it is killed if it outlives that by 10 s.
    """
    run = _build(
        scenario,
        target,
        workdir=workdir,
        name=name,
        calls=calls,
        rate=rate,
        concurrent=concurrent,
        timeout=timeout,
        media_port=media_port,
        local_port=local_port if local_port is not None else free_port(),
        transport=transport,
        service=service,
        auth=auth,
        keys=keys or {},
        inject=inject,
        trace_msg=trace_msg,
        hold_ms=hold_ms,
        extra_args=extra_args,
    )
    proc = await spawn(run.argv, run.file("out"), workdir)
    try:
        code = await wait_or_kill(proc, timeout + 10)
    finally:
        if proc.returncode is None:
            await wait_or_kill(proc, 0)
    return run.result(code)


def _listening(port: int, transport: Transport) -> bool:
    # Read the kernel's socket tables rather than probing: binding the port ourselves
    # could steal it from sipp in the instant it starts.
    table, state = ("/proc/net/tcp", "0A") if transport.startswith("t") else ("/proc/net/udp", "07")
    wanted = f":{port:04X}"
    with open(table) as f:
        next(f)
        for line in f:
            fields = line.split()
            if fields[1].endswith(wanted) and fields[3] == state:
                return True
    return False


class SippServer:
    """A sipp scenario (typically a UAS) running in the background during a test.

    `async with SippServer("uas_answer.xml", workdir=tmp) as uas:` then send calls to
    `uas.address`; on exit (or `await uas.stop()`) sipp is asked to finish its calls
    and quit, and `uas.result` holds its SippResult. With `calls=N` it exits by itself
    after N calls: `await uas.wait()`.
    """

    def __init__(
        self,
        scenario: str | Path,
        target: str | None = None,
        *,
        workdir: Path,
        name: str | None = None,
        calls: int | None = None,
        timeout: float = 60.0,
        media_port: int | None = None,
        local_port: int | None = None,
        transport: Transport = "u1",
        auth: tuple[str, str] | None = None,
        keys: Mapping[str, str] | None = None,
        inject: Path | Sequence[Sequence[str]] | None = None,
        trace_msg: bool = True,
        hold_ms: int | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.port = local_port if local_port is not None else free_port()
        self.transport: Transport = transport
        self._run = _build(
            scenario,
            target,
            workdir=workdir,
            name=name,
            calls=calls,
            rate=None,
            concurrent=None,
            timeout=timeout,
            media_port=media_port,
            local_port=self.port,
            transport=transport,
            service=None,
            auth=auth,
            keys=keys or {},
            inject=inject,
            trace_msg=trace_msg,
            hold_ms=hold_ms,
            extra_args=extra_args,
        )
        self._timeout = timeout
        self._proc: asyncio.subprocess.Process | None = None
        self.result: SippResult | None = None

    @property
    def address(self) -> str:
        """host:port to send requests to."""
        return f"127.0.0.1:{self.port}"

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self, within: float = 5.0) -> None:
        """Start sipp and return once its SIP socket is bound."""
        proc = self._proc = await spawn(self._run.argv, self._run.file("out"), self._run.workdir)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        try:
            while not _listening(self.port, self.transport):
                if proc.returncode is not None or loop.time() > deadline:
                    raise AssertionError("sipp server did not start")
                await asyncio.sleep(0.02)
        except BaseException as error:
            self._proc = None
            self.result = self._run.result(await wait_or_kill(proc, 0))
            if isinstance(error, AssertionError):
                raise AssertionError(f"{error}\n{self.result.diagnosis()}") from None
            raise

    async def wait(self, within: float | None = None) -> SippResult:
        """Wait for sipp to end by itself (after `calls` calls, or its -timeout)."""
        if self._proc is not None:
            code = await wait_or_kill(self._proc, self._timeout + 10 if within is None else within)
            self._proc = None
            self.result = self._run.result(code)
        assert self.result is not None, "sipp server never started"
        return self.result

    async def stop(self, grace: float = 10.0) -> SippResult:
        """Ask sipp to quit once its calls end (SIGUSR1), killing it after `grace` s."""
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(signal.SIGUSR1)
        return await self.wait(grace)
