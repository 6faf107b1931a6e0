"""Loads invenio.cfg files the way Flask's from_pyfile does (exec as Python)
and prints their upper-case settings as JSON, so tests can compare what the
files *mean*, not only their bytes. Callables (the LDAP filter lambdas) are
called with the user name "USER" so that what they build can be compared.

usage: python3 load_cfg.py FILE[=ENVFILE] [FILE[=ENVFILE] ...]
    ->  {"FILE": {"KEY": value, ...}}

With =ENVFILE, the INVENIO_<KEY> variables of that env file (the units'
EnvironmentFile=) override KEY after the file is run, as invenio-config's
environment loader does (a value that reads as a Python literal is that
literal, anything else the string).
"""
import json
import sys


def plain(v):
    if callable(v):
        return {"called": plain(v("USER"))}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return repr(v)


def env_file(path):
    """KEY=VALUE lines as systemd reads the simple ones: comments and blank
    lines skipped, one pair of surrounding quotes taken off."""
    env = {}
    with open(path, encoding="utf-8") as f:
        for line in f.read().splitlines():
            line = line.strip()
            if not line or line[0] in "#;" or "=" not in line:
                continue
            n, _, v = line.partition("=")
            v = v.strip()
            if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
                v = v[1:-1]
            env[n.strip()] = v
    return env


out = {}
for arg in sys.argv[1:]:
    path, _, envpath = arg.partition("=")
    scope = {"__file__": path}
    with open(path, "rb") as f:
        exec(compile(f.read(), path, "exec"), scope)
    if envpath:
        import ast
        for n, v in env_file(envpath).items():
            if n.startswith("INVENIO_"):
                try:
                    scope[n[len("INVENIO_"):]] = ast.literal_eval(v)
                except (ValueError, SyntaxError):
                    scope[n[len("INVENIO_"):]] = v
    out[path] = {k: plain(v) for k, v in scope.items() if k.isupper()}
print(json.dumps(out, sort_keys=True))
