"""The stand-in's DICOM receiver, shaped like XNAT's: DCMTK's storescp takes the C-STOREs into a
spool folder and hands each instance on, which the stand-in files into a prearchive session the
way XNAT's CStoreService does (GradualDicomImporter: project, subject and session from the
routing text in Patient Comments (0010,4000), then Study Comments (0032,4000): "Project: P
Subject: S Session: E", keys in any case, values [\\w-]*). The session is built once it has
been idle for the rebuilder's interval and auto-archived by the project's prearchive code
(SessionXMLRebuilder; see xnat_model.build_idle_sessions). Debian has no Python DICOM network
library, hence storescp in front (a child process, stopped with the stand-in).

storescp accepts what XNAT's receiver offers in association negotiation (CStoreService.CUIDS with
DicomSCP.TSUIDS, sop_classes.py): any other SOP class is refused there. DCMTK takes at most 128
presentation contexts for an SCP, so the profile leaves out the 17 Philips private classes and
the 8 rarest additions listed in LEFT_OUT; refuse() takes further classes out at run time.
"""

import os
import queue
import re
import socket
import subprocess
import threading
import time

import sop_classes

ROUTE_KEYS = ("Project", "Subject", "Session")
ROUTE_RE = {k: re.compile(r"\b%s:\s*([\w-]*)" % k, re.I) for k in ROUTE_KEYS}
SETTLE_S = 0.5      # a spool file unchanged this long has been written completely
GIVE_UP_S = 30.0    # a spool file that is still no DICOM after this long is dropped
MAX_CONTEXTS = 128  # DCMTK's limit for an SCP profile
LEFT_OUT = {
    "1.2.840.10008.5.1.4.34.10", "1.2.840.10008.5.1.4.34.7", "1.2.840.10008.5.1.4.1.1.200.2",
    "1.2.840.10008.5.1.4.1.1.90.1", "1.2.840.10008.5.1.4.1.1.68.1",
    "1.2.840.10008.5.1.4.1.1.68.2", "1.2.840.10008.5.1.4.1.1.82.1",
    "1.2.840.10008.5.1.4.1.1.79.1",
}


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


def accepted_sop_classes(refused=()):
    """XNAT's receiver list as storescp can hold it, less the refused classes."""
    return [u for u in sop_classes.RECEIVER_SOP_CLASSES
            if not u.startswith("1.3.46.670589.") and u not in LEFT_OUT and u not in refused]


def write_profile(path, refused=()):
    """A storescp association profile ([[TransferSyntaxes]], [[PresentationContexts]],
    [[Profiles]]) accepting the verification class and XNAT's storage classes."""
    classes = accepted_sop_classes(refused)
    assert len(classes) + 1 <= MAX_CONTEXTS, len(classes)
    lines = ["[[TransferSyntaxes]]", "[XnatSyntaxes]"]
    lines += ["TransferSyntax%d = %s" % (i + 1, ts)
              for i, ts in enumerate(sop_classes.RECEIVER_TRANSFER_SYNTAXES)]
    lines += ["[VerificationSyntaxes]", "TransferSyntax1 = 1.2.840.10008.1.2",
              "TransferSyntax2 = 1.2.840.10008.1.2.1", "", "[[PresentationContexts]]",
              "[XnatStorage]",
              "PresentationContext1 = %s\\VerificationSyntaxes" % sop_classes.VERIFICATION_SOP_CLASS]
    lines += ["PresentationContext%d = %s\\XnatSyntaxes" % (i + 2, uid)
              for i, uid in enumerate(classes)]
    lines += ["", "[[Profiles]]", "[Xnat]", "PresentationContexts = XnatStorage", ""]
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines))
    os.replace(tmp, path)


class Receiver:
    def __init__(self, spool, port, ae, parse, on_object, log):
        """parse(name, bytes) -> info or None; on_object(name, info, bytes) files one instance;
        log(text)."""
        self.spool, self.port, self.ae = spool, port, ae
        self.parse, self.on_object, self.log = parse, on_object, log
        self.refused = set()
        self.profile = os.path.join(os.path.dirname(os.path.abspath(spool)), "storescp.cfg")
        os.makedirs(spool, exist_ok=True)
        self.proc = None
        self._start_scp()
        # storescp dies with the thread that started it (PR_SET_PDEATHSIG follows the thread,
        # not the process): restarts run on this long-lived thread, never on a request's.
        self._restarts = queue.Queue()
        threading.Thread(target=self._restart_loop, daemon=True).start()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        log("DICOM receiver %s on port %d (%d SOP classes)" % (
            ae, port, len(accepted_sop_classes())))

    def _start_scp(self):
        write_profile(self.profile, self.refused)
        self.proc = subprocess.Popen(
            ["/usr/bin/storescp", "-aet", self.ae, "-od", self.spool, "-xf", self.profile, "Xnat",
             str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("storescp exited with %s" % self.proc.returncode)
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("storescp did not listen on port %d" % self.port)

    def _stop_scp(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def refuse(self, uid, refused=True):
        """Takes a SOP class out of (or back into) what the receiver accepts; storescp is
        restarted with the new profile and listening again when this returns."""
        if refused:
            self.refused.add(uid)
        else:
            self.refused.discard(uid)
        self._restart()

    def accept_all(self):
        """Back to XNAT's list (after a reset)."""
        self.refused.clear()
        self._restart()

    def _restart(self):
        """storescp restarted with the current profile, on the restart thread; returns once it
        listens again (re-raises what went wrong)."""
        done = queue.Queue()
        self._restarts.put(done)
        error = done.get()
        if error is not None:
            raise error

    def _restart_loop(self):
        while True:
            done = self._restarts.get()
            try:
                self._stop_scp()
                self._start_scp()
                done.put(None)
            except Exception as e:  # handed to the caller
                done.put(e)

    def stop(self):
        self.stopped.set()
        self._stop_scp()

    def _run(self):
        while not self.stopped.wait(0.2):
            try:
                self._collect(time.time())
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
            self.on_object(name, info, data)
