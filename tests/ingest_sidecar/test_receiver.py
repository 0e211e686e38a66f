"""The receive thread on a real UDP socket."""

from __future__ import annotations

import socket
import time

from ingest_sidecar.receiver import MAX_DATAGRAM, UdpReceiver, granted_rcvbuf, open_udp_socket


def test_receives_every_datagram_up_to_64k_and_drains_on_stop() -> None:
    sock = open_udp_socket("127.0.0.1", 0)
    assert granted_rcvbuf(sock) >= 4 * 1024 * 1024
    got: list[bytes] = []
    receiver = UdpReceiver(sock, got.append)
    receiver.start()
    big = b"x" * (MAX_DATAGRAM - 28)  # the largest IPv4 UDP payload
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
        for i in range(500):
            out.sendto(b"m%d:1|c" % i, receiver.address)
        out.sendto(big, receiver.address)
    receiver.stop()  # right away: queued datagrams are still read
    assert len(got) == 501
    assert got[-1] == big
    assert receiver.failed is None


def test_stop_wakes_an_idle_receiver_quickly() -> None:
    receiver = UdpReceiver(open_udp_socket("127.0.0.1", 0), lambda _d: None)
    receiver.start()
    time.sleep(0.05)
    started = time.monotonic()
    receiver.stop()
    assert time.monotonic() - started < 1.0


def test_feed_errors_are_counted_and_reception_goes_on() -> None:
    got: list[bytes] = []

    def explode(data: bytes) -> None:
        if data == b"boom":
            raise RuntimeError("bug")
        got.append(data)

    receiver = UdpReceiver(open_udp_socket("127.0.0.1", 0), explode)
    receiver.start()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
        out.sendto(b"boom", receiver.address)
        out.sendto(b"a:1|c", receiver.address)
    deadline = time.monotonic() + 2
    while not got and time.monotonic() < deadline:
        time.sleep(0.01)
    receiver.stop()
    assert got == [b"a:1|c"]
    assert receiver.feed_errors == 1 and isinstance(receiver.last_feed_error, RuntimeError)
    assert receiver.failed is None
