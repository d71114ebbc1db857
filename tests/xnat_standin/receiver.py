"""The stand-in's DICOM receiver, shaped like XNAT's: DCMTK's storescp takes the C-STOREs into a
spool folder; this module files each instance by the routing text XNAT reads (Patient Comments
(0010,4000), then Study Comments (0032,4000): "Project: P Subject: S Session: E", keys in any
case, values [\\w-]*) and builds the session once the study has been idle for the configured
interval (XNAT: 5 minutes by default). Instances of one study arriving further apart than the
interval are built as two sessions, as XNAT does. Debian has no Python DICOM network library,
hence storescp in front (run as a child process and stopped with the stand-in).
"""

import os
import re
import subprocess
import threading
import time

ROUTE_KEYS = ("Project", "Subject", "Session")
ROUTE_RE = {k: re.compile(r"\b%s:\s*([\w-]*)" % k, re.I) for k in ROUTE_KEYS}
SETTLE_S = 0.5      # a spool file unchanged this long has been written completely
GIVE_UP_S = 30.0    # a spool file that is still no DICOM after this long is dropped


def _die_with_parent():
    """storescp gets SIGTERM when the stand-in dies, even by SIGKILL (Linux prctl)."""
    import ctypes
    import signal
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def routing(info):
    """(project, subject, session) from the comments, or ("", "", "") when none routes."""
    for text in (info.get("patient_comments", ""), info.get("study_comments", "")):
        if ROUTE_RE["Project"].search(text or ""):
            return tuple((ROUTE_RE[k].search(text) or [None, ""])[1] for k in ROUTE_KEYS)
    return ("", "", "")


class Receiver:
    def __init__(self, spool, port, ae, idle_s, parse, build, log):
        """parse(name, bytes) -> info or None; build(project, subject, session, study_uid,
        [(info, bytes)]) files one burst of a study; log(text)."""
        self.spool, self.idle_s, self.parse, self.build, self.log = spool, idle_s, parse, build, log
        os.makedirs(spool, exist_ok=True)
        self.proc = subprocess.Popen(["/usr/bin/storescp", "-aet", ae, "-od", spool, str(port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     preexec_fn=_die_with_parent)
        self.pending = {}   # (project, subject, session, study_uid) -> {"files", "last"}
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        log("DICOM receiver %s on port %d, sessions built after %.1f s idle" % (ae, port, idle_s))

    def stop(self):
        self.stopped.set()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def _run(self):
        while not self.stopped.wait(0.2):
            try:
                self._collect(time.time())
                self._build_idle(time.time())
            except Exception as e:  # never let the thread die
                self.log("DICOM receiver: %s" % e)

    def _collect(self, now):
        for name in sorted(os.listdir(self.spool)):
            path = os.path.join(self.spool, name)
            try:
                mtime = os.stat(path).st_mtime
            except FileNotFoundError:
                continue
            if now - mtime < SETTLE_S:
                continue
            with open(path, "rb") as f:
                data = f.read()
            info = self.parse(name, data)
            if info is None:
                if now - mtime > GIVE_UP_S:
                    os.remove(path)
                continue
            os.remove(path)
            key = routing(info) + (info["study_uid"],)
            burst = self.pending.setdefault(key, {"files": [], "last": mtime})
            burst["files"].append((info, data))
            burst["last"] = max(burst["last"], mtime)

    def _build_idle(self, now):
        for key, burst in list(self.pending.items()):
            if now - burst["last"] >= self.idle_s:
                del self.pending[key]
                self.build(*key, burst["files"])
