"""Loads invenio.cfg files the way Flask's from_pyfile does (exec as Python)
and prints their upper-case settings as JSON, so tests can compare what the
files *mean*, not only their bytes. Callables (the LDAP filter lambdas) are
called with the user name "USER" so that what they build can be compared.

usage: python3 load_cfg.py FILE [FILE ...]  ->  {"FILE": {"KEY": value, ...}}
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


out = {}
for path in sys.argv[1:]:
    scope = {"__file__": path}
    with open(path, "rb") as f:
        exec(compile(f.read(), path, "exec"), scope)
    out[path] = {k: plain(v) for k, v in scope.items() if k.isupper()}
print(json.dumps(out, sort_keys=True))
