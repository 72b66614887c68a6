#!/usr/bin/env python3
"""Host-to-guest vsock for the boot test: a Unix socket whose connections become vsock
connections to a port of the QEMU guest.

vhost-device-vsock's `uds` backend (the Firecracker convention) takes host-initiated
connections on its --uds-path socket: the host writes "CONNECT <port>\\n", the backend answers
"OK <host port>\\n", and from then on the stream is the guest's vsock connection. The parent
dials plain Unix sockets, so this bridge listens on one (--listen), does the handshake per
connection and then copies bytes both ways without looking at them. It logs connection events
only, never data.

    vsock-bridge.py --listen run/control.sock --uds run/vm.vsock --port 5000
"""
import argparse
import asyncio
import os
import sys

HANDSHAKE_TIMEOUT_S = 10
MAX_REPLY = 64


def log(msg):
    print(f"vsock-bridge: {msg}", file=sys.stderr, flush=True)


async def pipe(reader, writer):
    try:
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                break
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            if writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, OSError):
            pass


async def serve(client_reader, client_writer, uds, port):
    try:
        guest_reader, guest_writer = await asyncio.wait_for(
            asyncio.open_unix_connection(uds), HANDSHAKE_TIMEOUT_S)
        guest_writer.write(f"CONNECT {port}\n".encode())
        await guest_writer.drain()
        reply = await asyncio.wait_for(guest_reader.readline(), HANDSHAKE_TIMEOUT_S)
        if not reply.startswith(b"OK ") or len(reply) > MAX_REPLY:
            log(f"guest port {port} refused the connection ({reply[:MAX_REPLY]!r})")
            guest_writer.close()
            client_writer.close()
            return
    except (OSError, asyncio.TimeoutError) as e:
        log(f"cannot reach guest port {port} through {uds}: {e!r}")
        client_writer.close()
        return
    await asyncio.gather(pipe(client_reader, guest_writer), pipe(guest_reader, client_writer))
    guest_writer.close()
    client_writer.close()


async def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--listen", required=True, help="Unix socket to create for the host side")
    p.add_argument("--uds", required=True, help="vhost-device-vsock's --uds-path")
    p.add_argument("--port", required=True, type=int, help="the guest's vsock port")
    a = p.parse_args()
    if os.path.exists(a.listen):
        os.unlink(a.listen)
    server = await asyncio.start_unix_server(
        lambda r, w: serve(r, w, a.uds, a.port), path=a.listen)
    log(f"{a.listen} -> guest vsock port {a.port} via {a.uds}")
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
