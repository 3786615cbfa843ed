"""Database tables: every row below a company carries its company_id.

The schema is created and changed only by the Alembic migrations in store/migrations;
these models must describe exactly what the migrations build (a test compares them).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "Base",
    "CallRecord",
    "Company",
    "DirectoryRevision",
    "IvrMenu",
    "Number",
    "Recording",
    "Registration",
    "Status",
    "Trunk",
    "TrunkAddress",
    "User",
    "UtcDateTime",
]

# Deterministic constraint names, so that later migrations can refer to them on both backends.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend.

    SQLite has no time zone type and would hand back naive values; storing naive UTC
    there and re-attaching UTC on the way out keeps comparisons with `now` correct.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime; pass an aware datetime (UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime(), list[str]: JSON()}


class Company(Base):
    __tablename__ = "companies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # The SIP domain, also the digest realm of its users.
    domain: Mapped[str] = mapped_column(String(253), unique=True)
    # ISO 3166 alpha-2: the country used to read numbers dialled without a country code.
    country: Mapped[str] = mapped_column(String(2))
    language: Mapped[str] = mapped_column(String(8))
    # Outbound policy against toll fraud; see nuage.pbx.numbering.OutboundPolicy.
    allowed_countries: Mapped[list[str]] = mapped_column(default=list)
    blocked_prefixes: Mapped[list[str]] = mapped_column(default=list)
    max_external_calls: Mapped[int] = mapped_column(Integer)
    # What the parties hear when a call's recording starts: "beep" or "voice" (a
    # sentence in the company's language, and another when it stops).
    recording_announcement: Mapped[str] = mapped_column(
        String(8), default="beep", server_default="beep"
    )


class User(Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("company_id", "extension"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    extension: Mapped[str] = mapped_column(String(16))
    # The app login, hence unique across companies.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    # Digest secrets H(extension:domain:sip_password); the SIP password itself is not kept.
    sip_ha1_md5: Mapped[str] = mapped_column(String(32))
    sip_ha1_sha256: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16), default="user")
    # The status the user chose (F2); None: the company's default, its first "ring"
    # status ("Available"). A removed status puts its users back on the default.
    status_id: Mapped[int | None] = mapped_column(ForeignKey("statuses.id", ondelete="SET NULL"))


class Status(Base):
    """A status a user can choose in the app (F2), with what it does to calls to them
    (F3). Defined per company by the plan file; `position` orders the app's menu."""

    __tablename__ = "statuses"
    __table_args__ = (UniqueConstraint("company_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"))
    # A slug ("available", "dnd"): how the plan and the API name the status.
    key: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(100))
    # "#rrggbb", or None: the app's own colour.
    colour: Mapped[str | None] = mapped_column(String(7))
    position: Mapped[int] = mapped_column(Integer)
    # What a new call to a user in this status does: "ring" (their devices ring),
    # "voicemail" (to their voicemail box), "forward" (to forward_to) or "busy" (486).
    behaviour: Mapped[str] = mapped_column(String(16))
    # With "forward": a colleague's extension or an E.164 number.
    forward_to: Mapped[str | None] = mapped_column(String(16))
    # Pause the user in their ACD groups while in this status (applied once groups exist).
    pause_acd: Mapped[bool] = mapped_column(Boolean, default=False)


class Trunk(Base):
    __tablename__ = "trunks"
    __table_args__ = (UniqueConstraint("company_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    host: Mapped[str] = mapped_column(String(253), index=True)
    port: Mapped[int] = mapped_column(Integer)
    transport: Mapped[str] = mapped_column(String(8))
    # Registration to the carrier needs the clear password: a carrier's digest challenge
    # names its own realm, so an HA1 cannot be precomputed.
    username: Mapped[str | None] = mapped_column(String(200))
    password: Mapped[str | None] = mapped_column(String(200))
    register: Mapped[bool] = mapped_column(Boolean, default=False)
    caller_id: Mapped[str | None] = mapped_column(String(32))
    addresses: Mapped[list[TrunkAddress]] = relationship(
        lazy="selectin", cascade="all, delete-orphan", order_by="TrunkAddress.address"
    )

    @property
    def inbound_addresses(self) -> list[str]:
        """Source IP addresses whose requests are accepted as coming from this trunk."""
        return [a.address for a in self.addresses]


class TrunkAddress(Base):
    """One source address of an IP-authenticated trunk.

    A table rather than a JSON list so that an inbound request's source address is found
    with an index instead of a scan of every company's trunks.
    """

    __tablename__ = "trunk_addresses"
    __table_args__ = (UniqueConstraint("trunk_id", "address"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trunk_id: Mapped[int] = mapped_column(ForeignKey("trunks.id", ondelete="CASCADE"))
    address: Mapped[str] = mapped_column(String(45), index=True)


class Number(Base):
    __tablename__ = "numbers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    company_id: Mapped[int] = mapped_column(
        ForeignKey("companies.id", ondelete="CASCADE"), index=True
    )
    # E.164; a number reaches exactly one company, whichever trunk it arrives on.
    number: Mapped[str] = mapped_column(String(16), unique=True)
    # The extension the calls go to.
    route: Mapped[str] = mapped_column(String(16))


class IvrMenu(Base):
    """A voice menu ("press 1 for English, 2 for French") reached at its own extension.

    The caller hears `prompt`, in `language` (None: the company's), and keys a choice;
    no key within `timeout_seconds`, or a key not in `keys`, plays the prompt again, up to
    `attempts` plays in all; then the call goes to `fallback`, or, without one, hears
    "goodbye" and is hung up.
    """

    __tablename__ = "ivr_menus"
    __table_args__ = (UniqueConstraint("company_id", "extension"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    # Shares the company's numbering plan with users: never the extension of a user.
    extension: Mapped[str] = mapped_column(String(16))
    # A prompt name of nuage.media.prompts (PROMPT_NAMES).
    prompt: Mapped[str] = mapped_column(String(64), default="ivr_language")
    language: Mapped[str | None] = mapped_column(String(8))
    timeout_seconds: Mapped[float] = mapped_column(Float, default=5.0)
    attempts: Mapped[int] = mapped_column(Integer, default=3)
    # Key ("0"-"9", "*", "#") -> the extension (a user or another menu) it leads to.
    keys: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    fallback: Mapped[str | None] = mapped_column(String(16))


class Group(Base):
    """A group of users reached at its own extension (F18-F23, P6): a call to it rings
    its members; its voicemail box takes what they do not answer. Groups grow queue
    semantics (strategies, agent login, overflow) with the ACD engine."""

    __tablename__ = "groups"
    __table_args__ = (UniqueConstraint("company_id", "extension"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    # Shares the company's numbering plan with users and menus.
    extension: Mapped[str] = mapped_column(String(16))
    members: Mapped[list[GroupMember]] = relationship(
        lazy="selectin", cascade="all, delete-orphan", order_by="GroupMember.user_id"
    )

    @property
    def member_ids(self) -> list[int]:
        return [member.user_id for member in self.members]


class GroupMember(Base):
    __tablename__ = "group_members"

    group_id: Mapped[int] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Registration(Base):
    __tablename__ = "registrations"
    __table_args__ = (UniqueConstraint("user_id", "contact"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    contact: Mapped[str] = mapped_column(Text)
    # Where the REGISTER came from: requests to the contact go back there (NAT, RFC 3581).
    transport: Mapped[str] = mapped_column(String(8))
    source_host: Mapped[str] = mapped_column(String(253))
    source_port: Mapped[int] = mapped_column(Integer)
    # The connection of a TCP/TLS/WebSocket client; meaningless after a restart.
    connection_id: Mapped[str | None] = mapped_column(String(100))
    call_id: Mapped[str] = mapped_column(String(255))
    cseq: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    user_agent: Mapped[str | None] = mapped_column(String(255))
    # +sip.instance (RFC 5626): identifies the device across contact changes.
    instance_id: Mapped[str | None] = mapped_column(String(255))


class DirectoryRevision(Base):
    """One row: bumped by every provisioning change (see migration 0002)."""

    __tablename__ = "directory_revision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revision: Mapped[int] = mapped_column(Integer)


class CallRecord(Base):
    __tablename__ = "call_records"
    __table_args__ = (Index(None, "company_id", "started_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"))
    call_id: Mapped[str] = mapped_column(String(255))
    direction: Mapped[str] = mapped_column(String(8))  # internal, inbound, outbound
    caller: Mapped[str] = mapped_column(String(64))
    caller_name: Mapped[str] = mapped_column(String(200), default="")
    callee: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime]
    answered_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    # None while the call is in progress; answered, missed, busy, failed, cancelled, rejected.
    outcome: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(200), default="")
    # Records outlive the users they mention: removing a user keeps the company's history.
    caller_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    callee_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    # Call quality (ITU-T G.107 MOS from the parties' RTCP): None when no report came.
    mos_average: Mapped[float | None] = mapped_column(Float)
    mos_worst: Mapped[float | None] = mapped_column(Float)


class Recording(Base):
    """A recording of part of a call: a stereo WAV in the data directory, fsynced before
    this row is written. Only its owner (who started it) may listen to it."""

    __tablename__ = "recordings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"))
    call_record_id: Mapped[int] = mapped_column(
        ForeignKey("call_records.id", ondelete="CASCADE"), index=True
    )
    owner_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    # Relative to the data directory.
    path: Mapped[str] = mapped_column(String(500))
    started_at: Mapped[datetime]
    duration_ms: Mapped[int] = mapped_column(Integer)
    # Why it stopped: "user", "limit" (the five minutes), "hangup", "error".
    stopped_by: Mapped[str] = mapped_column(String(16))


class AppSession(Base):
    """A login to the app (or an API client): the user's refresh token and the access
    token issued with it, both kept only as SHA-256 hashes. Refreshing replaces both;
    logging out revokes the session."""

    __tablename__ = "app_sessions"

    # A random id, also the first part of both tokens: the lookup key.
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    access_hash: Mapped[str] = mapped_column(String(64))
    access_expires_at: Mapped[datetime]
    refresh_hash: Mapped[str] = mapped_column(String(64))
    refresh_expires_at: Mapped[datetime]
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class Favorite(Base):
    """A colleague a user starred (F4): shown on the home screen with their presence."""

    __tablename__ = "favorites"
    __table_args__ = (UniqueConstraint("user_id", "favorite_user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    favorite_user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime]


class VoicemailBox(Base):
    """A voicemail box (F17, P5): a user's own (`user_id` set), or a group's (`group_id`
    set; listed to its members only). An owner without a row has a box with the defaults
    below; the row is made when a message is first left or a setting changes. Its
    messages are WAV files in the data directory."""

    __tablename__ = "voicemail_boxes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"))
    # The owner of a personal box, or the group of a group's box: exactly one is set.
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), unique=True
    )
    group_id: Mapped[int | None] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), unique=True
    )
    # Takes messages; a disabled box is as if there were none (calls are refused, 480).
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # argon2 hash of the PIN asked when listening from another phone; None: no PIN.
    pin_hash: Mapped[str | None] = mapped_column(String(200))
    # The owner's own greeting (relative to the data directory); None: the default one.
    greeting_path: Mapped[str | None] = mapped_column(String(500))
    max_seconds: Mapped[int] = mapped_column(Integer, default=180)
    # Each new message is mailed to `email`, None: the owner's own address.
    send_email: Mapped[bool] = mapped_column(Boolean, default=True)
    email: Mapped[str | None] = mapped_column(String(254))
    attach_audio: Mapped[bool] = mapped_column(Boolean, default=True)


class VoicemailMessage(Base):
    """A message left in a box: a mono 8 kHz WAV fsynced before this row is written."""

    __tablename__ = "voicemail_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"))
    box_id: Mapped[int] = mapped_column(
        ForeignKey("voicemail_boxes.id", ondelete="CASCADE"), index=True
    )
    # Who called (number as shown, and name when known).
    caller: Mapped[str] = mapped_column(String(64))
    caller_name: Mapped[str] = mapped_column(String(200), default="")
    # Relative to the data directory.
    path: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime]
    duration_ms: Mapped[int] = mapped_column(Integer)
    # When it was first listened to (through the app or a phone); None: new.
    heard_at: Mapped[datetime | None]


class VoicemailNotification(Base):
    """The mail telling of a message (an outbox row): written in the message's own
    transaction, so no message misses its mail, and kept until the message is deleted.
    Pending while `next_attempt_at` is set; then either `sent_at` or `failed_at` is."""

    __tablename__ = "voicemail_notifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"))
    # A deleted message needs no mail any more: its notification goes with it.
    message_id: Mapped[int] = mapped_column(
        ForeignKey("voicemail_messages.id", ondelete="CASCADE"), unique=True
    )
    # The box's settings when the message was left.
    recipient: Mapped[str] = mapped_column(String(254))
    attach_audio: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime]
    # Tries so far, counted when one starts (a crash mid-send counts too).
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # When to try next; a sender that takes the row moves it on by its lease, so that
    # nodes sharing the database do not send it twice. None once sent or failed.
    next_attempt_at: Mapped[datetime | None] = mapped_column(index=True)
    sent_at: Mapped[datetime | None]
    failed_at: Mapped[datetime | None]
    # The last failure, as the mail server put it.
    last_error: Mapped[str | None] = mapped_column(String(500))
