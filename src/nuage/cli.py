"""The `nuage` command: serve, provision, calls, demo, carrier."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import signal
import socket
import sys
import tempfile
from collections.abc import Coroutine, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import uvloop

from nuage.carrier import (
    DEFAULT_HOST,
    DEFAULT_NUMBERS,
    DEFAULT_PORT,
    Behaviour,
    CallResult,
    CarrierSimulator,
)
from nuage.certificates import local_names, self_signed
from nuage.config import Config, ConfigError, load_config
from nuage.pbx.provision import (
    CompanyNotFoundError,
    Plan,
    PlanError,
    apply_plan,
    list_calls,
    list_recordings,
    load_plan,
)
from nuage.server import serve
from nuage.sip.peer import Peer
from nuage.sip.transport import primary_ip
from nuage.store.database import open_database


def _run_until_signal(config: Config, *, before_stop: asyncio.Event | None = None) -> None:
    async def main() -> None:
        stop = before_stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await serve(config, stop)

    _run(main())


def _run(main: Coroutine[Any, Any, None]) -> None:
    uvloop.run(main)


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Migrations run at every start; their chatter is not news.
    logging.getLogger("alembic").setLevel(logging.WARNING)


def _cmd_serve(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    _configure_logging(config.log.level)
    _run_until_signal(config)
    return 0


async def _provision(config: Config, plan: Path) -> str:
    db = await open_database(config.database_url)
    try:
        return str(await apply_plan(db, plan))
    finally:
        await db.close()


def _cmd_provision(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    _configure_logging("warning")
    config.server.data_dir.mkdir(parents=True, exist_ok=True)
    print(asyncio.run(_provision(config, args.plan)))
    return 0


async def _calls(config: Config, company: str, limit: int) -> list[str]:
    db = await open_database(config.database_url)
    lines = []
    try:
        for r in await list_calls(db, company, limit):
            answered = r.answered_at.isoformat(timespec="seconds") if r.answered_at else "-"
            ended = r.ended_at.isoformat(timespec="seconds") if r.ended_at else "(live)"
            quality = (
                ""
                if r.mos_average is None or r.mos_worst is None
                else f"  MOS {r.mos_average:.2f} (worst {r.mos_worst:.2f})"
            )
            lines.append(
                f"{r.started_at.isoformat(timespec='seconds')}  {r.direction:<8} "
                f"{r.caller:>14} -> {r.callee:<14} {r.outcome or '-':<9} answered {answered} "
                f"ended {ended}  {r.reason}{quality}"
            )
            for recording in await list_recordings(db, company, r.id):
                lines.append(
                    f"    recording {recording.path} {recording.duration_ms / 1000:.1f} s "
                    f"owner {recording.owner_user_id} stopped by {recording.stopped_by}"
                )
    finally:
        await db.close()
    return lines


def _cmd_calls(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    _configure_logging("warning")
    for line in asyncio.run(_calls(config, args.company, args.limit)):
        print(line)
    return 0


# The demo's RTP ports (its SIP and HTTP ports must lie outside them).
DEMO_RTP_PORTS = (20000, 20999)


def _cmd_demo(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="nuage-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    server: dict[str, object] = {
        "sip_host": args.host,
        "sip_port": args.sip_port,
        "http_host": args.host,
        "http_port": args.http_port,
        "rtp_port_min": DEMO_RTP_PORTS[0],
        "rtp_port_max": DEMO_RTP_PORTS[1],
        "data_dir": str(data_dir),
    }
    if args.tls:
        cert, key = self_signed(data_dir, [*local_names(), args.host])
        server |= {"tls_cert": str(cert), "tls_key": str(key)}
    config = Config.from_mapping({"server": server})
    _configure_logging(config.log.level)
    plan = _demo_plan(config, "demo-plan")
    provider = _demo_plan(config, "demo-provider")
    company = plan.company
    web = f"{'https' if args.tls else 'http'}://{_url_host(args.host)}:{args.http_port}"
    print(f"Nuage demo: company {company.name}, SIP domain {company.domain}")
    print(f"  SIP server   {args.host}:{args.sip_port} (UDP and TCP)")
    print(f"  web app      {web}/")
    print(f"  health       {web}/healthz")
    print(f"  REST API     {web}/api/v1 (docs/api.md)")
    if args.tls:
        print(
            f"  certificate  {config.server.tls_cert} (self-signed: accept it in the browser "
            "or install it on the phone)"
        )
    print(f"  data         {data_dir}")
    print("  extension  SIP password  app login (email / password)        role   name")
    for user in plan.users:
        login = f"{user.email} / {user.password}"
        print(
            f"  {user.extension:<10} {user.sip_password:<13} {login:<36} {user.role:<6} {user.name}"
        )
    for user in provider.users:
        print(
            f"  the provider's {user.role}, who administers every company: "
            f"{user.email} / {user.password}"
        )
    kinds = {menu.extension: "the voice menu" for menu in plan.ivrs}
    kinds |= {group.extension: "the group" for group in plan.groups}
    for menu in plan.ivrs:
        keys = ", ".join(f"{key} -> {target}" for key, target in sorted(menu.keys.items()))
        print(f"  extension {menu.extension}: voice menu {menu.name!r} ({keys})")
    for group in plan.groups:
        print(
            f"  extension {group.extension}: group {group.name!r} "
            f"(rings {', '.join(group.members)})"
        )
    for number in plan.numbers:
        kind = kinds.get(number.route)
        target = f"{kind} {number.route}" if kind else number.route
        print(f"  number {number.number} rings {target}")
    print("  *98: your voicemail; *97 and an extension: leave a message there")
    print(
        "Register a phone as <extension>@" + company.domain + f" via {args.host}:{args.sip_port}."
    )
    # The demo trunk points at the carrier simulator, which runs in this process.
    carrier_host, carrier_port = plan.trunks[0].address
    _print_carrier_help(carrier_host, carrier_port, f"{args.host}:{args.sip_port}")
    sys.stdout.flush()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        carrier = CarrierSimulator(carrier_host, carrier_port)
        try:
            await carrier.start()
        except OSError as exc:
            # Another demo may hold the address; the PBX is still worth serving without it.
            print(f"nuage: carrier simulator not started on {carrier_host}:{carrier_port}: {exc}")
        try:
            await serve(config, stop)
        finally:
            await carrier.close()

    _run(main())
    return 0


def _url_host(host: str) -> str:
    """``host`` as written in a URL; for a wildcard bind, the address phones can use."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if address.is_unspecified:
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        address = ipaddress.ip_address(primary_ip(family))
    return f"[{address}]" if address.version == 6 else str(address)


def _demo_plan(config: Config, name: str) -> Plan:
    """Provision the packaged plan ``name`` (data/NAME.toml); the plan, for the login help."""
    plan_file = resources.files("nuage").joinpath(f"data/{name}.toml")
    with resources.as_file(plan_file) as plan_path:
        asyncio.run(_provision(config, plan_path))
        return load_plan(plan_path)


def _print_carrier_help(host: str, port: int, server: str) -> None:
    numbers = {behaviour: number for number, behaviour in DEFAULT_NUMBERS.items()}
    print(f"Carrier simulator on {host}:{port} (the demo trunk):")
    print("  dial any external number (e.g. 0475 12 34 56): answered after 1 s, you hear")
    print("  yourself (the carrier echoes your audio back). Numbers that behave differently:")
    for behaviour, text in (
        (Behaviour.BUSY, "busy (486)"),
        (Behaviour.UNKNOWN, "not in service (404)"),
        (Behaviour.NO_ANSWER, "rings, never answers"),
        (Behaviour.TONE, "answers with a 440 Hz tone"),
        (Behaviour.HANGUP, "answers, the carrier hangs up after 5 s"),
    ):
        print(f"    {_national(numbers[behaviour])}  {text}")
    print("  A call from outside to a company number (another terminal):")
    print(f"    nuage carrier call +3225550100 --server {server}")


def _national(number: str) -> str:
    """+32470000486 as dialled in Belgium, 0470000486."""
    return "0" + number.removeprefix("+32") if number.startswith("+32") else number


def _host_port(text: str) -> tuple[str, int]:
    host, colon, port = text.rpartition(":")
    if not colon or not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not host:port")
    return host.strip("[]"), int(port)


def _cmd_carrier_serve(args: argparse.Namespace) -> int:
    _configure_logging("info")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        carrier = CarrierSimulator(args.host, args.port, answer_delay=args.answer_delay)
        await carrier.start()
        print(f"carrier simulator on {args.host}:{carrier.port}/udp", flush=True)
        try:
            await stop.wait()
        finally:
            await carrier.close()

    try:
        _run(main())
    except OSError as exc:
        print(f"nuage carrier: {exc}", file=sys.stderr)
        return 2
    return 0


def _cmd_carrier_call(args: argparse.Namespace) -> int:
    _configure_logging("warning")
    host, port = args.server

    async def main() -> CallResult:
        carrier = CarrierSimulator(args.host, args.port, tone=args.tone)
        await carrier.start()
        try:
            return await carrier.call(
                Peer("udp", host, port),
                args.number,
                seconds=args.seconds,
                caller=args.caller,
                on_event=lambda text: print(text, flush=True),
            )
        finally:
            await carrier.close()

    try:
        result = asyncio.run(main())
    except OSError as exc:
        print(f"nuage carrier: {exc}", file=sys.stderr)
        return 2
    print(
        f"result: {result.final} {result.reason}"
        + (
            f", {result.codec}, {result.packets_sent} RTP packets sent, "
            f"{result.packets_received} received, hung up by {result.ended_by}"
            if result.answered
            else ""
        )
    )
    return 0 if result.answered else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nuage", description="Nuage hosted phone system")
    sub = parser.add_subparsers(dest="command", required=True)

    serve_parser = sub.add_parser("serve", help="run the server")
    serve_parser.add_argument("--config", type=Path, help="nuage.toml")
    serve_parser.set_defaults(handler=_cmd_serve)

    provision = sub.add_parser("provision", help="create or update a company from a plan file")
    provision.add_argument("plan", type=Path)
    provision.add_argument("--config", type=Path, help="nuage.toml")
    provision.set_defaults(handler=_cmd_provision)

    calls = sub.add_parser("calls", help="list a company's call records")
    calls.add_argument("--company", required=True, help="the company's SIP domain or name")
    calls.add_argument("--limit", type=int, default=100)
    calls.add_argument("--config", type=Path, help="nuage.toml")
    calls.set_defaults(handler=_cmd_calls)

    demo = sub.add_parser("demo", help="serve a demo company")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--sip-port", type=int, default=5060)
    demo.add_argument("--http-port", type=int, default=8080)
    demo.add_argument("--data-dir", help="keep the demo's data here (default: a new temp dir)")
    demo.add_argument(
        "--tls",
        action="store_true",
        help="serve HTTPS with a self-signed certificate kept in the data dir (browsers on "
        "other machines give the microphone only to HTTPS pages)",
    )
    demo.set_defaults(handler=_cmd_demo)

    carrier = sub.add_parser("carrier", help="a telephone carrier simulator (the demo trunk)")
    carrier_sub = carrier.add_subparsers(dest="carrier_command", required=True)
    carrier_serve = carrier_sub.add_parser(
        "serve", help="answer the PBX's outbound calls (echo; see nuage/carrier.py)"
    )
    carrier_serve.add_argument("--host", default=DEFAULT_HOST)
    carrier_serve.add_argument("--port", type=int, default=DEFAULT_PORT)
    carrier_serve.add_argument("--answer-delay", type=float, default=1.0)
    carrier_serve.set_defaults(handler=_cmd_carrier_serve)
    carrier_call = carrier_sub.add_parser("call", help="call a company number from the carrier")
    carrier_call.add_argument("number", help="the dialled number, e.g. +3225550100")
    carrier_call.add_argument(
        "--server", type=_host_port, default=("127.0.0.1", 5060), help="the PBX, host:port"
    )
    carrier_call.add_argument("--seconds", type=float, default=5.0, help="hang up after this")
    carrier_call.add_argument("--caller", default="+3222220000", help="the calling number")
    carrier_call.add_argument("--tone", type=float, default=440.0, help="tone sent, in Hz")
    carrier_call.add_argument(
        "--host", default=DEFAULT_HOST, help="the carrier's address (the trunk's, for the PBX)"
    )
    carrier_call.add_argument("--port", type=int, default=0, help="SIP port (default: any)")
    carrier_call.set_defaults(handler=_cmd_carrier_call)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.handler(args)
        return result
    except (ConfigError, PlanError, CompanyNotFoundError) as exc:
        print(f"nuage: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
