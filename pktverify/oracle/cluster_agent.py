"""The cluster lab's agent: one process inside each namespace the lab builds (a pod, a node, the
off-cluster client), run as a script (``python3 cluster_agent.py IDENTITY PORTS ADDRESSES``), importing
nothing from pktverify so that starting one costs a bare interpreter.

It listens on every TCP and UDP port the lab's flows may reach (``PORTS``: JSON
``[[tcp ports], [udp ports]]``, bound to 0.0.0.0 as a pod's server is) and answers each
connection or datagram with its own identity and the source address it saw, so the client
learns who received its connection and whether it was masqueraded from the answer itself.
Every receipt is also printed as an event line (``{"ev": "got", ...}``): a UDP datagram whose
answer is lost still says who received it.

Commands arrive on stdin, one JSON object a line, and each is answered by one JSON line on
stdout (tagged ``"re": id``):

* ``connect``: open one TCP connection or send one UDP datagram from ``src:sport`` to
  ``dst:dport`` carrying the probe's token, and report the answer (who, the source it saw)
  or the error (``timeout``, ``ECONNREFUSED``, ...);
* ``drain``: the connections conntrack confirmed in this namespace since the last drain whose
  destination (after NAT) is one of its own addresses (``/proc/net/nf_conntrack``: an entry is
  confirmed only once its first packet passed every netfilter hook and was delivered): who
  received a SYN whose answer never came back, and from which source;
A node's agent is also its userspace kube-proxy when ``PROXIES`` (4th argument) lists proxy
ports: each connection (datagram) to one is relayed from the node to one of its endpoints,
chosen uniformly at random, and the endpoint's answer relayed back; without endpoints the
connection is closed unanswered.

* ``forget``: empty every ``-m recent`` list and kube-proxy's nft ``affinity-`` sets (session
  affinity), so each probe of a flow is a new client as the verifier's flow is.
"""

import errno
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time

IDENT = sys.argv[1]
TCP_PORTS, UDP_PORTS = json.loads(sys.argv[2])
LOCAL = set(json.loads(sys.argv[3]))      # this namespace's own addresses
PROXIES = json.loads(sys.argv[4]) if len(sys.argv) > 4 else []   # [[port, proto, [[ip, port], ...]], ...]
_LOCK = threading.Lock()


def emit(rec):
    with _LOCK:
        sys.stdout.write(json.dumps(rec) + "\n")
        sys.stdout.flush()


def _answer(peer):
    return (json.dumps({"who": IDENT, "peer": peer[0]}) + "\n").encode()


def _accept_each(sock, handle, *args):
    """Accept connections on ``sock`` forever, each handled by ``handle(conn, peer, *args)`` in a thread."""
    while True:
        try:
            conn, peer = sock.accept()
        except OSError:
            continue
        threading.Thread(target=handle, args=(conn, peer, *args), daemon=True).start()


def _serve_tcp(sock):
    _accept_each(sock, _handle_tcp)


def _handle_tcp(conn, peer):
    try:
        conn.settimeout(2.0)
        data = b""
        while not data.endswith(b"\n") and len(data) < 200:
            chunk = conn.recv(200)
            if not chunk:
                break
            data += chunk
        emit({"ev": "got", "proto": "tcp", "token": data.decode("ascii", "replace").strip(), "who": IDENT,
              "peer": peer[0]})
        conn.sendall(_answer(peer))
    except OSError:
        pass
    finally:
        conn.close()


def _serve_udp(sock):
    while True:
        try:
            data, peer = sock.recvfrom(200)
        except OSError:
            continue
        emit({"ev": "got", "proto": "udp", "token": data.decode("ascii", "replace").strip(), "who": IDENT,
              "peer": peer[0]})
        try:
            sock.sendto(_answer(peer), peer)
        except OSError:
            pass


def _listen():
    # A proxy port is the proxy's (kube-proxy holds it), not a server's.
    proxied = {(port, proto) for port, proto, _eps in PROXIES}
    for port in [p for p in TCP_PORTS if (p, "tcp") not in proxied]:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", port))
        s.listen(128)
        threading.Thread(target=_serve_tcp, args=(s,), daemon=True).start()
    for port in [p for p in UDP_PORTS if (p, "udp") not in proxied]:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", port))
        threading.Thread(target=_serve_udp, args=(s,), daemon=True).start()
    for port, proto, endpoints in PROXIES:
        tcp = proto == "tcp"
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", port))
        if tcp:
            s.listen(128)
        target = _proxy_tcp if tcp else _proxy_udp
        threading.Thread(target=target, args=(s, [tuple(e) for e in endpoints]), daemon=True).start()


def _proxy_tcp(sock, endpoints):
    _accept_each(sock, lambda conn, _peer, eps: _relay_tcp(conn, eps), endpoints)


def _read_line(sock):
    data = b""
    while not data.endswith(b"\n") and len(data) < 400:
        chunk = sock.recv(400)
        if not chunk:
            break
        data += chunk
    return data


def _relay_tcp(conn, endpoints):
    """kube-proxy's userspace proxier: a new connection from this node to a random endpoint, relayed;
    without endpoints (or when the endpoint cannot be reached) the client's connection is closed."""
    try:
        conn.settimeout(2.0)
        token = _read_line(conn)
        if not endpoints:
            return
        ip, port = random.choice(endpoints)
        with socket.create_connection((ip, port), timeout=1.0) as back:
            back.sendall(token)
            conn.sendall(_read_line(back))
    except OSError:
        pass
    finally:
        conn.close()


def _proxy_udp(sock, endpoints):
    while True:
        try:
            data, peer = sock.recvfrom(400)
        except OSError:
            continue
        threading.Thread(target=_relay_udp, args=(sock, data, peer, endpoints), daemon=True).start()


def _relay_udp(sock, data, peer, endpoints):
    if not endpoints:
        return
    back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        back.settimeout(1.0)
        back.connect(tuple(random.choice(endpoints)))
        back.send(data)
        sock.sendto(back.recv(400), peer)
    except OSError:
        pass
    finally:
        back.close()


def _errname(exc):
    return errno.errorcode.get(exc.errno, str(exc.errno)) if exc.errno else type(exc).__name__


def connect(cmd):
    """One probe; the answer's who/peer or the error."""
    tcp = cmd["proto"] == "tcp"
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((cmd["src"], cmd["sport"]))
        except OSError as exc:
            return {"ok": False, "err": "bind " + _errname(exc)}
        s.settimeout(cmd["timeout"])
        token = (cmd["token"] + "\n").encode()
        try:
            s.connect((cmd["dst"], cmd["dport"]))
            if tcp:
                s.sendall(token)
            else:
                s.send(token)
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(200)
                if not chunk:
                    break
                data += chunk
        except socket.timeout:
            return {"ok": False, "err": "timeout"}
        except OSError as exc:
            if exc.errno == errno.EPERM:
                # A local hook dropped it (DROP and REJECT alike): a REJECT's answer (its ICMP or
                # RST) still arrives as the socket's pending error, which tells the two apart.
                time.sleep(min(cmd["timeout"], 0.2))
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    return {"ok": False, "err": errno.errorcode.get(err, str(err))}
            return {"ok": False, "err": _errname(exc)}
        if not data:          # accepted, then closed without an answer (a proxy without endpoints)
            return {"ok": False, "err": "ECONNRESET"}
        try:
            got = json.loads(data.decode())
        except ValueError:
            return {"ok": False, "err": "garbled answer %r" % data[:60]}
        return {"ok": True, "who": got["who"], "peer": got["peer"]}
    finally:
        if tcp:       # no TIME_WAIT left behind: every probe uses a port of its own anyway
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()


_SNAPSHOT = set()


def _conntrack():
    """This namespace's connections as (key, delivered here, orig src, proto, delivered port)."""
    out = []
    try:
        with open("/proc/net/nf_conntrack") as f:
            lines = f.read().splitlines()
    except OSError:
        return out
    for line in lines:
        words = line.split()
        if len(words) < 4 or words[0] != "ipv4" or words[2] not in ("tcp", "udp"):
            continue
        pairs = [w.split("=", 1) for w in words if "=" in w]
        src = [v for k, v in pairs if k == "src"]
        dst = [v for k, v in pairs if k == "dst"]
        sport = [v for k, v in pairs if k == "sport"]
        dport = [v for k, v in pairs if k == "dport"]
        if len(src) < 2 or len(sport) < 2:
            continue
        key = (words[2], src[0], dst[0], sport[0], dport[0])
        # The reply's source is where the connection was delivered (after DNAT): here if it is ours.
        # Not a connection to itself: conntrack confirms that one on the way out (POSTROUTING),
        # before its INPUT hooks had their say, so its entry proves no delivery.
        out.append((key, src[1] in LOCAL and src[0] not in LOCAL, src[0], words[2], int(sport[1])))
    return out


def drain(_cmd):
    """Connections delivered to this namespace since the last drain (conntrack confirms an entry
    only once its first packet passed every hook: a martian, a DROP or a lost packet leaves none)."""
    global _SNAPSHOT
    entries = _conntrack()
    seen = [[src, proto, port] for key, here, src, proto, port in entries if here and key not in _SNAPSHOT]
    _SNAPSHOT = {e[0] for e in entries}
    return {"ok": True, "seen": seen}


def forget(_cmd):
    folder = "/proc/net/xt_recent"
    if os.path.isdir(folder):
        for name in os.listdir(folder):
            with open(os.path.join(folder, name), "w") as f:
                f.write("/\n")
    # kube-proxy's nftables mode keeps affinity in sets (``affinity-*`` of table ip kube-proxy)
    listed = subprocess.run(["nft", "-j", "list", "sets", "ip"], capture_output=True, text=True, timeout=30)
    for item in json.loads(listed.stdout or "{}").get("nftables", []) if listed.returncode == 0 else ():
        s = item.get("set")
        if s and s.get("table") == "kube-proxy" and s.get("name", "").startswith("affinity-"):
            subprocess.run(["nft", "flush", "set", "ip", "kube-proxy", s["name"]], capture_output=True, timeout=30)
    return {"ok": True}


def main():
    _listen()
    emit({"ev": "ready", "who": IDENT})
    ops = {"connect": connect, "drain": drain, "forget": forget}
    for line in sys.stdin:
        cmd = json.loads(line)
        res = ops[cmd["op"]](cmd)
        res["re"] = cmd["id"]
        emit(res)


if __name__ == "__main__":
    main()
