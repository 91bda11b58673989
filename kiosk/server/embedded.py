"""The embedded backend: the reference server as a child process of a station, on loopback.

The station starts `kiosk serve --embedded`; this module then opens (and on first run seeds) the
demo plant, enrolls the local station, binds a free loopback port and tells the parent where it is
and which token to use on one line of stdout. It stops when the parent closes its stdin, so a
crashed station never leaves an orphan server behind.
"""

from __future__ import annotations

import json
import socket
import sys
import threading

import uvicorn

from kiosk.server.app import ServerConfig, create_app, open_service


def serve_embedded(config: ServerConfig, station_name: str, work_center: str) -> None:
    svc = open_service(config)
    token = svc.local_station_token(station_name, work_center)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(svc), log_level="warning", access_log=False, lifespan="on")
    )

    def stop_when_parent_leaves() -> None:
        sys.stdin.read()
        server.should_exit = True

    threading.Thread(target=stop_when_parent_leaves, daemon=True).start()
    sys.stdout.write(json.dumps({"url": f"http://127.0.0.1:{port}", "token": token}) + "\n")
    sys.stdout.flush()
    server.run(sockets=[sock])
