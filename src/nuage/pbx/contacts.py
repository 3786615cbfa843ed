"""The company directory as the app shows it (F5): search colleagues by name or
extension, accent- and case-insensitively ("ele" finds "Élodie"), and favorites (F4)."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from nuage.pbx.directory import Directory
from nuage.store.database import Database
from nuage.store.models import Favorite, User


def folded(text: str) -> str:
    """``text`` without accents, case folded: what a search compares."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _spelled_in(wanted: str, name: str, starts: tuple[int, ...] | None = None) -> bool:
    """Whether the letters of ``wanted`` appear in that order in ``name``, from the start
    of one of its words: a hurried "ele" still finds "Élodie". ``starts``: where the
    name's words start (_word_starts), when known."""
    for start in _word_starts(name) if starts is None else starts:
        if name[start] != wanted[0]:
            continue
        rest = iter(name[start + 1 :])
        if all(letter in rest for letter in wanted[1:]):
            return True
    return False


def _word_starts(name: str) -> tuple[int, ...]:
    """The first position and every one that follows a space."""
    return tuple(i for i in range(len(name)) if i == 0 or name[i - 1] == " ")


@dataclass(frozen=True, slots=True)
class _Entry:
    name: str  # folded
    words: tuple[str, ...]
    starts: tuple[int, ...]  # where its words start
    extension: str
    email: str
    user: User


def _searchable(directory: Directory, company_id: int) -> list[_Entry]:
    """The company's users with their folded names, made once per loaded directory:
    folding every name on every search was most of its cost."""
    return directory.derived(
        ("contacts.search", company_id),
        lambda: [
            _Entry(name, tuple(name.split()), _word_starts(name), user.extension, user.email, user)
            for user in directory.users_of(company_id)
            for name in (folded(user.name),)
        ],
    )


def search(directory: Directory, company_id: int, query: str, limit: int) -> list[User]:
    """Colleagues whose name starts with the query, has a word starting with it, contains
    it, or spells it from a word's start (in that order of rank), or whose extension or
    email starts with it."""
    wanted = folded(query.strip())
    if not wanted:
        return directory.users_of(company_id)[:limit]
    ranked: list[tuple[int, str, User]] = []
    for entry in _searchable(directory, company_id):
        name = entry.name
        if name.startswith(wanted) or entry.extension.startswith(wanted):
            rank = 0
        elif any(word.startswith(wanted) for word in entry.words):
            rank = 1
        elif wanted in name or entry.email.startswith(wanted):
            rank = 2
        elif _spelled_in(wanted, name, entry.starts):
            rank = 3
        else:
            continue
        ranked.append((rank, name, entry.user))
    ranked.sort(key=lambda entry: (entry[0], entry[1]))
    return [user for _, _, user in ranked[:limit]]


class Favorites:
    def __init__(self, db: Database, directory: Directory) -> None:
        self._db = db
        self._directory = directory

    async def of(self, company_id: int, user_id: int) -> list[User]:
        """The user's favorites still in the company, in the order they were added."""
        async with self._db.session() as session:
            rows = await session.execute(
                select(Favorite.favorite_user_id)
                .where(Favorite.user_id == user_id)
                .order_by(Favorite.created_at, Favorite.id)
            )
            ids = list(rows.scalars())
        found = (self._directory.user_by_id(company_id, favorite) for favorite in ids)
        return [user for user in found if user is not None]

    async def add(self, user_id: int, favorite_user_id: int) -> None:
        """Idempotent: a favorite already there stays where it is."""
        try:
            async with self._db.transaction() as session:
                exists = await session.scalar(
                    select(Favorite.id).where(
                        Favorite.user_id == user_id, Favorite.favorite_user_id == favorite_user_id
                    )
                )
                if exists is None:
                    session.add(
                        Favorite(
                            user_id=user_id,
                            favorite_user_id=favorite_user_id,
                            created_at=datetime.now(UTC),
                        )
                    )
        except IntegrityError:
            # The same star from another device at the same moment: it is there now.
            pass

    async def remove(self, user_id: int, favorite_user_id: int) -> None:
        async with self._db.transaction() as session:
            await session.execute(
                delete(Favorite).where(
                    Favorite.user_id == user_id, Favorite.favorite_user_id == favorite_user_id
                )
            )
