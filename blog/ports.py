"""Whether a local port is free, for the development servers (`invoke serve`: the blog, its
comments and the newsletter's endpoint check before they start, so that another program's
answer is never taken for theirs).

Contract: `port_in_use(port, host="127.0.0.1")` is True if another socket holds host:port (a
listener, or a bound socket), as a bind shows; a socket left in TIME_WAIT does not count.
"""

from __future__ import annotations

import os
import socket


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True if another socket holds host:port (a listener, or a bound socket), as a bind shows."""
    with socket.socket() as sock:
        if os.name != "nt":  # a socket left in TIME_WAIT does not count; a listener still does
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


__all__ = ["port_in_use"]
