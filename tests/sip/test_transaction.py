"""The RFC 3261 transaction machines, driven with a fake clock (no sleeping, no sockets)."""

from __future__ import annotations

import pytest

from nuage.sip.message import URI, Headers, Request, Response, make_response
from nuage.sip.peer import Peer
from nuage.sip.transaction import (
    AckReceived,
    AckTimeout,
    Action,
    CancelReceived,
    DeliverResponse,
    InviteClientTransaction,
    InviteServerTransaction,
    NewRequest,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    OverloadError,
    Replay,
    Resend,
    Send,
    State,
    StrayResponse,
    Terminated,
    TimedOut,
    TimerConfig,
    TransactionManager,
    TransportFailed,
)

UDP = Peer("udp", "192.0.2.1", 5060)
TCP = Peer("tcp", "192.0.2.1", 5060, connection_id=7)


def request(
    method: str = "INVITE",
    *,
    branch: str = "z9hG4bKabc",
    seq: int = 1,
    transport: str = "UDP",
    to_tag: str | None = None,
    routes: tuple[str, ...] = (),
) -> Request:
    headers = Headers()
    headers.add("Via", f"SIP/2.0/{transport} 192.0.2.1:5060;branch={branch};rport")
    headers.add("Max-Forwards", "70")
    for route in routes:
        headers.add("Route", route)
    headers.add("From", "<sip:alice@example.com>;tag=from1")
    headers.add("To", "<sip:bob@example.com>" + (f";tag={to_tag}" if to_tag else ""))
    headers.add("Call-ID", "call-1@example.com")
    headers.add("CSeq", f"{seq} {'INVITE' if method == 'ACK' and branch else method}")
    if method == "ACK":
        headers.set("CSeq", f"{seq} ACK")
    return Request(method, URI(user="bob", host="example.com"), headers)


def response(req: Request, status: int, to_tag: str | None = "to1") -> Response:
    resp = make_response(req, status)
    if to_tag and status != 100:
        resp.headers.set("To", f"{resp.headers.get('To')};tag={to_tag}")
    return resp


def sends(actions: list[Action]) -> list[Request | Response]:
    return [action.message for action in actions if isinstance(action, Send)]


def kinds(actions: list[Action]) -> list[type]:
    return [type(action) for action in actions]


def run_until(manager: TransactionManager, end: float) -> list[tuple[float, list[Action]]]:
    """Fire every deadline up to ``end``, as the asyncio adapter would."""
    fired = []
    while (deadline := manager.next_deadline()) is not None and deadline <= end:
        fired.append((deadline, manager.handle_timers(deadline)))
    return fired


# --- INVITE client ---------------------------------------------------------------------------


def test_invite_client_timer_a_doubles_then_timer_b_times_out() -> None:
    manager = TransactionManager()
    invite = request()
    transaction, actions = manager.start_client(invite, UDP, 0.0)
    assert sends(actions) == [invite]
    fired = run_until(manager, 100.0)
    retransmits = [at for at, acts in fired if sends(acts) == [invite]]
    # Timer A: T1, then doubling without cap (RFC 3261 17.1.1.2); Timer B at 64*T1.
    assert retransmits == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    last_at, last = fired[-1]
    assert last_at == 32.0
    assert kinds(last) == [TimedOut, Terminated]
    assert transaction.state is State.TERMINATED
    assert len(manager) == 0
    assert manager.next_deadline() is None


def test_invite_client_over_tcp_does_not_retransmit() -> None:
    manager = TransactionManager()
    invite = request(transport="TCP")
    manager.start_client(invite, TCP, 0.0)
    assert manager.next_deadline() == 32.0
    fired = run_until(manager, 100.0)
    assert [(at, kinds(acts)) for at, acts in fired] == [(32.0, [TimedOut, Terminated])]


def test_invite_client_provisional_stops_timers_and_non_2xx_is_acked() -> None:
    manager = TransactionManager()
    invite = request(routes=("<sip:proxy.example.com;lr>",))
    transaction, _ = manager.start_client(invite, UDP, 0.0)
    ringing = response(invite, 180)
    actions = manager.receive_response(ringing, UDP, 0.2)
    assert actions == [DeliverResponse(transaction, ringing)]
    assert transaction.state is State.PROCEEDING
    assert manager.next_deadline() is None  # neither A nor B runs in Proceeding

    busy = response(invite, 486)
    actions = manager.receive_response(busy, UDP, 1.0)
    assert kinds(actions) == [Send, DeliverResponse, Terminated]
    ack = sends(actions)[0]
    assert isinstance(ack, Request)
    # RFC 3261 17.1.1.3: same Request-URI, top Via, From, Call-ID, Route; To from the response.
    assert ack.method == "ACK"
    assert ack.uri == invite.uri
    assert ack.headers.values("Via") == invite.headers.values("Via")
    assert ack.headers.get("To") == busy.headers.get("To")
    assert ack.headers.get("From") == invite.headers.get("From")
    assert ack.headers.values("Route") == ["<sip:proxy.example.com;lr>"]
    assert ack.headers.get("CSeq") == "1 ACK"
    # Only the ACK, as sent, stays: the transaction (and its INVITE) is over.
    assert len(manager) == 0

    # A retransmitted final is absorbed (not delivered again) and answered with the same ACK.
    assert manager.receive_response(busy, UDP, 2.0) == [Resend(bytes(ack), UDP)]
    # Timer D: at least 32 s over UDP.
    run_until(manager, 32.5)
    assert manager.receive_response(busy, UDP, 32.5) == [Resend(bytes(ack), UDP)]
    run_until(manager, 100.0)
    assert manager.receive_response(busy, UDP, 100.0) == []


def test_invite_client_keeps_whole_when_no_ack_can_be_kept() -> None:
    manager = TransactionManager(max_transactions=1)
    for number in range(4):  # the ACKs kept are bounded by four times the table's size
        refused = request(branch=f"z9hG4bKf{number}")
        manager.start_client(refused, UDP, 0.0)
        manager.receive_response(response(refused, 486), UDP, 0.0)
    assert len(manager) == 0
    last = request(branch="z9hG4bKlast")
    transaction, _ = manager.start_client(last, UDP, 0.0)
    busy = response(last, 486)
    assert kinds(manager.receive_response(busy, UDP, 0.1)) == [Send, DeliverResponse]
    assert transaction.state is State.COMPLETED
    # Past the bound it stays whole and answers from its own ACK until Timer D.
    ack = transaction.last_ack
    assert ack is not None
    assert manager.receive_response(busy, UDP, 2.0) == [Send(ack, UDP)]
    fired = run_until(manager, 100.0)
    assert (32.1, [Terminated(transaction)]) in fired


@pytest.mark.parametrize("status", [302, 404, 486, 503, 603])
def test_invite_client_acks_every_non_2xx_final(status: int) -> None:
    manager = TransactionManager()
    invite = request()
    manager.start_client(invite, UDP, 0.0)
    actions = manager.receive_response(response(invite, status), UDP, 0.1)
    ack = sends(actions)[0]
    assert isinstance(ack, Request) and ack.method == "ACK"


def test_invite_client_over_tcp_terminates_at_once_after_non_2xx() -> None:
    manager = TransactionManager()
    invite = request(transport="TCP")
    manager.start_client(invite, TCP, 0.0)
    actions = manager.receive_response(response(invite, 486), TCP, 0.1)
    assert kinds(actions) == [Send, DeliverResponse, Terminated]  # Timer D is zero
    assert len(manager) == 0


def test_invite_client_passes_2xx_up_without_ack_and_handles_repeats() -> None:
    manager = TransactionManager()
    invite = request()
    transaction, _ = manager.start_client(invite, UDP, 0.0)
    ok = response(invite, 200)
    # The 2xx ends the transaction (RFC 6026's Accepted state is the manager's).
    assert manager.receive_response(ok, UDP, 0.1) == [
        DeliverResponse(transaction, ok),
        Terminated(transaction),
    ]
    assert len(manager) == 0
    # A retransmitted 2xx before the TU ACKed: the TU must see it.
    assert manager.receive_response(ok, UDP, 0.6) == [StrayResponse(ok, UDP)]
    # Once the TU sent its ACK, repeats are answered with that ACK for 64*T1.
    ack = request("ACK", branch="z9hG4bKack", to_tag="to1")
    manager.remember_ack(bytes(ack), ack, UDP, 0.7)
    assert manager.receive_response(ok, UDP, 1.6) == [Resend(bytes(ack), UDP)]
    assert manager.receive_response(ok, UDP, 33.0) == [Resend(bytes(ack), UDP)]
    # A late provisional or non-2xx final with the INVITE's branch is dropped.
    assert manager.receive_response(response(invite, 180), UDP, 1.7) == []
    assert manager.receive_response(response(invite, 486), UDP, 1.8) == []
    # The ACK memo itself expires after 64*T1.
    run_until(manager, 100.0)
    assert manager.receive_response(ok, UDP, 101.0) == [StrayResponse(ok, UDP)]


def test_invite_client_forked_2xx_with_other_tag_goes_to_tu() -> None:
    manager = TransactionManager()
    invite = request()
    manager.start_client(invite, UDP, 0.0)
    manager.receive_response(response(invite, 200, "to1"), UDP, 0.1)
    ack = request("ACK", branch="z9hG4bKack", to_tag="to1")
    manager.remember_ack(bytes(ack), ack, UDP, 0.1)
    fork = response(invite, 200, "to2")
    assert manager.receive_response(fork, UDP, 0.2) == [StrayResponse(fork, UDP)]


def test_response_for_unknown_transaction_is_dropped() -> None:
    manager = TransactionManager()
    assert manager.receive_response(response(request("BYE"), 200), UDP, 0.0) == []
    assert manager.receive_response(response(request(), 486), UDP, 0.0) == []


def test_cancel_timer_gives_up_when_no_final_arrives() -> None:
    manager = TransactionManager()
    invite = request()
    transaction, _ = manager.start_client(invite, UDP, 0.0)
    manager.receive_response(response(invite, 180), UDP, 0.1)
    assert isinstance(transaction, InviteClientTransaction)
    cancel = manager.cancel_request(invite)
    _, actions = manager.start_client(cancel, UDP, 1.0)
    manager.cancel_sent(transaction, 1.0)
    assert sends(actions) == [cancel]
    manager.receive_response(response(cancel, 200), UDP, 1.1)
    fired = run_until(manager, 100.0)
    assert (33.0, [TimedOut(transaction), Terminated(transaction)]) in fired


# --- CANCEL construction ---------------------------------------------------------------------


def test_cancel_request_follows_rfc3261_9_1() -> None:
    invite = request(routes=("<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"))
    cancel = TransactionManager().cancel_request(invite)
    assert cancel.method == "CANCEL"
    assert cancel.uri == invite.uri
    assert cancel.headers.values("Via") == invite.headers.values("Via")
    for name in ("From", "To", "Call-ID"):
        assert cancel.headers.get(name) == invite.headers.get(name)
    assert cancel.headers.get("CSeq") == "1 CANCEL"
    assert cancel.headers.values("Route") == invite.headers.values("Route")


def test_cancel_and_invite_client_transactions_coexist() -> None:
    manager = TransactionManager()
    invite = request()
    invite_tx, _ = manager.start_client(invite, UDP, 0.0)
    cancel = manager.cancel_request(invite)
    cancel_tx, _ = manager.start_client(cancel, UDP, 0.1)
    assert len(manager) == 2
    ok = response(cancel, 200)
    terminated = response(invite, 487)
    assert manager.receive_response(ok, UDP, 0.2) == [
        DeliverResponse(cancel_tx, ok),
        Terminated(cancel_tx),
    ]
    assert DeliverResponse(invite_tx, terminated) in manager.receive_response(terminated, UDP, 0.3)


# --- non-INVITE client -----------------------------------------------------------------------


def test_non_invite_client_timer_e_caps_at_t2_and_timer_f_times_out() -> None:
    manager = TransactionManager()
    bye = request("BYE")
    transaction, _ = manager.start_client(bye, UDP, 0.0)
    assert isinstance(transaction, NonInviteClientTransaction)
    fired = run_until(manager, 100.0)
    retransmits = [at for at, acts in fired if sends(acts)]
    assert retransmits == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert fired[-1] == (32.0, [TimedOut(transaction), Terminated(transaction)])


def test_non_invite_client_proceeding_retransmits_at_t2() -> None:
    manager = TransactionManager()
    options = request("OPTIONS")
    manager.start_client(options, UDP, 0.0)
    manager.receive_response(response(options, 100), UDP, 0.1)
    fired = run_until(manager, 10.0)
    assert [at for at, acts in fired if sends(acts)] == [0.5, 4.5, 8.5]


@pytest.mark.parametrize(("transport", "peer"), [("UDP", UDP), ("TCP", TCP)])
def test_non_invite_client_ends_at_its_final_and_drops_repeats(transport: str, peer: Peer) -> None:
    manager = TransactionManager(TimerConfig(t4=5.0))
    bye = request("BYE", transport=transport)
    transaction, _ = manager.start_client(bye, peer, 0.0)
    ok = response(bye, 200)
    # Timer K's absorbing is the manager's: a final matching no transaction is dropped.
    assert manager.receive_response(ok, peer, 0.1) == [
        DeliverResponse(transaction, ok),
        Terminated(transaction),
    ]
    assert len(manager) == 0
    assert manager.receive_response(ok, peer, 0.6) == []
    assert run_until(manager, 100.0) == []


def test_client_transport_error_fails_the_transaction() -> None:
    manager = TransactionManager()
    bye = request("BYE", transport="TCP")
    transaction, _ = manager.start_client(bye, TCP, 0.0)
    assert manager.send_error(bye, 0.1) == [TransportFailed(transaction), Terminated(transaction)]
    assert len(manager) == 0


def test_client_table_is_bounded() -> None:
    manager = TransactionManager(max_transactions=1)
    manager.start_client(request("BYE"), UDP, 0.0)
    with pytest.raises(OverloadError):
        manager.start_client(request("BYE", branch="z9hG4bKother"), UDP, 0.0)


# --- INVITE server ---------------------------------------------------------------------------


def new_server(manager: TransactionManager, req: Request, peer: Peer = UDP) -> Action:
    actions = manager.receive_request(req, peer, 0.0)
    return actions[-1]


def test_invite_server_sends_100_after_200ms_when_tu_is_silent() -> None:
    manager = TransactionManager()
    invite = request()
    event = new_server(manager, invite)
    assert isinstance(event, NewRequest)
    fired = run_until(manager, 1.0)
    assert len(fired) == 1 and fired[0][0] == 0.2
    trying = sends(fired[0][1])[0]
    assert isinstance(trying, Response) and trying.status == 100
    assert "tag=" not in (trying.headers.get("To") or "")


def test_invite_server_sends_100_at_once_when_configured() -> None:
    manager = TransactionManager(TimerConfig(trying_delay=0))
    actions = manager.receive_request(request(), UDP, 0.0)
    assert kinds(actions) == [Send, NewRequest]


def test_invite_server_tu_answer_suppresses_the_100() -> None:
    manager = TransactionManager()
    invite = request()
    event = new_server(manager, invite)
    assert isinstance(event, NewRequest)
    ringing = response(invite, 180)
    assert manager.respond(event.transaction, ringing, 0.1) == [Send(ringing, UDP)]
    assert run_until(manager, 10.0) == []


def test_invite_server_retransmission_gets_latest_provisional() -> None:
    manager = TransactionManager()
    invite = request()
    event = new_server(manager, invite)
    assert isinstance(event, NewRequest)
    # A retransmission before the TU spoke gets a 100 at once.
    trying = sends(manager.receive_request(invite, UDP, 0.05))
    assert [m.status for m in trying if isinstance(m, Response)] == [100]
    ringing = response(invite, 180)
    manager.respond(event.transaction, ringing, 0.1)
    assert manager.receive_request(invite, UDP, 0.5) == [Send(ringing, UDP)]


def test_invite_server_non_2xx_timer_g_retransmits_until_ack_then_timer_i() -> None:
    manager = TransactionManager()
    invite = request()
    event = new_server(manager, invite)
    assert isinstance(event, NewRequest)
    transaction = event.transaction
    busy = response(invite, 486)
    assert manager.respond(transaction, busy, 1.0) == [Send(busy, UDP)]
    fired = run_until(manager, 9.0)
    # Timer G: T1 doubling, capped at T2.
    assert [at for at, acts in fired if sends(acts) == [busy]] == [1.5, 2.5, 4.5, 8.5]
    # A retransmitted INVITE gets the final response again.
    assert manager.receive_request(invite, UDP, 9.0) == [Send(busy, UDP)]
    ack = request("ACK", to_tag="to1")  # same branch as the INVITE: its non-2xx ACK
    assert manager.receive_request(ack, UDP, 9.1) == []
    assert transaction.state is State.CONFIRMED
    assert manager.receive_request(ack, UDP, 9.2) == []  # Confirmed absorbs ACKs
    assert manager.receive_request(invite, UDP, 9.3) == []
    assert run_until(manager, 100.0) == [(14.1, [Terminated(transaction)])]  # Timer I = T4


def test_invite_server_timer_h_ends_without_ack() -> None:
    manager = TransactionManager()
    invite = request()
    event = new_server(manager, invite)
    assert isinstance(event, NewRequest)
    manager.respond(event.transaction, response(invite, 486), 0.0)
    fired = run_until(manager, 100.0)
    assert fired[-1] == (32.0, [Terminated(event.transaction)])
    assert len(manager) == 0


def test_invite_server_over_tcp_no_timer_g_and_timer_i_zero() -> None:
    manager = TransactionManager()
    invite = request(transport="TCP")
    event = new_server(manager, invite, TCP)
    assert isinstance(event, NewRequest)
    manager.respond(event.transaction, response(invite, 486), 0.0)
    assert manager.next_deadline() == 32.0  # Timer H only
    ack = request("ACK", transport="TCP", to_tag="to1")
    assert manager.receive_request(ack, TCP, 0.1) == [Terminated(event.transaction)]


def test_invite_server_2xx_is_retransmitted_until_the_ack_and_accepted_absorbs() -> None:
    manager = TransactionManager()
    invite = request()
    event = new_server(manager, invite)
    assert isinstance(event, NewRequest)
    transaction = event.transaction
    ok = response(invite, 200)
    manager.respond(transaction, ok, 0.0)
    assert transaction.state is State.ACCEPTED
    fired = run_until(manager, 2.0)
    assert [at for at, acts in fired if sends(acts) == [ok]] == [0.5, 1.5]
    # RFC 6026: a retransmitted INVITE in Accepted is absorbed, not a new request.
    assert manager.receive_request(invite, UDP, 2.1) == []
    ack = request("ACK", branch="z9hG4bKnewbranch", to_tag="to1")
    # The ACK ends the transaction: only the 2xx's To tag stays, until Timer L.
    assert manager.receive_request(ack, UDP, 2.2) == [
        AckReceived(ack, UDP, transaction),
        Terminated(transaction),
    ]
    assert len(manager) == 0
    # No more 2xx retransmissions; the INVITE's retransmissions are still absorbed.
    assert run_until(manager, 30.0) == []
    assert manager.receive_request(invite, UDP, 30.0) == []
    # A CANCEL crossing the 2xx learns its To tag.
    cancel = new_server(manager, request("CANCEL"))
    assert isinstance(cancel, CancelReceived)
    assert cancel.invite is None and cancel.acknowledged_tag == "to1"
    # A late duplicate ACK still reaches the TU, with no transaction.
    assert manager.receive_request(ack, UDP, 31.0) == [AckReceived(ack, UDP, None)]
    # After Timer L (64*T1 from the ACK) the same INVITE would be new.
    run_until(manager, 100.0)
    assert kinds(manager.receive_request(invite, UDP, 101.0))[-1] is NewRequest


def test_cancel_after_the_ack_of_a_whole_invite_transaction_learns_its_tag() -> None:
    # An RFC 2543 INVITE (no magic cookie) keeps its whole transaction until Timer L.
    manager = TransactionManager()
    invite = request(branch="old1")
    event = new_server(manager, invite)
    assert isinstance(event, NewRequest)
    manager.respond(event.transaction, response(invite, 200), 0.0)
    manager.receive_request(request("ACK", branch="old2", to_tag="to1"), UDP, 0.1)
    assert len(manager) == 1
    cancel = new_server(manager, request("CANCEL", branch="old1"))
    assert isinstance(cancel, CancelReceived)
    assert cancel.invite is event.transaction and cancel.acknowledged_tag == "to1"


def test_invite_server_2xx_without_ack_reports_ack_timeout() -> None:
    manager = TransactionManager(TimerConfig(t1=0.1, t2=0.4))
    invite = request()
    event = new_server(manager, invite)
    assert isinstance(event, NewRequest)
    manager.respond(event.transaction, response(invite, 200), 0.0)
    fired = run_until(manager, 100.0)
    assert [at for at, acts in fired if sends(acts)] == pytest.approx(
        [0.1, 0.3, 0.7, 1.1, 1.5, 1.9, 2.3, 2.7, 3.1, 3.5, 3.9, 4.3, 4.7, 5.1, 5.5, 5.9, 6.3]
    )
    assert fired[-1] == (
        pytest.approx(6.4),
        [AckTimeout(event.transaction), Terminated(event.transaction)],
    )


def test_server_response_transport_error_ends_the_transaction() -> None:
    manager = TransactionManager()
    invite = request(transport="TCP")
    event = new_server(manager, invite, TCP)
    assert isinstance(event, NewRequest)
    ok = response(invite, 200)
    manager.respond(event.transaction, ok, 0.0)
    assert kinds(manager.send_error(ok, 0.1)) == [TransportFailed, Terminated]
    assert len(manager) == 0


# --- non-INVITE server -----------------------------------------------------------------------


def test_non_invite_server_absorbs_then_repeats_final_until_timer_j() -> None:
    manager = TransactionManager()
    bye = request("BYE", to_tag="to1")
    event = new_server(manager, bye)
    assert isinstance(event, NewRequest)
    transaction = event.transaction
    assert isinstance(transaction, NonInviteServerTransaction)
    assert manager.receive_request(bye, UDP, 0.1) == []  # Trying absorbs
    ok = response(bye, 200)
    # Over for the TU at once; only the response is kept, to answer retransmissions.
    assert manager.respond(transaction, ok, 0.2) == [Send(ok, UDP), Terminated(transaction)]
    assert manager.receive_request(bye, UDP, 0.3) == [Replay(bytes(ok), bye, UDP)]
    assert manager.receive_request(bye, UDP, 32.1) == [Replay(bytes(ok), bye, UDP)]
    assert run_until(manager, 100.0) == [(32.2, [])]  # Timer J ends it silently
    # After Timer J the same request is new again.
    assert kinds(manager.receive_request(bye, UDP, 101.0)) == [NewRequest]


def test_a_final_response_that_could_not_be_sent_is_tried_again_for_a_retransmission() -> None:
    manager = TransactionManager()
    register = request("REGISTER")
    event = new_server(manager, register)
    assert isinstance(event, NewRequest)
    challenge = response(register, 401)
    manager.respond(event.transaction, challenge, 0.0)
    assert manager.send_error(challenge, 0.5) == []
    assert len(manager) == 0
    assert manager.receive_request(register, UDP, 0.6) == [Replay(bytes(challenge), register, UDP)]


def test_an_rfc_2543_request_keeps_its_whole_transaction_until_timer_j() -> None:
    """Without an RFC 3261 branch the key is the request's identity: no replay."""
    manager = TransactionManager()
    options = request("OPTIONS", branch="old-style")
    event = new_server(manager, options)
    assert isinstance(event, NewRequest)
    ok = response(options, 200)
    assert manager.respond(event.transaction, ok, 0.0) == [Send(ok, UDP)]
    assert len(manager) == 1 and len(manager.replays) == 0
    assert manager.receive_request(options, UDP, 0.1) == [Send(ok, UDP)]
    run_until(manager, 40.0)
    assert len(manager) == 0


def test_replays_do_not_fill_the_transaction_table() -> None:
    """A REGISTER flood leaves a replay per request for 32 s: they have a bound of their
    own, four times the table's; past it a completed transaction stays whole (and counts
    in the table) until Timer J."""
    manager = TransactionManager(max_transactions=1)
    for number in range(4):
        register = request("REGISTER", branch=f"z9hG4bKflood{number}")
        event = new_server(manager, register)
        assert isinstance(event, NewRequest)
        manager.respond(event.transaction, response(register, 200), 0.0)
        assert len(manager) == 0
    fifth = request("REGISTER", branch="z9hG4bKflood4")
    event = new_server(manager, fifth)
    assert isinstance(event, NewRequest)
    ok = response(fifth, 200)
    assert manager.respond(event.transaction, ok, 0.0) == [Send(ok, UDP)]
    assert len(manager) == 1
    assert manager.receive_request(fifth, UDP, 0.1) == [Send(ok, UDP)]
    replayed = request("REGISTER", branch="z9hG4bKflood0")
    assert kinds(manager.receive_request(replayed, UDP, 0.1)) == [Replay]
    run_until(manager, 40.0)
    assert len(manager) == 0 and len(manager.replays) == 0


def test_non_invite_server_proceeding_repeats_provisional() -> None:
    manager = TransactionManager()
    options = request("OPTIONS")
    event = new_server(manager, options)
    assert isinstance(event, NewRequest)
    trying = response(options, 100)
    manager.respond(event.transaction, trying, 0.0)
    assert manager.receive_request(options, UDP, 0.5) == [Send(trying, UDP)]


def test_non_invite_server_over_tcp_timer_j_is_zero() -> None:
    manager = TransactionManager()
    bye = request("BYE", transport="TCP")
    event = new_server(manager, bye, TCP)
    assert isinstance(event, NewRequest)
    ok = response(bye, 200)
    assert manager.respond(event.transaction, ok, 0.0) == [
        Send(ok, TCP),
        Terminated(event.transaction),
    ]


def test_server_table_is_bounded_with_stateless_503() -> None:
    manager = TransactionManager(max_transactions=1)
    manager.receive_request(request("OPTIONS"), UDP, 0.0)
    actions = manager.receive_request(request("OPTIONS", branch="z9hG4bKx"), UDP, 0.0)
    reply = sends(actions)
    assert len(actions) == 1 and isinstance(reply[0], Response) and reply[0].status == 503


# --- matching --------------------------------------------------------------------------------


def test_cancel_matches_invite_by_branch_but_is_its_own_transaction() -> None:
    manager = TransactionManager()
    invite = request()
    event = new_server(manager, invite)
    assert isinstance(event, NewRequest)
    cancel = TransactionManager().cancel_request(invite)
    actions = manager.receive_request(cancel, UDP, 1.0)
    assert len(actions) == 1
    received = actions[0]
    assert isinstance(received, CancelReceived)
    assert received.invite is event.transaction
    assert received.transaction is not event.transaction
    ok = response(cancel, 200)
    manager.respond(received.transaction, ok, 1.1)
    # A retransmitted CANCEL is answered by its own replay, not passed up again.
    assert manager.receive_request(cancel, UDP, 1.2) == [Replay(bytes(ok), cancel, UDP)]


def test_cancel_with_unknown_branch_matches_nothing() -> None:
    manager = TransactionManager()
    new_server(manager, request())
    stray = TransactionManager().cancel_request(request(branch="z9hG4bKother"))
    received = manager.receive_request(stray, UDP, 0.0)[-1]
    assert isinstance(received, CancelReceived) and received.invite is None


def test_server_matching_uses_branch_sent_by_and_method() -> None:
    manager = TransactionManager()
    invite = request()
    new_server(manager, invite)
    other_host = request()
    other_host.headers.set("Via", "SIP/2.0/UDP 192.0.2.99:5060;branch=z9hG4bKabc")
    assert kinds(manager.receive_request(other_host, UDP, 0.0)) == [NewRequest]
    same_branch_other_method = request("OPTIONS")
    assert kinds(manager.receive_request(same_branch_other_method, UDP, 0.0)) == [NewRequest]
    assert len(manager) == 3


def test_rfc2543_requests_without_magic_cookie_still_match() -> None:
    manager = TransactionManager()
    options = request("OPTIONS", branch="oldstyle")
    event = new_server(manager, options)
    assert isinstance(event, NewRequest)
    assert manager.receive_request(options, UDP, 0.1) == []
    assert isinstance(event.transaction, NonInviteServerTransaction)


def test_ack_without_transaction_goes_to_tu() -> None:
    manager = TransactionManager()
    ack = request("ACK", branch="z9hG4bKlone", to_tag="x")
    assert manager.receive_request(ack, UDP, 0.0) == [AckReceived(ack, UDP, None)]


def test_manager_schedules_the_earliest_deadline_of_all() -> None:
    manager = TransactionManager()
    manager.start_client(request("BYE", branch="z9hG4bK1"), UDP, 0.0)
    manager.start_client(request("BYE", branch="z9hG4bK2"), UDP, 0.2)
    assert manager.next_deadline() == 0.5
    manager.handle_timers(0.5)
    assert manager.next_deadline() == 0.7
    assert isinstance(manager.receive_request(request(branch="z9hG4bK3"), UDP, 0.6)[-1], NewRequest)
    assert manager.next_deadline() == 0.7
    assert manager.handle_timers(0.1) == []  # nothing due


def test_invite_server_is_an_invite_machine() -> None:
    manager = TransactionManager()
    event = new_server(manager, request())
    assert isinstance(event, NewRequest)
    assert isinstance(event.transaction, InviteServerTransaction)
    assert not event.transaction.final_sent
