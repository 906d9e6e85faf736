"""
How long N simultaneous connects to the FastAGI port take, with the listen
backlog given (Twisted's default is 50; a connect the kernel's accept queue
had no room for is retried by the client's TCP after about a second).

    python -m bench.agi_backlog --backlog 50 --connections 500
    python -m bench.agi_backlog --backlog 1024 --connections 500

The server is the real FastAGIFactory in a child process; the clients open
every connection at once, then each sends a FastAGI environment with the key.
Run it in a network namespace of its own (port 4573 must be free).
"""

from __future__ import annotations

import argparse
import selectors
import socket
import subprocess
import sys
import time

PORT = 4573
KEY = "bench-key"

SERVER = f"""
import sys
from twisted.internet import reactor
from switchboard.agi import FastAGIFactory
backlog = int(sys.argv[1])
def handler(session):
    return session.set_variable("SWITCHBOARD_RESULT", "OK")
reactor.listenTCP({PORT}, FastAGIFactory({{"alarm": handler}}, key={KEY!r}), backlog=backlog,
                  interface="127.0.0.1")
reactor.callWhenRunning(lambda: print("listening", flush=True))
reactor.run()
"""

ENV = (f"agi_network: yes\nagi_network_script: alarm?key={KEY}\n"
       "agi_channel: PJSIP/87650001-00000001\nagi_callerid: 87650001\n\n").encode()


def burst(n: int):
    """
    Open C{n} connections at once (non-blocking connects in a tight loop),
    then play Asterisk on each: the environment, one reply. Returns, per
    connection, C{(connected after, served after, served)} in seconds.
    """
    sel = selectors.DefaultSelector()
    start = time.monotonic()
    state = {}
    for _ in range(n):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", PORT))
        state[s] = {"connected": None, "buffer": b"", "step": 0}
        sel.register(s, selectors.EVENT_WRITE)
    left = n
    deadline = start + 30
    while left and time.monotonic() < deadline:
        for key, events in sel.select(timeout=1):
            s, st = key.fileobj, state[key.fileobj]
            now = time.monotonic() - start
            if st["connected"] is None:
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    st.update(connected=now, served=now, ok=False)
                    sel.unregister(s)
                    left -= 1
                    continue
                st["connected"] = now
                s.send(ENV)
                sel.modify(s, selectors.EVENT_READ)
                continue
            data = s.recv(4096)
            st["buffer"] += data
            if st["step"] == 0 and b"\n" in st["buffer"]:
                st["ok"] = st["buffer"].startswith(b"SET VARIABLE")
                st["step"] = 1
                s.send(b"200 result=1\n")
            if not data:
                st["served"] = now
                sel.unregister(s)
                left -= 1
    for s in state:
        s.close()
    return [(st["connected"] or 99, st.get("served", 99), st.get("ok", False))
            for st in state.values()]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backlog", type=int, default=1024)
    parser.add_argument("--connections", type=int, default=500)
    args = parser.parse_args(argv)
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(args.backlog)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "listening"
        results = burst(args.connections)
    finally:
        server.terminate()
        server.wait(10)
    connects = sorted(r[0] for r in results)
    served = sorted(r[1] for r in results)
    slow = sum(1 for c in connects if c > 0.5)
    print(f"backlog {args.backlog}: {len(results)} connections, "
          f"{sum(r[2] for r in results)} served; connect median {connects[len(connects) // 2]:.3f} s, "
          f"max {connects[-1]:.3f} s, {slow} over 0.5 s; last call served after {served[-1]:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
