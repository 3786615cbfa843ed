"""The composition root: builds every part from the config, starts and stops them in order."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import secrets
import socket
from collections.abc import Generator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import uvicorn

from nuage.api.app import ApiServices, create_app, serve_api
from nuage.api.event_feed import EventFeed
from nuage.api.sip_websocket import serve_sip
from nuage.collector import CollectorPacer
from nuage.config import Config
from nuage.events import EventBus
from nuage.events.memory import InProcessBus
from nuage.events.redis_bus import RedisBus
from nuage.mail.smtp import SmtpClient
from nuage.media.engine import LocalMediaEngine
from nuage.pbx.admin import Administration
from nuage.pbx.app_sessions import AppSessions
from nuage.pbx.auth import UserAuthenticator
from nuage.pbx.call_engine import CallEngine
from nuage.pbx.call_log import CallLog
from nuage.pbx.contacts import Favorites
from nuage.pbx.control import CallControl
from nuage.pbx.directory import Directory
from nuage.pbx.event_packages import DialogPackage, MessageSummaryPackage, PresencePackage
from nuage.pbx.location import LocationService
from nuage.pbx.message_waiting import MessageWaiting
from nuage.pbx.presence import Presence
from nuage.pbx.recordings import RecordingService
from nuage.pbx.records import CallRecorder
from nuage.pbx.registrar import Registrar
from nuage.pbx.service import PbxService
from nuage.pbx.statuses import StatusService
from nuage.pbx.subscriptions import SubscriptionManager
from nuage.pbx.throttle import FailureThrottle
from nuage.pbx.trunk_registration import TrunkRegistrar
from nuage.pbx.unsolicited_mwi import UnsolicitedMwi
from nuage.pbx.voicemail.mailer import VoicemailMailer
from nuage.pbx.voicemail.outbox import MailOutbox
from nuage.pbx.voicemail.service import Voicemail
from nuage.pbx.voicemail.store import VoicemailStore
from nuage.sip.digest import DigestAuthenticator
from nuage.sip.endpoint import SipEndpoint
from nuage.sip.transport import primary_ip
from nuage.store.database import Database, open_database
from nuage.store.writer import BatchWriter

log = logging.getLogger(__name__)

_HOUSEKEEPING_PERIOD = 60.0
# Voicemail files left by deleted boxes are looked for this often (a scan of the files).
_VOICEMAIL_SWEEP_PERIOD = 3600.0


def load_secret(data_dir: Path) -> bytes:
    """The server's signing secret (digest nonces), created once and kept in data_dir so
    that nonces stay valid across restarts and across processes sharing the directory."""
    path = data_dir / "secret"
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        secret = secrets.token_bytes(32)
        path.touch(mode=0o600)
        path.write_text(secret.hex())
        return secret


async def advertised_media_address(bind_host: str, public_address: str | None) -> str:
    """The IP address put in SDP: ``public_address`` (a host name is resolved once, at
    start), else the bound address, or for a wildcard bind the host's primary address."""
    if public_address is not None:
        try:
            return str(ipaddress.ip_address(public_address))
        except ValueError:
            infos = await asyncio.get_running_loop().getaddrinfo(
                public_address, None, type=socket.SOCK_DGRAM
            )
            return str(infos[0][4][0])
    address = ipaddress.ip_address(bind_host)
    if not address.is_unspecified:
        return bind_host
    return primary_ip(socket.AF_INET6 if address.version == 6 else socket.AF_INET)


class _EmbeddedHttpServer(uvicorn.Server):
    """uvicorn inside our loop: signals belong to the CLI, which stops every part."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class NuageServer:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.db: Database | None = None
        self.media: LocalMediaEngine | None = None
        self.endpoint: SipEndpoint | None = None
        self.service: PbxService | None = None
        self.control: CallControl | None = None
        self.trunks: TrunkRegistrar | None = None
        self.writer: BatchWriter | None = None
        self.directory: Directory | None = None
        self.location: LocationService | None = None
        self.statuses: StatusService | None = None
        self.bus: EventBus | None = None
        self.feed: EventFeed | None = None
        self.voicemail: Voicemail | None = None
        self.mailer: VoicemailMailer | None = None
        self.message_waiting: MessageWaiting | None = None
        self.mwi: UnsolicitedMwi | None = None
        self._http: uvicorn.Server | None = None
        # Answers /healthz from the start; the API once storage is up (serve_api).
        self.app = create_app(self.readiness, self.counters)
        self._tasks: list[asyncio.Task[None]] = []

    def readiness(self) -> dict[str, bool]:
        return {
            "storage": self.db is not None,
            "media": self.media is not None,
            "sip": self.endpoint is not None,
        }

    def counters(self) -> dict[str, int]:
        figures: dict[str, int] = {}
        if self.service is not None:
            figures["active_calls"] = self.service.calls.active_calls
            figures["subscriptions"] = self.service.subscriptions.count
            figures["calls_on_hold"] = self.service.calls.calls_on_hold
            recordings = self.service.calls.recordings
            figures["recordings_active"] = recordings.active if recordings is not None else 0
        if self.media is not None:
            figures["media_sessions"] = self.media.active_sessions
            figures["media_ticks_skipped"] = self.media.clock.skipped
            figures["rtp_ports_in_use"] = self.media.ports.in_use
        if self.endpoint is not None:
            figures["sip_transactions"] = self.endpoint.transaction_count
            stats = self.endpoint.transport.stats
            figures["sip_rejected"] = stats.rejected
            figures["sip_dropped"] = stats.dropped
            figures["sip_websockets"] = stats.ws_connections
        if self.directory is not None:
            figures["directory_revision"] = self.directory.revision
        if self.mailer is not None:
            figures["voicemail_mails_pending"] = self.mailer.pending
            figures["voicemail_mails_failed"] = self.mailer.failed
        return figures

    async def start(self) -> None:
        server = self.config.server
        server.data_dir.mkdir(parents=True, exist_ok=True)
        await self._start_http()
        self.db = await open_database(self.config.database_url)
        self.media = LocalMediaEngine(
            server.sip_host,
            server.rtp_port_min,
            server.rtp_port_max,
            await advertised_media_address(server.sip_host, server.public_address),
        )
        self.writer = writer = BatchWriter(self.db)
        writer.start()
        self.directory = directory = Directory(self.db)
        await directory.start()
        self.statuses = statuses = StatusService(self.db, directory)
        self.location = location = LocationService(self.db, writer)
        await location.load(datetime.now(UTC))
        recorder = CallRecorder(writer)
        sessions = AppSessions(self.db)
        auth = UserAuthenticator(
            directory,
            DigestAuthenticator(load_secret(server.data_dir), algorithms=server.digest_algorithms),
            FailureThrottle(),
            sessions=sessions,  # the web app's access token, over /sip (RFC 8898)
        )
        calls = CallEngine(
            self.media,
            recorder,
            ring_timeout=server.ring_timeout,
            media_timeout=server.media_timeout,
        )
        calls.recordings = RecordingService(server.data_dir, writer, self.media.clock)
        self.control = CallControl(calls)
        presence = Presence(location, calls)
        statuses.listeners.add(presence.may_have_changed)
        call_log = CallLog(self.db, server.data_dir)
        smtp = self.config.smtp
        voicemail_store = VoicemailStore(self.db, server.data_dir, mail=smtp is not None)
        self.voicemail = voicemail = Voicemail(voicemail_store, self.media)
        if smtp is None:
            log.info("no [smtp] in the configuration: voicemail messages are not mailed")
        else:
            client = SmtpClient(
                smtp.host,
                smtp.server_port,
                tls=smtp.tls,
                username=smtp.username,
                password=None if smtp.password is None else smtp.password.get_secret_value(),
                timeout=smtp.timeout,
            )
            self.mailer = mailer = VoicemailMailer(
                MailOutbox(self.db), client, data_dir=server.data_dir, sender=smtp.from_address
            )
            voicemail.add_listener(mailer.message_left)
            mailer.start()
        self.bus = bus = (
            RedisBus(self.config.redis.url, prefix=self.config.redis.key_prefix)
            if self.config.redis.url
            else InProcessBus()
        )
        await bus.start()
        self.feed = feed = EventFeed(
            bus,
            engine=calls,
            control=self.control,
            presence=presence,
            location=location,
            statuses=statuses,
            recorder=recorder,
            call_log=call_log,
            voicemail=voicemail,
            directory=directory,
        )
        feed.start()
        self.message_waiting = waiting = MessageWaiting(voicemail, bus)
        summaries = MessageSummaryPackage(waiting)
        subscriptions = SubscriptionManager(
            directory,
            auth,
            [DialogPackage(calls), PresencePackage(presence, directory), summaries],
            contact_for=calls.contact_for,
        )
        presence.add_listener(subscriptions.resource_changed)
        waiting.listeners.add(partial(subscriptions.resource_changed, event=summaries.event))
        self.mwi = mwi = UnsolicitedMwi(
            directory, location, waiting, subscriptions, contact_for=calls.contact_for
        )
        self.service = PbxService(
            directory=directory,
            location=location,
            auth=auth,
            registrar=Registrar(location, auth, on_new_binding=mwi.registered),
            calls=calls,
            recorder=recorder,
            subscriptions=subscriptions,
            voicemail=voicemail,
        )
        public = (server.public_address, None) if server.public_address else None
        endpoint = SipEndpoint(
            self.service.handle_request,
            on_stray_2xx=calls.handle_stray_2xx,
            # A browser is reached only over its WebSocket: its bindings go with it.
            on_flow_lost=location.flow_lost,
            tcp_idle_timeout=server.tcp_idle_timeout,
            public_address=public,
        )
        calls.attach(endpoint)
        subscriptions.attach(endpoint)
        mwi.attach(endpoint)
        await endpoint.listen_udp(server.sip_host, server.sip_port)
        await endpoint.listen_tcp(server.sip_host, server.sip_port)
        self.endpoint = endpoint
        serve_sip(self.app, endpoint)
        # Last: the API places calls through the endpoint.
        serve_api(
            self.app,
            ApiServices(
                sessions=sessions,
                directory=directory,
                favorites=Favorites(self.db, directory),
                presence=presence,
                control=self.control,
                call_log=call_log,
                location=location,
                statuses=statuses,
                bus=bus,
                feed=feed,
                click_to_call=self.service.click_to_call,
                voicemail=voicemail,
                admin=Administration(self.db, directory, location),
            ),
        )
        self.trunks = TrunkRegistrar(self.db, endpoint)
        await self.trunks.start()
        self._tasks.append(asyncio.create_task(self._housekeeping()))
        secure = server.tls_cert is not None
        log.info(
            "nuage ready: SIP %s:%d (udp, tcp), %s %s:%d (SIP over %s at /sip), RTP %d-%d",
            server.sip_host,
            server.sip_port,
            "HTTPS" if secure else "HTTP",
            server.http_host,
            server.http_port,
            "secure WebSocket" if secure else "WebSocket",
            server.rtp_port_min,
            server.rtp_port_max,
        )

    async def _start_http(self) -> None:
        server = self.config.server
        config = uvicorn.Config(
            self.app,
            host=server.http_host,
            port=server.http_port,
            log_level="warning",
            lifespan="off",
            # Events are small JSON: compressing each one costs more CPU per delivery than
            # it saves (bench/RESULTS.md section 10), and memory per stream.
            ws_per_message_deflate=False,
            # Both set or neither (the config checks): the app, the API, the event stream
            # and /sip then become https and wss on this one port.
            ssl_certfile=server.tls_cert,
            ssl_keyfile=server.tls_key,
        )
        self._http = _EmbeddedHttpServer(config)
        task = asyncio.create_task(self._http.serve())
        self._tasks.append(task)
        while not self._http.started:
            if task.done():
                task.result()  # the bind failed: raise its error
                raise RuntimeError("HTTP server stopped during start-up")
            await asyncio.sleep(0.02)

    async def _housekeeping(self) -> None:
        loop = asyncio.get_running_loop()
        next_sweep = loop.time()
        while True:
            await asyncio.sleep(_HOUSEKEEPING_PERIOD)
            try:
                if self.location is not None:
                    await self.location.expire(datetime.now(UTC))
                if self.voicemail is not None and loop.time() >= next_sweep:
                    next_sweep = loop.time() + _VOICEMAIL_SWEEP_PERIOD
                    removed = await self.voicemail.store.remove_orphans()
                    if removed:
                        log.info("voicemail: %d files no message or box refers to removed", removed)
            except Exception:
                log.exception("housekeeping failed")

    async def stop(self) -> None:
        if self._http is not None:
            self._http.should_exit = True
        if self.trunks is not None:
            await self.trunks.stop()
        if self.service is not None:
            self.service.subscriptions.close()
        if self.mwi is not None:
            self.mwi.close()
        if self.message_waiting is not None:
            self.message_waiting.close()
        if self.endpoint is not None:
            await self.endpoint.close()
        if self.media is not None:
            await self.media.close()
        if self.directory is not None:
            await self.directory.close()
        if self.feed is not None:
            await self.feed.close()
        if self.bus is not None:
            await self.bus.close()
        if self.writer is not None:
            # Calls just ended: their records are in the queue.
            await self.writer.close()
        if self.mailer is not None:
            await self.mailer.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.db is not None:
            await self.db.close()


async def serve(config: Config, stop: asyncio.Event) -> None:
    server = NuageServer(config)
    pacer = CollectorPacer()
    try:
        await server.start()
        pacer.start()
        await stop.wait()
    finally:
        await pacer.stop()
        await server.stop()
