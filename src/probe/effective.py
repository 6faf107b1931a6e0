# bgswap's effective-configuration probe, run on a container by its own
# Python (`[invenio] python`). Evaluates invenio.cfg as Invenio does, in the
# environment the units give it (Environment= and EnvironmentFile=, read with
# `systemctl show`), then the INVENIO_* overrides, and prints JSON saying, for
# each swapped key, which role's names appear in the value in effect, and
# which keys an INVENIO_* variable shadows. It prints no value but the
# allowed-hosts lists (host names, never secrets).
# argv[1]: base64 of JSON {cfg_path, candidate (true: the text to evaluate is
# on standard input, never in the command line; false: read cfg_path), units,
# systemctl, container_env (run in a container: its environment is in effect),
# prefix (taken off each key to find it in the config: "INVENIO_"), keys, allowed_keys (the allowed-hosts keys), roles: {prod: [names],
# dev: [names]}}.
import base64, json, os, re, shlex, subprocess, sys

a = json.loads(base64.b64decode(sys.argv[1]))
# Standard input: invenio.cfg's candidate, then (after a NUL) the env file's.
data = sys.stdin.buffer.read().decode("utf-8") if a["candidate"] or a.get("candidate_env") else ""
cfg_text, _, env_text = data.partition("\0")
candidate = cfg_text if a["candidate"] else None
# `[invenio] env_file`: bgswap swaps its INVENIO_* too, so they shadow nothing;
# its candidate replaces the file on disk; the units must read it.
env_file = a.get("env_file")
managed = set()
# In a container (`docker compose exec`, the compose shape), the environment
# in effect is the container's own: this process runs in it. There the
# swapped keys are INVENIO_* variables: `prefix` is taken off to find the
# config key, and a variable shadows nothing (it is the setting itself).
container = a.get("container_env", False)
prefix = a.get("prefix", "")
env = dict(os.environ) if container else {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
files = []
# One `systemctl show` for every unit: their properties one after another,
# merged in unit order as systemd applies them to each (one call, not one
# per unit: a host's CPU is shared).
out = subprocess.run(a["systemctl"] + ["show", "-p", "Environment", "-p", "EnvironmentFiles", "--"]
                     + a["units"], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                     timeout=20).stdout if a["units"] else ""
for line in out.splitlines():
    k, _, v = line.partition("=")
    if k == "Environment":
        for item in shlex.split(v):
            n, _, val = item.partition("=")
            env[n] = val
    elif k == "EnvironmentFiles":
        files += [m.group(1) for m in re.finditer(r"(\S+) \(ignore_errors=(?:yes|no)\)", v)]
env_file_read = False
env_file_error = None
for f in files:
    env_file_read = env_file_read or f == env_file
    try:
        if f == env_file and a.get("candidate_env"):
            text = env_text
        else:
            text = open(f, encoding="utf-8").read()
    except OSError as e:
        if f == env_file:
            env_file_error = e.strerror or "unreadable"
        continue
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;" or "=" not in line:
            continue
        n, _, val = line.partition("=")
        val = val.strip()
        if len(val) >= 2 and val[0] == val[-1] and val[0] in "'\"":
            val = val[1:-1]
        env[n.strip()] = val
        if f == env_file:
            managed.add(n.strip())
        else:
            # A later file's value wins over the managed one's.
            managed.discard(n.strip())
os.environ.clear()
os.environ.update(env)
src = candidate if candidate is not None else open(a["cfg_path"], encoding="utf-8").read()
scope = {"__file__": a["cfg_path"], "__name__": "config"}
exec(compile(src, a["cfg_path"], "exec"), scope)
config = {k: v for k, v in scope.items() if k.isupper()}
shadowed = []
for n, val in env.items():
    if n.startswith("INVENIO_") and n != "INVENIO_INSTANCE_PATH":
        key = n[len("INVENIO_"):]
        import ast
        try:
            config[key] = ast.literal_eval(val)
        except (ValueError, SyntaxError):
            config[key] = val
        if key in a["keys"] and not container and n not in managed:
            shadowed.append(key)


def flat(v):
    if callable(v):
        try:
            return flat(v("bgswap-probe-user"))
        except Exception:  # noqa: BLE001
            return ""
    if isinstance(v, (list, tuple, set)):
        return " ".join(flat(x) for x in v)
    if isinstance(v, dict):
        return " ".join(flat(k) + " " + flat(x) for k, x in v.items())
    return str(v)


def has(text, name):
    return re.search(r"(?<![A-Za-z0-9.-])" + re.escape(name) + r"(?![A-Za-z0-9-]|\.[A-Za-z0-9])", text) is not None


keys = {}
for k in a["keys"]:
    ck = k[len(prefix):] if prefix and k.startswith(prefix) else k
    if ck not in config:
        keys[k] = None
        continue
    text = flat(config[ck])
    keys[k] = {r: any(has(text, n) for n in names) for r, names in a["roles"].items()}
# Each allowed-hosts key in effect (APP_ALLOWED_HOSTS, TRUSTED_HOSTS) with its
# list; a key unset, None or of another type is left out (nothing checked).
# A string is one entry, as werkzeug takes it.
allowed = {}
for k in a["allowed_keys"]:
    v = config.get(k)
    if isinstance(v, str):
        v = [v]
    if isinstance(v, (list, tuple, set, frozenset)):
        allowed[k] = [str(h) for h in v]
# Each backing service a swapped service key names in effect (the host of a
# URL, a host:port item) that invenio.cfg does not write out literally (the
# static probes dial those, speaking each service's protocol): built from
# names, or from the environment. Dialled from here: a TCP connection, 1 s
# at most each and 3 s in all (the probe's own bound is longer).
import socket, time
unreachable = []
tried = set()
deadline = time.monotonic() + 3
for k in a.get("dial", []):
    ck = k[len(prefix):] if prefix and k.startswith(prefix) else k
    if ck not in config:
        continue
    for m in re.finditer(r"(?:^|[@/\s])([A-Za-z0-9][A-Za-z0-9.-]*):(\d{1,5})(?=[/\s?]|$)", flat(config[ck])):
        host, port = m.group(1), int(m.group(2))
        if (host, port) in tried or port > 65535 or f"{host}:{port}" in src:
            continue
        tried.add((host, port))
        left = deadline - time.monotonic()
        if left <= 0:
            unreachable.append(f"{k} in effect names {host}:{port} (not dialled: the probe's 3 s were used up)")
            continue
        try:
            socket.create_connection((host, port), timeout=min(1, left)).close()
        except OSError as e:
            unreachable.append(f"{k} in effect names {host}:{port} ({e.strerror or type(e).__name__})")
print(json.dumps({"shadowed": sorted(shadowed), "keys": keys, "allowed_hosts": allowed,
                  "unreachable": unreachable,
                  "env_file_unread": bool(env_file) and not container and not env_file_read,
                  "env_file_error": env_file_error}))
