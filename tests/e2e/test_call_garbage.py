"""A finished call is freed by reference counting alone: none of its objects wait for the
garbage collector in a reference cycle. Under load such cycles (the legs pointing at
each other, the relay's paired channels, a call and its browser ends) piled up hundreds
of objects per call, and the collection that finally freed them paused the server for
seconds (bench/RESULTS.md section 13)."""

from __future__ import annotations

import asyncio
import gc
from collections import Counter
from pathlib import Path

import pytest

from e2e.test_browser_transfers import hung_up, place, take
from e2e.test_call_control import ids
from e2e.test_sip_websocket import browser, nuage
from e2e.test_transfer import BOB_TONE, CAROL_TONE
from nuage.pbx.calls import Call
from peers.webrtc import loopback_only

pytestmark = pytest.mark.timeout(60)

# The modules whose objects a call makes: none of them may be left to the collector.
CALL_MODULES = ("nuage.pbx.", "nuage.media.", "nuage.sip.dialog")


async def test_a_finished_browser_call_leaves_no_reference_cycle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loopback_only(monkeypatch)
    async with (
        nuage(tmp_path) as server,
        browser(server, "1002") as lucas,
        browser(server, "1003") as camille,
    ):
        assert (await lucas.register()).status == 200
        assert (await camille.register()).status == 200
        control = server.control
        assert control is not None
        company, lucas_id = ids(server, "1002")
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            for _ in range(2):
                placing = asyncio.ensure_future(place(lucas, "1003", BOB_TONE))
                answered = await take(camille, CAROL_TONE)
                placed = await placing
                await placed.hears(CAROL_TONE)
                await asyncio.gather(
                    control.hang_up(company, lucas_id, placed.call_id),
                    hung_up(lucas),
                    hung_up(camille),
                )
                await placed.media.close()
                await answered.media.close()
            # The calls' tasks and the relay's sockets wind down.
            await asyncio.sleep(1.0)
            gc.collect()
            left = Counter(
                f"{type(thing).__module__}.{type(thing).__qualname__}"
                for thing in gc.garbage
                if type(thing).__module__.startswith(CALL_MODULES)
            )
            # Nor kept alive by something that outlives them (a transaction's callback).
            collected = {id(thing) for thing in gc.garbage}
            alive = [o for o in gc.get_objects() if isinstance(o, Call) and id(o) not in collected]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
    assert not left, left.most_common(60)
    assert alive == [], alive
