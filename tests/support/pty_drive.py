"""Runs a command on a pseudo-terminal and answers its prompts, so tests can
drive bgswap's interactive flow as an operator would.

usage: python3 pty_drive.py SCRIPT -- COMMAND [ARG ...]
SCRIPT is JSON: a list of steps, each {"expect": "text"} (wait, bounded, for
text to appear in the output), {"next": "text"} (the same, but only output
after the end of the last text waited for counts: a prompt drawn again), {"send": "text"} (type it; "\\r" is Enter),
{"signal": "INT"} (send SIGINT to the terminal's foreground process group, as
Ctrl-C does), {"sleep": seconds}. Prints the whole output, then a last line
`pty-exit=N` (N = exit code, or -signal). Exits 2 when an expected text does
not show up within 60 s.
"""
import json
import os
import pty
import select
import signal
import sys
import time

script = json.loads(sys.argv[1])
cmd = sys.argv[sys.argv.index("--") + 1:]
pid, fd = pty.fork()
if pid == 0:
    os.environ["TERM"] = "xterm"
    os.execvp(cmd[0], cmd)

out = b""
mark = 0


def pump(timeout):
    global out
    r, _, _ = select.select([fd], [], [], timeout)
    if r:
        try:
            data = os.read(fd, 65536)
        except OSError:
            return False
        if not data:
            return False
        out += data
    return True


status = None
for step in script:
    if "expect" in step or "next" in step:
        text = step.get("expect", step.get("next"))
        want = text.encode()
        start = 0 if "expect" in step else mark
        deadline = time.time() + 60
        while out.find(want, start) < 0 and time.time() < deadline:
            if not pump(0.1):
                break
        at = out.find(want, start)
        if at < 0:
            sys.stdout.write(out.decode(errors="replace"))
            print(f"\npty-drive: {text!r} did not appear")
            os.kill(pid, signal.SIGKILL)
            sys.exit(2)
        mark = at + len(want)
    elif "send" in step:
        os.write(fd, step["send"].encode())
    elif "signal" in step:
        os.killpg(os.tcgetpgrp(fd), getattr(signal, "SIG" + step["signal"]))
    elif "sleep" in step:
        end = time.time() + step["sleep"]
        while time.time() < end:
            pump(0.05)

deadline = time.time() + 300
while time.time() < deadline:
    if not pump(0.1):
        break
_, st = os.waitpid(pid, 0)
code = os.waitstatus_to_exitcode(st)
sys.stdout.write(out.decode(errors="replace"))
print(f"\npty-exit={code}")
