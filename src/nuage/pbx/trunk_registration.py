"""Registration of the server to carriers, for trunks provisioned with ``register = true``.

Each such trunk keeps one binding at its carrier: ``REGISTER sip:HOST`` for the AOR
``sip:USERNAME@HOST`` with our own address as Contact, refreshed at half the expiry the
carrier grants and retried with a growing delay while the carrier refuses or does not
answer. Provisioning changes reach a running server through the database only, so the
trunks table is polled and the bindings reconciled with it. The carrier then sends the
company's inbound calls to our Contact; they are recognised as the trunk's by their source
address, like those of any trunk.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from nuage.sip.digest import authorization_for, parse_auth_params
from nuage.sip.endpoint import SipEndpoint, new_tag
from nuage.sip.grammar import SipSyntaxError
from nuage.sip.message import URI, Request, Response
from nuage.sip.peer import Peer
from nuage.store.database import Database
from nuage.store.models import Trunk

__all__ = [
    "RegistrationState",
    "TrunkRegistrar",
    "TrunkRegistrationStatus",
    "retry_delay",
]

log = logging.getLogger(__name__)

DEFAULT_EXPIRES = 3600
MIN_REFRESH = 30.0
RETRY_DELAYS: tuple[float, ...] = (5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 300.0)


class RegistrationState(enum.Enum):
    REGISTERING = "registering"
    REGISTERED = "registered"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class TrunkRegistrationStatus:
    """What a status page shows of one trunk's registration."""

    trunk_id: int
    company_id: int
    trunk_name: str
    aor: str
    state: RegistrationState
    reason: str = ""  # why the last attempt failed
    failures: int = 0  # consecutive failed attempts
    registered_until: datetime | None = None
    next_attempt: datetime | None = None


@dataclass(frozen=True, slots=True)
class _Target:
    """Everything a binding depends on: when a trunk's row changes any of it, the binding
    is replaced."""

    trunk_id: int
    company_id: int
    name: str
    host: str
    port: int
    transport: str
    username: str
    password: str

    @classmethod
    def of(cls, trunk: Trunk) -> _Target:
        assert trunk.username and trunk.password
        return cls(
            trunk.id,
            trunk.company_id,
            trunk.name,
            trunk.host,
            trunk.port,
            trunk.transport,
            trunk.username,
            trunk.password,
        )

    @property
    def registrar_uri(self) -> URI:
        uri = URI("sip", host=self.host, port=self.port)
        if self.transport != "udp":
            uri.params["transport"] = self.transport
        return uri

    @property
    def aor(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"sip:{self.username}@{host}"


class _Refused(Exception):
    """A REGISTER attempt that did not end in a 2xx; the message is the reason shown."""


def retry_delay(failures: int, delays: Sequence[float] = RETRY_DELAYS) -> float:
    """The wait before the next attempt after ``failures`` consecutive failures (>= 1)."""
    return delays[min(failures, len(delays)) - 1]


class _Binding:
    """One trunk's registration: a task that registers, refreshes and retries."""

    def __init__(self, owner: TrunkRegistrar, target: _Target) -> None:
        self._owner = owner
        self.target = target
        # RFC 3261 10.2: one Call-ID and a growing CSeq for every REGISTER of a binding,
        # so that the carrier can order refreshes and the final un-REGISTER.
        self._call_id = secrets.token_hex(16)
        self._cseq = itertools.count(1)
        self.state = RegistrationState.REGISTERING
        self.reason = ""
        self.failures = 0
        self.registered_until: datetime | None = None
        self.next_attempt: datetime | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self, *, unregister: bool) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if unregister and self.state is RegistrationState.REGISTERED:
            try:
                async with asyncio.timeout(self._owner.unregister_timeout):
                    await self._register(0)
            except (TimeoutError, _Refused) as exc:
                log.info("un-REGISTER of trunk %s unanswered: %s", self.target.name, exc)
            else:
                log.info("trunk %s un-registered from %s", self.target.name, self.target.host)

    def status(self) -> TrunkRegistrationStatus:
        target = self.target
        return TrunkRegistrationStatus(
            trunk_id=target.trunk_id,
            company_id=target.company_id,
            trunk_name=target.name,
            aor=target.aor,
            state=self.state,
            reason=self.reason,
            failures=self.failures,
            registered_until=self.registered_until,
            next_attempt=self.next_attempt,
        )

    async def _run(self) -> None:
        owner = self._owner
        while True:
            self.next_attempt = None
            try:
                granted = await self._register(owner.expires)
            except Exception as exc:
                if not isinstance(exc, _Refused):
                    # Whatever went wrong, the binding must keep retrying, not die.
                    log.exception("trunk %s: REGISTER failed", self.target.name)
                self.failures += 1
                delay = retry_delay(self.failures, owner.retry_delays)
                self.state = RegistrationState.FAILED
                self.reason = str(exc)
                self.registered_until = None
                log.warning(
                    "trunk %s: registration to %s failed (%s); retry in %g s",
                    self.target.name,
                    self.target.host,
                    exc,
                    delay,
                )
            else:
                now = datetime.now(UTC)
                if self.state is not RegistrationState.REGISTERED:
                    log.info(
                        "trunk %s registered to %s for %d s",
                        self.target.name,
                        self.target.host,
                        granted,
                    )
                self.state = RegistrationState.REGISTERED
                self.reason = ""
                self.failures = 0
                self.registered_until = now + timedelta(seconds=granted)
                # The floor keeps a carrier granting a few seconds from causing a
                # REGISTER storm.
                delay = max(owner.min_refresh, granted / 2)
            self.next_attempt = datetime.now(UTC) + timedelta(seconds=delay)
            await asyncio.sleep(delay)

    async def _register(self, expires: int) -> int:
        """One REGISTER exchange, answering one challenge (two if the first nonce was
        stale) and one 423; returns the expiry the carrier granted."""
        authorization: tuple[str, str] | None = None
        challenges = 0
        while True:
            response = await self._send(expires, authorization)
            status = response.status
            if 200 <= status < 300:
                return self._granted(response, expires)
            if status in (401, 407):
                header = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
                values = response.headers.values(header)
                if challenges >= (2 if _stale(values) else 1):
                    raise _Refused(f"{status} {response.reason}: credentials rejected")
                challenges += 1
                target = self.target
                try:
                    credentials = authorization_for(
                        values,
                        "REGISTER",
                        str(target.registrar_uri),
                        target.username,
                        target.password,
                    )
                except ValueError as exc:
                    raise _Refused(f"{status} {response.reason}: {exc}") from None
                name = "Authorization" if status == 401 else "Proxy-Authorization"
                authorization = (name, credentials)
                continue
            if status == 423 and expires > 0:
                minimum = _delta_seconds(response.headers.get("Min-Expires"))
                if minimum is not None and minimum > expires:
                    expires = minimum
                    continue
            raise _Refused(f"{status} {response.reason}")

    async def _send(self, expires: int, authorization: tuple[str, str] | None) -> Response:
        target = self.target
        endpoint = self._owner.endpoint
        aor = target.aor
        try:
            host, port = endpoint.transport.sent_by(target.transport)
        except LookupError:
            raise _Refused(f"this server does not listen on {target.transport}") from None
        host = f"[{host}]" if ":" in host else host
        suffix = "" if target.transport == "udp" else f";transport={target.transport}"
        request = Request("REGISTER", target.registrar_uri)
        headers = request.headers
        headers.add("From", f"<{aor}>;tag={new_tag()}")
        headers.add("To", f"<{aor}>")
        headers.add("Call-ID", self._call_id)
        headers.add("CSeq", f"{next(self._cseq)} REGISTER")
        # No user part: the carrier's INVITEs then carry the dialled number only in To,
        # where inbound routing looks when the Request-URI has no user.
        headers.add("Contact", f"<sip:{host}:{port}{suffix}>")
        headers.add("Expires", str(expires))
        if authorization is not None:
            headers.add(*authorization)
        handle = await endpoint.request(request, Peer(target.transport, target.host, target.port))
        # 408 when the transaction times out, 503 when the transport fails.
        return await handle.final()

    def _granted(self, response: Response, asked: int) -> int:
        """The expiry of our Contact in a 2xx (RFC 3261 10.2.4), else its Expires."""
        sent_host, sent_port = self._owner.endpoint.transport.sent_by(self.target.transport)
        try:
            contacts = response.contacts
        except (SipSyntaxError, ValueError):
            contacts = []
        for contact in contacts:
            uri = contact.uri
            if uri.host == sent_host and (uri.port or 5060) == sent_port:
                granted = _delta_seconds(contact.params.get("expires"))
                if granted is not None:
                    return granted
        expires = _delta_seconds(response.headers.get("Expires"))
        return expires if expires is not None else asked


def _stale(challenges: list[str]) -> bool:
    """Whether a challenge says our credentials were right but their nonce too old."""
    for value in challenges:
        with contextlib.suppress(ValueError):
            if parse_auth_params(value.partition(" ")[2]).get("stale", "").lower() == "true":
                return True
    return False


def _delta_seconds(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None


class TrunkRegistrar:
    """Keeps a binding at its carrier for every trunk with ``register`` set, following the
    trunks table. ``poll_interval`` is how soon a provisioning change takes effect."""

    def __init__(
        self,
        db: Database,
        endpoint: SipEndpoint,
        *,
        poll_interval: float = 15.0,
        expires: int = DEFAULT_EXPIRES,
        min_refresh: float = MIN_REFRESH,
        retry_delays: Sequence[float] = RETRY_DELAYS,
        unregister_timeout: float = 2.0,
    ) -> None:
        if not retry_delays:
            raise ValueError("retry_delays must not be empty")
        self.db = db
        self.endpoint = endpoint
        self.poll_interval = poll_interval
        self.expires = expires
        self.min_refresh = min_refresh
        self.retry_delays = tuple(retry_delays)
        self.unregister_timeout = unregister_timeout
        self._bindings: dict[int, _Binding] = {}
        self._poller: asyncio.Task[None] | None = None
        self._reconciling = asyncio.Lock()

    def status(self) -> list[TrunkRegistrationStatus]:
        return [binding.status() for binding in self._bindings.values()]

    async def start(self) -> None:
        await self.reconcile()
        self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def stop(self) -> None:
        """Stop polling and un-register every binding, each within ``unregister_timeout``."""
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        async with self._reconciling:
            bindings = list(self._bindings.values())
            self._bindings.clear()
            await asyncio.gather(*(b.stop(unregister=True) for b in bindings))

    async def reconcile(self) -> None:
        """Make the bindings match the trunks table now."""
        async with self._reconciling:
            async with self.db.session() as session:
                # Across companies on purpose: the server registers every company's trunks.
                rows = await session.scalars(select(Trunk).where(Trunk.register.is_(True)))
                wanted = {t.id: _Target.of(t) for t in rows.all() if t.username and t.password}
            stale = [
                binding
                for trunk_id, binding in self._bindings.items()
                if wanted.get(trunk_id) != binding.target
            ]
            for binding in stale:
                del self._bindings[binding.target.trunk_id]
            # The old binding goes before its replacement starts: with the same AOR and
            # Contact, a late un-REGISTER would remove the new binding.
            await asyncio.gather(*(b.stop(unregister=True) for b in stale))
            for trunk_id, target in wanted.items():
                if trunk_id not in self._bindings:
                    binding = self._bindings[trunk_id] = _Binding(self, target)
                    binding.start()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                await self.reconcile()
            except Exception:
                log.exception("reading the trunks to register failed")
