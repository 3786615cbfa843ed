"""Administration (issue 4): the provider's engineers manage companies; a company's
administrators (and the engineers) manage its users, groups, trunks, numbers, statuses
and voicemail boxes' settings.

The plan file's entry models and write logic (nuage.pbx.provision) serve here too, one
entry at a time: the same validation, the same secrets, the same cross-entry rules. Each
change is one transaction that bumps the directory revision, and this process reloads
its directory at once.
"""

from __future__ import annotations

from nuage.pbx.admin.companies import Companies
from nuage.pbx.admin.groups import Groups
from nuage.pbx.admin.numbers import Numbers
from nuage.pbx.admin.statuses import Statuses
from nuage.pbx.admin.store import AdminStore
from nuage.pbx.admin.trunks import Trunks
from nuage.pbx.admin.users import Users
from nuage.pbx.admin.voicemail import VoicemailBoxes
from nuage.pbx.directory import Directory
from nuage.pbx.location import LocationService
from nuage.store.database import Database

__all__ = ["Administration"]


class Administration:
    def __init__(self, db: Database, directory: Directory, location: LocationService) -> None:
        store = AdminStore(db, directory)
        self.companies = Companies(store)
        self.users = Users(store, location)
        self.trunks = Trunks(store)
        self.numbers = Numbers(store)
        self.statuses = Statuses(store)
        self.groups = Groups(store)
        self.voicemail = VoicemailBoxes(store)
