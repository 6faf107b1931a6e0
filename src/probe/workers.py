# bgswap's worker probe, run on a container by its own Python (`[invenio]
# python`): is each Celery worker unit connected to the broker its
# invenio.cfg names? For each unit: its main process (`systemctl show -p
# MainPID`) and that process's descendants, their sockets (/proc/PID/fd), the
# established TCP connections among them (/proc/net/tcp, tcp6), and which of
# the broker endpoints (resolved here, as the worker resolves them) they
# reach. Prints JSON; reads, never writes, never prints a value of
# invenio.cfg (it is not read here: the endpoints come in argv).
# argv[1]: base64 of JSON {units, systemctl, brokers: [[host, port], ...]}.
import base64, json, os, socket, subprocess, sys

a = json.loads(base64.b64decode(sys.argv[1]))


def descendants(root):
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", encoding="utf-8") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def socket_inodes(pids):
    found, denied = set(), []
    for p in pids:
        try:
            fds = os.listdir(f"/proc/{p}/fd")
        except PermissionError:
            denied.append(p)
            continue
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{p}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                found.add(link[8:-1])
    return found, denied


def established():
    """inode -> [(remote ip, remote port)] of every established TCP socket."""
    conns = {}
    for fam, path in ((socket.AF_INET, "/proc/net/tcp"), (socket.AF_INET6, "/proc/net/tcp6")):
        try:
            with open(path, encoding="ascii") as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) < 10 or f[3] != "01":
                continue
            ip_hex, port_hex = f[2].split(":")
            raw = bytes.fromhex(ip_hex)
            if sys.byteorder == "little":  # each 32-bit word in host order
                raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            ip = socket.inet_ntop(fam, raw)
            if ip.startswith("::ffff:"):
                ip = ip[7:]
            conns.setdefault(f[9], []).append((ip, int(port_hex, 16)))
    return conns


targets = {}
unresolved = []
for host, port in a["brokers"]:
    try:
        for info in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP):
            targets[(info[4][0], port)] = f"{host}:{port}"
    except OSError as e:
        unresolved.append(f"{host}: {e}")

conns = established()
units = {}
for unit in a["units"]:
    r = {"pid": 0, "connected": [], "error": None}
    try:
        out = subprocess.run(a["systemctl"] + ["show", "-p", "MainPID", "--value", unit],
                             stdin=subprocess.DEVNULL, capture_output=True, text=True,
                             timeout=20).stdout.strip()
        r["pid"] = int(out or "0")
    except (OSError, ValueError, subprocess.SubprocessError) as e:
        r["error"] = f"cannot read its MainPID: {e}"
        units[unit] = r
        continue
    if r["pid"] > 0:
        inodes, denied = socket_inodes(descendants(r["pid"]))
        if denied and not inodes:
            r["error"] = f"cannot read the sockets of pid {denied[0]}: permission denied (probe as root)"
        hit = set()
        for ino in inodes:
            for remote in conns.get(ino, []):
                if remote in targets:
                    hit.add(targets[remote])
        r["connected"] = sorted(hit)
    units[unit] = r
print(json.dumps({"units": units, "unresolved": unresolved}))
