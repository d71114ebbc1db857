#!/usr/bin/python3
"""XNAT stand-in: a small, independent HTTP(S) server that mimics the parts of XNAT's REST API
that pacs2xnat uses (auth, project/subject/experiment/scan/file listings, the DICOM-zip import
service, the prearchive) plus fault-injection knobs under /_admin/ for tests.

Written against /work/shared/XNAT-API.md only, with the Python standard library and pydicom, so
that it cannot share bugs with the C++ client in lib/xnat. See README.md in this folder.
"""

import argparse
import base64
import datetime
import hashlib
import html
import io
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tarfile
import threading
import time
import traceback
import urllib.parse
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# pydicom is imported lazily (it costs ~0.2 s), pre-loaded in a thread once we listen.

VERSION = "1.8.10-standin"
STATE_FILE = "standin-state.json"
DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
# Characters XNAT replaces with '_' when it archives a label (XNAT-API.md, "Labels are cleaned").
XNAT_CLEANED_CHARS = set(" `~@#$%^&*()+=[]{}|\\/?:;\"',.<>")
LABEL_RE = re.compile(r"^[A-Za-z0-9_-]+$")
UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")
CONCURRENT_SEND = "Concurrent file sends of the same data is not supported."
CONFLICT_TEXT = {"archive": "Failed to archive 1 of 1 session(s)",
                 "prearchive": "unable to archive for the Prearchive session"}
DRAIN_LIMIT = 16 * 1024 * 1024  # unread request bodies up to this size are drained, else close

SESSION_XSI = {
    "MR": "xnat:mrSessionData", "CT": "xnat:ctSessionData", "PT": "xnat:petSessionData",
    "CR": "xnat:crSessionData", "DX": "xnat:dxSessionData", "US": "xnat:usSessionData",
    "MG": "xnat:mgSessionData", "NM": "xnat:nmSessionData", "XA": "xnat:xaSessionData",
    "RF": "xnat:rfSessionData", "OP": "xnat:opSessionData", "SR": "xnat:srSessionData",
}
SESSION_MODALITY_PRIORITY = ["PT", "MR", "CT", "NM", "XA", "US", "MG", "DX", "CR", "RF", "OP"]


def log(msg):
    sys.stderr.write("[standin %s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def now_iso():
    return datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


class HttpError(Exception):
    def __init__(self, status, reason, detail=None, headers=None):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.detail = detail or reason
        self.headers = headers or []


class DroppedUpload(Exception):
    """Raised by the drop_upload knob: the connection is closed without an answer."""


# ----------------------------------------------------------------------------------------------
# DICOM parsing and upload unpacking
# ----------------------------------------------------------------------------------------------

def _text(ds, keyword):
    try:
        v = ds.get(keyword)
    except Exception:
        return ""
    if v is None:
        return ""
    return str(v).strip()


def parse_dicom(name, data):
    """Return a dict with the attributes we need, None if the file is not DICOM."""
    base = os.path.basename(name)
    if base.upper() == "DICOMDIR":
        return None
    import pydicom
    from pydicom.errors import InvalidDicomError
    forced = False
    try:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    except InvalidDicomError:
        try:
            ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=True)
            forced = True
        except Exception:
            return None
    except Exception:
        return None
    try:
        meta = getattr(ds, "file_meta", None)
        ms_class = ""
        if meta is not None:
            ms_class = str(meta.get("MediaStorageSOPClassUID", "") or "")
        if ms_class == DICOMDIR_SOP_CLASS:
            return None
        info = {
            "sop_uid": _text(ds, "SOPInstanceUID"),
            "sop_class": _text(ds, "SOPClassUID"),
            "study_uid": _text(ds, "StudyInstanceUID"),
            "series_uid": _text(ds, "SeriesInstanceUID"),
            "series_number": _text(ds, "SeriesNumber"),
            "series_description": _text(ds, "SeriesDescription"),
            "modality": _text(ds, "Modality").upper(),
            "study_date": _text(ds, "StudyDate"),
            "patient_name": _text(ds, "PatientName"),
            "patient_id": _text(ds, "PatientID"),
            "instance_number": _text(ds, "InstanceNumber"),
            "patient_comments": _text(ds, "PatientComments"),
            "study_comments": _text(ds, "StudyComments"),
        }
    except Exception:
        return None
    if forced:
        # A forced read of a random file yields garbage tags; only accept it as DICOM when it
        # carries real-looking identifying UIDs.
        if not any(UID_RE.match(info[k] or "-") for k in ("sop_class", "study_uid", "sop_uid")):
            return None
    return info


def unpack_archive(filename, data):
    """Yield (member name, bytes) for every regular file in a zip/tar/tar.gz upload."""
    lower = filename.lower()
    out = []
    try:
        if lower.endswith(".zip"):
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                for info in zf.infolist():
                    if info.is_dir():
                        continue
                    out.append((info.filename, zf.read(info)))
        elif lower.endswith(".tar") or lower.endswith(".tar.gz") or lower.endswith(".tgz"):
            mode = "r:" if lower.endswith(".tar") else "r:gz"
            with tarfile.open(fileobj=io.BytesIO(data), mode=mode) as tf:
                for m in tf.getmembers():
                    if not m.isfile():
                        continue
                    f = tf.extractfile(m)
                    out.append((m.name, f.read() if f else b""))
        else:
            raise HttpError(400, "Unsupported archive format",
                            "The upload %r is not a .zip, .tar or .tar.gz archive." % filename)
    except HttpError:
        raise
    except Exception as e:  # corrupt archive
        raise HttpError(400, "Unable to read the uploaded archive",
                        "Could not unpack %r: %s" % (filename, e))
    return [(n, b) for (n, b) in out
            if not n.startswith("__MACOSX/") and not os.path.basename(n).startswith("._")]


def parse_multipart(body, content_type):
    """Hand-written multipart/form-data parser. Returns (fields dict, files list of (name, data))."""
    m = re.search(r'boundary=(?:"([^"]+)"|([^;\s]+))', content_type, re.I)
    if not m:
        raise HttpError(400, "Malformed multipart upload", "No boundary in the Content-Type.")
    boundary = (m.group(1) or m.group(2)).encode("latin-1")
    delim = b"--" + boundary
    fields, files = {}, []
    pos = body.find(delim)
    if pos < 0:
        raise HttpError(400, "Malformed multipart upload", "Boundary not found in the body.")
    pos += len(delim)
    while True:
        if body[pos:pos + 2] == b"--":
            break
        if body[pos:pos + 2] == b"\r\n":
            pos += 2
        hdr_end = body.find(b"\r\n\r\n", pos)
        if hdr_end < 0:
            raise HttpError(400, "Malformed multipart upload", "Part headers not terminated.")
        headers = {}
        for line in body[pos:hdr_end].decode("latin-1").split("\r\n"):
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        nxt = body.find(b"\r\n" + delim, hdr_end + 4)
        if nxt < 0:
            raise HttpError(400, "Malformed multipart upload", "Closing boundary not found.")
        content = body[hdr_end + 4:nxt]
        pos = nxt + 2 + len(delim)
        disp = headers.get("content-disposition", "")
        params = {}
        for pm in re.finditer(r';\s*([A-Za-z0-9_*-]+)=(?:"((?:[^"\\]|\\.)*)"|([^;]*))', disp):
            params[pm.group(1).lower()] = pm.group(2) if pm.group(2) is not None else pm.group(3).strip()
        if "filename" in params:
            files.append((params["filename"], content))
        elif "name" in params:
            fields[params["name"]] = content.decode("utf-8", "replace")
    return fields, files


def clean_label(label, policy):
    """Apply XNAT's label cleaning (policy 'clean') or refuse anything unusual ('reject')."""
    if label is None or label == "":
        return None, "is empty"
    if policy == "clean":
        label = "".join("_" if c in XNAT_CLEANED_CHARS else c for c in label)
    if not LABEL_RE.match(label):
        bad = sorted(set(c for c in label if not re.match(r"[A-Za-z0-9_-]", c)))
        return None, "contains characters outside [A-Za-z0-9_-]: %r" % "".join(bad)
    return label, None


# ----------------------------------------------------------------------------------------------
# Server state
# ----------------------------------------------------------------------------------------------

class State:
    def __init__(self, data_dir, initial_projects, readonly_projects, label_policy,
                 site_anonymisation="on"):
        self.lock = threading.RLock()
        self.site_anonymisation = site_anonymisation
        self.data_dir = os.path.abspath(data_dir)
        self.initial_projects = list(initial_projects)
        self.initial_readonly = list(readonly_projects)
        self.label_policy = label_policy
        self.sessions = {}      # jsessionid -> {"user", "last"}
        self.tokens = {}        # alias -> {"secret", "user"}
        self.uploads = []
        self.requests = []
        self.seq = 0            # request log clock: never reset, so it only grows
        self.in_progress = set()
        self.knobs = {}
        self._reset_data()
        self._reset_knobs()
        self._load()
        for p in self.initial_projects:
            self.projects.setdefault(p, {"ID": p, "readonly": False})
        for p in self.initial_readonly:
            self.projects.setdefault(p, {"ID": p, "readonly": True})["readonly"] = True
        self.save()

    def _reset_data(self):
        self.projects = {}
        self.subjects = {}      # ID -> {"ID","label","project","insert_date"}
        self.experiments = {}   # ID -> experiment dict (see import_archive)
        self.prearchive = []    # list of entry dicts
        self.per_session = {}
        # Site settings the SOP checks: anonymisation ("on", "off", "missing" = the endpoint
        # answers 404 like an older XNAT, "forbidden" = 403) and series import filters (regexes
        # on SeriesDescription whose files are dropped silently). Projects hold their own.
        self.site = {"anonymisation": getattr(self, "site_anonymisation", "on"),
                     "series_filter": ""}
        self.counters = {"subject": 0, "experiment": 0, "resource": 0}

    def _reset_knobs(self):
        self.knobs = {"fail": [], "delay": [], "drop_upload": 0, "refuse_auth": False,
                      "conflict_status": 409, "conflict_text": "archive",
                      "slow_import": {"count": 0, "ms": 0}, "concurrent_send": 0}

    def reset(self):
        with self.lock:
            self._reset_data()
            self._reset_knobs()
            self.sessions.clear()
            self.tokens.clear()
            del self.uploads[:]
            del self.requests[:]
            for sub in ("archive", "prearchive"):
                shutil.rmtree(os.path.join(self.data_dir, sub), ignore_errors=True)
            for p in self.initial_projects:
                self.projects[p] = {"ID": p, "readonly": False}
            for p in self.initial_readonly:
                self.projects[p] = {"ID": p, "readonly": True}
            self.save()

    def _load(self):
        path = os.path.join(self.data_dir, STATE_FILE)
        if not os.path.exists(path):
            return
        with open(path) as f:
            d = json.load(f)
        self.projects = d.get("projects", {})
        self.subjects = d.get("subjects", {})
        self.experiments = d.get("experiments", {})
        self.prearchive = d.get("prearchive", [])
        self.per_session = d.get("per_session", {})
        self.site = d.get("site", self.site)
        self.counters = d.get("counters", self.counters)
        log("loaded state from %s (%d experiments)" % (path, len(self.experiments)))

    def save(self):
        with self.lock:
            os.makedirs(self.data_dir, exist_ok=True)
            path = os.path.join(self.data_dir, STATE_FILE)
            tmp = path + ".tmp"
            with open(tmp, "w") as f:
                json.dump({"projects": self.projects, "subjects": self.subjects,
                           "experiments": self.experiments, "prearchive": self.prearchive,
                           "per_session": self.per_session, "counters": self.counters,
                       "site": self.site}, f)
            os.replace(tmp, path)

    def next_id(self, kind):
        self.counters[kind] += 1
        n = self.counters[kind]
        if kind == "subject":
            return "XNAT_S%05d" % n
        if kind == "experiment":
            return "XNAT_E%05d" % n
        return str(n)

    # --- lookups --------------------------------------------------------------------------
    def find_subject(self, project, key):
        """Subject in project by ID or label, label compared case-insensitively."""
        for s in self.subjects.values():
            if s["project"] == project and s["ID"] == key:
                return s
        for s in self.subjects.values():
            if s["project"] == project and s["label"].lower() == key.lower():
                return s
        return None

    def find_experiment(self, project, key, subject_id=None):
        cands = [e for e in self.experiments.values() if e["project"] == project
                 and (subject_id is None or e["subject_ID"] == subject_id)]
        for e in cands:
            if e["ID"] == key:
                return e
        for e in cands:
            if e["label"] == key:
                return e
        for e in cands:
            if e["label"].lower() == key.lower():
                return e
        return None

    def next_seq(self):
        """The next tick of the request log's clock (arrivals and answers share it)."""
        with self.lock:
            self.seq += 1
            return self.seq

    # --- knobs ----------------------------------------------------------------------------
    def take_knob(self, name, path):
        """Consume one use of a fail/delay knob matching path; return its entry or None."""
        with self.lock:
            for k in self.knobs[name]:
                if k["count"] > 0 and (not k["path"] or path.startswith(k["path"])):
                    k["count"] -= 1
                    return k
            self.knobs[name] = [k for k in self.knobs[name] if k["count"] > 0]
        return None


# ----------------------------------------------------------------------------------------------
# Storing parsed files into sessions (archive experiments and prearchive entries share the shape)
# ----------------------------------------------------------------------------------------------

def store_files(state, holder, base_dir, files):
    """Merge files (list of (info, bytes)) into holder["scans"], writing them under base_dir.
    Scans are keyed by XNAT scan ID; a scan's SeriesInstanceUID decides where a file goes and a
    SOP Instance UID already present is replaced, never duplicated."""
    scans = holder.setdefault("scans", {})
    by_series = {}
    for info, data in files:
        by_series.setdefault(info["series_uid"], []).append((info, data))
    uid_to_scan = {s["UID"]: sid for sid, s in scans.items()}
    for u in sorted((u for u in by_series if u not in uid_to_scan),
                    key=lambda u: (scan_number(by_series[u][0][0]), u)):
        # XNAT's naming: the SeriesNumber, else one derived from the SeriesInstanceUID; a number
        # another series already holds becomes "<number>-<modality><n>" (e.g. 3-MR1).
        num = scan_number(by_series[u][0][0])
        sid = num
        n = 0
        while sid in scans:
            n += 1
            sid = "%s-%s%d" % (num, by_series[u][0][0]["modality"] or "OT", n)
        uid_to_scan[u] = sid
        scans[sid] = None
    for u, items in by_series.items():
        sid = uid_to_scan[u]
        first = items[0][0]
        if scans.get(sid) is None:
            state.counters["resource"] += 1
            modality = first["modality"] or "OT"
            scans[sid] = {
                "ID": sid, "UID": u, "series_description": first["series_description"],
                "type": first["series_description"], "modality": modality,
                "xsiType": SESSION_XSI.get(modality, "xnat:otherDicomSession").replace(
                    "SessionData", "ScanData").replace("otherDicomSession", "otherDicomScanData"),
                "cat_ID": str(state.counters["resource"]), "files": {},
            }
        scan = scans[sid]
        d = os.path.join(base_dir, "SCANS", sid, "DICOM")
        os.makedirs(d, exist_ok=True)
        for info, data in items:
            name = info["sop_uid"] + ".dcm"
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
            scan["files"][info["sop_uid"]] = {
                "name": name, "size": len(data), "digest": hashlib.md5(data).hexdigest(),
                "path": os.path.relpath(os.path.join(d, name), state.data_dir),
                "instance_number": info["instance_number"],
            }
    mods = set(s["modality"] for s in scans.values())
    holder["modality"] = next((m for m in SESSION_MODALITY_PRIORITY if m in mods),
                              sorted(mods)[0] if mods else "OT")
    holder["xsiType"] = SESSION_XSI.get(holder["modality"], "xnat:otherDicomSessionData")


def _session_xml(en, scans):
    """The session document XNAT keeps next to a prearchive session (the parts we read)."""
    esc = lambda v: html.escape(str(v), quote=True)
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           '<xnat:MRSession xmlns:xnat="http://nrg.wustl.edu/xnat" '
           'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" project="%s" label="%s" '
           'UID="%s">' % (esc(en["project"]), esc(en["name"]), esc(en["tag"])),
           '<xnat:scans>']
    for sid, s in scans:
        out.append('<xnat:scan ID="%s" type="%s" UID="%s" xsi:type="%s">'
                   '<xnat:series_description>%s</xnat:series_description>'
                   '<xnat:file xsi:type="xnat:resourceCatalog" label="DICOM" format="DICOM" '
                   'content="RAW"/></xnat:scan>'
                   % (esc(sid), esc(s["type"]), esc(s["UID"]), esc(s["xsiType"]),
                      esc(s["series_description"])))
    out.append('</xnat:scans></xnat:MRSession>')
    return "\n".join(out)


def scan_number(info):
    """The scan ID XNAT gives a new series: its SeriesNumber, or (without one) a number derived
    from the SeriesInstanceUID (here: its last component), or NA."""
    v = info["series_number"]
    try:
        return str(int(float(v)))
    except (TypeError, ValueError):
        pass
    last = (info["series_uid"] or "").split(".")[-1]
    return last if last.isdigit() else "NA"


def file_count(holder):
    return sum(len(s["files"]) for s in holder.get("scans", {}).values())


def scans_summary(holder):
    return {sid: {"UID": s["UID"], "series_description": s["series_description"],
                  "modality": s["modality"], "files": len(s["files"]),
                  "sop_uids": sorted(s["files"].keys())}
            for sid, s in sorted(holder.get("scans", {}).items(), key=lambda kv: _scan_key(kv[0]))}


def _scan_key(sid):
    try:
        return (0, int(sid), sid)
    except ValueError:
        return (1, 0, sid)


def fmt_date(d):
    if len(d) == 8 and d.isdigit():
        return "%s-%s-%s" % (d[:4], d[4:6], d[6:])
    return d


# ----------------------------------------------------------------------------------------------
# HTTP handler
# ----------------------------------------------------------------------------------------------

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "XNAT-standin/" + VERSION
    sys_version = ""
    timeout = 120

    # --- plumbing -------------------------------------------------------------------------
    @property
    def st(self):
        return self.server.state

    def version_string(self):
        return self.server_version

    def log_message(self, fmt, *args):  # our own access log is in _log_request
        pass

    def log_error(self, fmt, *args):
        log("error: " + (fmt % args))

    def setup(self):
        super().setup()
        self.status_sent = None
        self._req_info = None
        self._recorded = False
        self._seq = None
        self._about = None
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def _init_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        self._chunked = "chunked" in te
        self._body_left = 0 if self._chunked else int(self.headers.get("Content-Length") or 0)
        self._chunk_left = 0
        self._body_done = (not self._chunked) and self._body_left == 0

    def _read_chunk_block(self, limit):
        """Read up to limit bytes of a chunked body; b'' at end."""
        if self._body_done:
            return b""
        if self._chunk_left == 0:
            line = self.rfile.readline(65537)
            if not line:
                raise ConnectionError("connection closed in chunked body")
            size = int(line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while True:  # trailers
                    t = self.rfile.readline(65537)
                    if not t or t in (b"\r\n", b"\n"):
                        break
                self._body_done = True
                return b""
            self._chunk_left = size
        data = self.rfile.read(min(limit, self._chunk_left))
        if not data:
            raise ConnectionError("connection closed in chunked body")
        self._chunk_left -= len(data)
        if self._chunk_left == 0:
            self.rfile.readline(3)  # CRLF after chunk data
        return data

    def read_some(self, limit):
        if self._body_done:
            return b""
        if self._chunked:
            return self._read_chunk_block(limit)
        data = self.rfile.read(min(limit, self._body_left))
        if not data:
            raise ConnectionError("connection closed in body")
        self._body_left -= len(data)
        if self._body_left == 0:
            self._body_done = True
        return data

    def read_body(self):
        parts = []
        while not self._body_done:
            parts.append(self.read_some(1 << 20))
        return b"".join(parts)

    def _settle_body(self):
        """Before answering: drain a small unread body so the connection can be reused, or mark
        the connection for closing."""
        if self._body_done:
            return
        if not self._chunked and self._body_left <= DRAIN_LIMIT:
            try:
                self.read_body()
                return
            except Exception:
                pass
        self.close_connection = True

    def send_payload(self, status, body, ctype, reason=None, headers=()):
        if isinstance(body, str):
            body = body.encode("utf-8")
        self._settle_body()
        if reason:
            reason = re.sub(r"[^\x20-\x7e]", "_", reason)[:200]
        self.send_response(status, reason)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        # Headers and body in one write: no Nagle/delayed-ACK stall between them.
        self._headers_buffer.append(b"\r\n")
        if self.command != "HEAD":
            self._headers_buffer.append(body)
        self.status_sent = status
        self._record_request()  # before the client can see the answer
        self.flush_headers()

    def send_json(self, obj, status=200):
        self.send_payload(status, json.dumps(obj, indent=None), "application/json")

    def send_result_set(self, rows, title="Results"):
        rows = [{k: ("" if v is None else str(v)) for k, v in r.items()} for r in rows]
        self.send_json({"ResultSet": {"Result": rows, "totalRecords": str(len(rows)),
                                      "title": title}})

    def send_error_page(self, status, reason, detail, headers=()):
        body = ("<html><head><title>Status page</title></head>\n<body>\n<h3>%s</h3>\n"
                "<p>%s</p>\n<p>You can get technical details <a href=\"http://www.w3.org/"
                "Protocols/rfc2616/rfc2616-sec10.html\">here</a>.</p>\n</body>\n</html>\n"
                % (html.escape(reason), html.escape(detail)))
        self.send_payload(status, body, "text/html;charset=UTF-8", reason=reason,
                          headers=headers)

    def _start_request(self, method, path, query):
        """A request has arrived: its place on the request log's clock, nothing known yet."""
        self._req_info = (method, path, query)
        self._recorded = False
        self._seq = self.st.next_seq()
        self._about = None

    def _concerns(self, project, session, experiment=None):
        """Notes the session a request is about, for the request log."""
        self._about = {"project": project or None, "session": session or None,
                       "experiment": experiment or None}

    def _concerns_experiment(self, e):
        self._concerns(e["project"], e["label"], e["ID"])

    def _record_request(self):
        """Access log line on stderr (never headers) plus the /_admin/requests list."""
        if self._recorded or self._req_info is None:
            return
        self._recorded = True
        method, path, query = self._req_info
        status = self.status_sent
        log("%s %s%s -> %s" % (method, path, ("?" + query) if query else "",
                               status if status is not None else "no answer"))
        if not path.startswith("/_admin/"):
            about = self._about or {"project": None, "session": None, "experiment": None}
            entry = {"seq": self._seq, "answered_seq": None, "method": method, "path": path,
                     "query": query, "status": status}
            entry.update(about)
            with self.st.lock:  # one step, so the list stays in answer order
                entry["answered_seq"] = self.st.next_seq()
                self.st.requests.append(entry)

    # --- auth -----------------------------------------------------------------------------
    def _cookie_session(self):
        raw = self.headers.get("Cookie") or ""
        for part in raw.split(";"):
            if "=" in part:
                k, v = part.strip().split("=", 1)
                if k == "JSESSIONID":
                    return v.strip()
        return None

    def _check_basic(self):
        auth = self.headers.get("Authorization") or ""
        if not auth.lower().startswith("basic "):
            return None
        try:
            user, _, pw = base64.b64decode(auth[6:].strip()).decode("utf-8").partition(":")
        except Exception:
            return None
        users = self.server.users
        if user in users and secrets.compare_digest(users[user], pw):
            return user
        tok = self.st.tokens.get(user)
        if tok and secrets.compare_digest(tok["secret"], pw):
            return tok["user"]
        return None

    def authenticate(self, touch=True):
        """Return the user name or None. A valid JSESSIONID cookie wins; else Basic auth."""
        st = self.st
        with st.lock:
            if st.knobs["refuse_auth"]:
                return None
            sid = self._cookie_session()
            if sid and sid in st.sessions:
                s = st.sessions[sid]
                if time.time() - s["last"] > self.server.session_timeout:
                    del st.sessions[sid]
                else:
                    if touch:
                        s["last"] = time.time()
                    return s["user"]
        return self._check_basic()

    def require_auth(self):
        user = self.authenticate()
        if user is None:
            raise HttpError(401, "Unauthorized", "Authentication required.",
                            headers=[("WWW-Authenticate", 'Basic realm="XNAT"')])
        return user

    def handle_expect_100(self):
        path = urllib.parse.urlsplit(self.path).path
        if (path.startswith("/data") or path.startswith("/xapi")) and \
                not path.startswith("/data/JSESSION") and self.authenticate(touch=False) is None:
            self._body_done = True  # nothing read; we close instead
            self.close_connection = True
            self.send_response(401, "Unauthorized")
            self.send_header("WWW-Authenticate", 'Basic realm="XNAT"')
            self.send_header("Content-Length", "0")
            self.send_header("Connection", "close")
            self.end_headers()
            self._start_request(self.command, path, urllib.parse.urlsplit(self.path).query)
            self.status_sent = 401
            self._record_request()
            return False
        return super().handle_expect_100()

    # --- dispatch -------------------------------------------------------------------------
    def do_GET(self):
        self.dispatch()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_GET

    def dispatch(self):
        split = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(split.path)
        q = {k: v[-1] for k, v in urllib.parse.parse_qs(split.query,
                                                          keep_blank_values=True).items()}
        self._init_body()
        self.status_sent = None
        method = self.command
        self._start_request(method, path, split.query)
        try:
            if path.startswith("/_admin/"):
                self.admin(method, path, q)
            else:
                k = self.st.take_knob("delay", path)
                if k:
                    time.sleep(k["ms"] / 1000.0)
                k = self.st.take_knob("fail", path)
                if k:
                    raise HttpError(k["status"], k["reason"], "Injected failure (stand-in knob).")
                self.route(method, path, q)
        except DroppedUpload:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        except HttpError as e:
            self.send_error_page(e.status, e.reason, e.detail, headers=e.headers)
        except (ConnectionError, socket.timeout) as e:
            log("connection problem: %s" % e)
            self.close_connection = True
        except Exception:
            traceback.print_exc(file=sys.stderr)
            self.send_error_page(500, "Internal Server Error", "Stand-in internal error.")
        finally:
            self._record_request()

    def route(self, method, path, q):
        segs = [s for s in path.split("/") if s]
        if not segs or segs[0] not in ("data", "xapi", "REST"):
            raise HttpError(404, "Not Found", "No resource at %s" % path)
        if segs[:2] == ["data", "JSESSION"] and len(segs) == 2:
            return self.jsession(method)
        user = self.require_auth()
        if segs[0] == "xapi":
            if segs[1:] == ["siteConfig", "buildInfo"] and method == "GET":
                return self.send_json({"version": VERSION, "buildNumber": "0"})
            if segs[1:] == ["users", "username"] and method == "GET":
                return self.send_payload(200, user, "text/plain")
            if segs[1:2] == ["anonymize"] and method == "GET":
                return self.anonymize(segs[2:])
            raise HttpError(404, "Not Found", "No XAPI resource at %s" % path)
        segs = segs[1:]
        if segs and segs[0] == "archive":
            segs = segs[1:]
        if segs == ["version"]:
            return self.send_payload(200, VERSION, "text/plain")
        if segs[:1] == ["services"]:
            return self.services(method, segs[1:], q, user)
        if segs[:1] == ["prearchive"]:
            return self.prearchive_get(method, segs[1:], q)
        if method not in ("GET", "HEAD", "PUT", "DELETE"):
            raise HttpError(405, "Method Not Allowed", "%s not supported here." % method)
        return self.resources(method, segs, q, user)

    # --- anonymisation settings (XAPI) ------------------------------------------------------
    def anonymize(self, segs):
        """/xapi/anonymize/site[/enabled] and /xapi/anonymize/projects/P[/enabled]."""
        st = self.st
        with st.lock:
            if segs[:1] == ["site"] and len(segs) <= 2:
                setting, what = st.site["anonymisation"], "site"
            elif segs[:1] == ["projects"] and 2 <= len(segs) <= 3:
                self._project(segs[1])
                setting = st.projects[segs[1]].get("anonymisation", "off")
                what = "project " + segs[1]
            else:
                raise HttpError(404, "Not Found", "No XAPI resource at /xapi/anonymize/%s"
                                % "/".join(segs))
        if setting == "missing":
            raise HttpError(404, "Not Found", "No XAPI resource at /xapi/anonymize/%s"
                            % "/".join(segs))
        if setting == "forbidden":
            raise HttpError(403, "Forbidden", "No access to the %s anonymization settings." % what)
        if segs[-1] == "enabled":
            return self.send_payload(200, "true" if setting == "on" else "false",
                                     "application/json")
        if setting != "on":
            return self.send_payload(204, "", "text/plain")
        return self.send_payload(200, "(0010,0010) := \"anonymous\"\n", "text/plain")

    # --- JSESSION -------------------------------------------------------------------------
    def jsession(self, method):
        st = self.st
        if method == "DELETE":
            sid = self._cookie_session()
            with st.lock:
                st.sessions.pop(sid, None)
            return self.send_payload(200, "", "text/plain")
        if method not in ("GET", "POST"):
            raise HttpError(405, "Method Not Allowed", "Use POST to create a session.")
        user = self.require_auth()
        sid = self._cookie_session()
        with st.lock:
            if not (sid and sid in st.sessions):
                sid = secrets.token_hex(16).upper()
                st.sessions[sid] = {"user": user, "last": time.time()}
        self.send_payload(200, sid, "text/plain",
                          headers=[("Set-Cookie", "JSESSIONID=%s; Path=/; HttpOnly" % sid)])

    # --- read-only resources ----------------------------------------------------------------
    def _project(self, pid):
        p = self.st.projects.get(pid)
        if p is None:
            raise HttpError(404, "Not Found", "Project %s not found." % pid)
        return p

    def _exp_row(self, e):
        st = self.st
        subj = st.subjects.get(e["subject_ID"], {})
        return {"ID": e["ID"], "label": e["label"], "project": e["project"],
                "subject_ID": e["subject_ID"], "subject_label": subj.get("label", ""),
                "UID": e["UID"], "xsiType": e["xsiType"], "date": fmt_date(e.get("date", "")),
                "insert_date": e["insert_date"], "modality": e.get("modality", ""),
                "xnat:subjectassessordata/id": e["ID"], "URI": "/data/experiments/%s" % e["ID"]}

    def resources(self, method, segs, q, user):
        st = self.st
        with st.lock:
            if segs == ["projects"] and "permissions" in q:
                return self.send_result_set(permitted_projects(self.server, user, q), "Projects")
            if segs == ["projects"]:
                rows = [{"ID": p, "secondary_ID": p, "name": p, "description": "",
                         "pi_firstname": "", "pi_lastname": "", "URI": "/data/projects/%s" % p}
                        for p in sorted(st.projects)]
                return self.send_result_set(rows, "Projects")
            if segs == ["experiments"]:
                rows = [self._exp_row(e) for e in st.experiments.values()
                        if not q.get("project") or e["project"] == q["project"]]
                return self.send_result_set(self._filter_label(rows, q, q.get("project")),
                                            "Experiments")
            if len(segs) >= 2 and segs[0] == "experiments":
                e = st.experiments.get(segs[1])
                if e is None:
                    self._concerns(None, None, segs[1])
                    raise HttpError(404, "Not Found", "Experiment %s not found." % segs[1])
                return self.experiment(method, e, segs[2:], q)
            if not segs or segs[0] != "projects" or len(segs) < 2:
                raise HttpError(404, "Not Found", "No resource at /data/%s" % "/".join(segs))
            pid = segs[1]
            p = self._project(pid)
            rest = segs[2:]
            if not rest:
                if method != "GET" and method != "HEAD":
                    raise HttpError(405, "Method Not Allowed", "Not supported by the stand-in.")
                return self.send_json({"items": [{"meta": {"xsi:type": "xnat:projectData"},
                                                  "data_fields": {"ID": pid, "secondary_ID": pid,
                                                                  "name": pid},
                                                  "children": []}]})
            if rest == ["prearchive_code"] and method == "GET":
                return self.send_payload(200, str(p.get("prearchive_code", 4)), "text/plain")
            if rest == ["subjects"]:
                rows = [{"ID": s["ID"], "project": pid, "label": s["label"],
                         "insert_date": s["insert_date"], "insert_user": "admin",
                         "URI": "/data/subjects/%s" % s["ID"]}
                        for s in st.subjects.values() if s["project"] == pid]
                return self.send_result_set(rows, "Subjects")
            if rest == ["experiments"]:
                rows = [self._exp_row(e) for e in st.experiments.values() if e["project"] == pid]
                return self.send_result_set(self._filter_label(rows, q, pid), "Experiments")
            if rest[0] == "experiments" and len(rest) >= 2:
                e = st.find_experiment(pid, rest[1])
                if e is None:
                    self._concerns(pid, rest[1])
                    raise HttpError(404, "Not Found", "Experiment %s not found in %s."
                                    % (rest[1], pid))
                return self.experiment(method, e, rest[2:], q)
            if rest[0] == "subjects" and len(rest) >= 2:
                s = st.find_subject(pid, rest[1])
                if len(rest) == 2:
                    if method == "PUT":
                        if p["readonly"]:
                            raise HttpError(403, "Forbidden", "No create access to %s." % pid)
                        if s is None:
                            lab, err = clean_label(rest[1], st.label_policy)
                            if err:
                                raise HttpError(400, "Invalid subject label",
                                                "Subject label %r %s" % (rest[1], err))
                            s = self.create_subject(pid, lab)
                            st.save()
                            return self.send_payload(201, s["ID"], "text/plain")
                        return self.send_payload(200, s["ID"], "text/plain")
                    if s is None:
                        raise HttpError(404, "Not Found", "Subject %s not found." % rest[1])
                    return self.send_json({"items": [{"meta": {"xsi:type": "xnat:subjectData"},
                                                      "data_fields": {"ID": s["ID"],
                                                                      "label": s["label"],
                                                                      "project": pid},
                                                      "children": []}]})
                if s is None:
                    raise HttpError(404, "Not Found", "Subject %s not found." % rest[1])
                if rest[2:] == ["experiments"]:
                    rows = [self._exp_row(e) for e in st.experiments.values()
                            if e["subject_ID"] == s["ID"]]
                    return self.send_result_set(self._filter_label(rows, q, pid), "Experiments")
                if len(rest) >= 4 and rest[2] == "experiments":
                    e = st.find_experiment(pid, rest[3], s["ID"])
                    if e is None:
                        self._concerns(pid, rest[3])
                        raise HttpError(404, "Not Found", "Experiment %s not found." % rest[3])
                    return self.experiment(method, e, rest[4:], q)
            raise HttpError(404, "Not Found", "No resource at /data/%s" % "/".join(segs))

    def _filter_label(self, rows, q, project):
        """A listing filtered by label= is about that session (found or not)."""
        if "label" in q:
            self._concerns(project, q["label"])
            rows = [r for r in rows if r["label"] == q["label"]]
        return rows

    def experiment(self, method, e, rest, q):
        st = self.st
        self._concerns_experiment(e)
        if not rest:
            if method == "DELETE":
                if st.projects.get(e["project"], {}).get("readonly"):
                    raise HttpError(403, "Forbidden", "No delete access to %s." % e["project"])
                del st.experiments[e["ID"]]
                shutil.rmtree(os.path.join(st.data_dir, e["dir"]), ignore_errors=True)
                st.save()
                return self.send_payload(200, "", "text/plain")
            if method not in ("GET", "HEAD"):
                raise HttpError(405, "Method Not Allowed", "Not supported by the stand-in.")
            row = self._exp_row(e)
            children = [{"field": "scans/scan", "items": [
                {"meta": {"xsi:type": s["xsiType"]},
                 "data_fields": {"ID": sid, "type": s["type"], "UID": s["UID"],
                                 "series_description": s["series_description"],
                                 "modality": s["modality"]}}
                for sid, s in sorted(e["scans"].items(), key=lambda kv: _scan_key(kv[0]))]}]
            fields = {k: v for k, v in row.items() if k != "xnat:subjectassessordata/id"}
            return self.send_json({"items": [{"meta": {"xsi:type": e["xsiType"]},
                                              "data_fields": fields, "children": children}]})
        if method not in ("GET", "HEAD"):
            raise HttpError(405, "Method Not Allowed", "Not supported by the stand-in.")
        base = "/data/experiments/%s" % e["ID"]
        if rest == ["scans"]:
            # Like XNAT's listing: no UID column (it is on each scan's own JSON).
            rows = [{"xsiType": s["xsiType"], "xnat_imagescandata_id": s["cat_ID"], "ID": sid,
                     "type": s["type"], "series_description": s["series_description"],
                     "note": "", "quality": "usable",
                     "URI": "%s/scans/%s" % (base, sid)}
                    for sid, s in sorted(e["scans"].items(), key=lambda kv: _scan_key(kv[0]))]
            return self.send_result_set(rows, "Scans")
        if rest == ["resources"]:
            return self.send_result_set([], "Resources")
        if rest[0] != "scans" or len(rest) < 2:
            raise HttpError(404, "Not Found", "No resource at %s/%s" % (base, "/".join(rest)))
        wanted = rest[1]
        if wanted == "ALL":
            scans = sorted(e["scans"].items(), key=lambda kv: _scan_key(kv[0]))
        else:
            scans = []
            for sid in wanted.split(","):
                if sid not in e["scans"]:
                    raise HttpError(404, "Not Found", "Scan %s not found." % sid)
                scans.append((sid, e["scans"][sid]))
        sub = rest[2:]
        if not sub:
            if len(scans) != 1:
                raise HttpError(400, "Bad Request", "Ask for one scan at a time.")
            sid, s = scans[0]
            return self.send_json({"items": [{"meta": {"xsi:type": s["xsiType"]},
                                              "data_fields": {"ID": sid, "type": s["type"],
                                                              "UID": s["UID"],
                                                              "series_description":
                                                                  s["series_description"],
                                                              "modality": s["modality"]},
                                              "children": []}]})
        if sub == ["resources"]:
            # XNAT's resource listing: cat_id is the ID of the scan the resource belongs to.
            rows = [{"xnat_abstractresource_id": s["cat_ID"], "cat_id": sid, "label": "DICOM",
                     "element_name": "xnat:resourceCatalog", "category": "scans",
                     "cat_desc": "", "format": "DICOM", "content": "RAW", "tags": "",
                     "file_count": len(s["files"]),
                     "file_size": sum(f["size"] for f in s["files"].values()),
                     "URI": "%s/scans/%s/resources/%s" % (base, sid, s["cat_ID"])}
                    for sid, s in scans]
            return self.send_result_set(rows, "Resources")
        if sub == ["files"] or (len(sub) == 3 and sub[0] == "resources" and sub[2] == "files"):
            if len(sub) == 3 and sub[1] not in ("DICOM", "ALL") and \
                    not any(s["cat_ID"] == sub[1] for _, s in scans):
                raise HttpError(404, "Not Found", "Resource %s not found." % sub[1])
            rows = []
            for sid, s in scans:
                for f in sorted(s["files"].values(), key=lambda f: f["name"]):
                    rows.append({"Name": f["name"], "Size": f["size"],
                                 "URI": "%s/scans/%s/resources/DICOM/files/%s"
                                        % (base, sid, f["name"]),
                                 "collection": "DICOM", "file_tags": "", "file_format": "DICOM",
                                 "file_content": "RAW", "cat_ID": s["cat_ID"],
                                 "digest": f["digest"]})
            return self.send_result_set(rows, "Files")
        if len(sub) == 4 and sub[0] == "resources" and sub[2] == "files":
            for sid, s in scans:
                for f in s["files"].values():
                    if f["name"] == sub[3]:
                        with open(os.path.join(st.data_dir, f["path"]), "rb") as fh:
                            data = fh.read()
                        return self.send_payload(200, data, "application/octet-stream")
            raise HttpError(404, "Not Found", "File %s not found." % sub[3])
        raise HttpError(404, "Not Found", "No resource at %s/%s" % (base, "/".join(rest)))

    # --- prearchive -----------------------------------------------------------------------
    @staticmethod
    def _pre_row(en):
        return {k: en[k] for k in ("folderName", "lastmod", "name", "project", "scan_date",
                                   "status", "subject", "tag", "timestamp", "uploaded", "url",
                                   "scan_time", "autoarchive", "prevent_anon",
                                   "prevent_auto_commit", "source", "visit", "protocol",
                                   "timeZone")}

    def prearchive_get(self, method, segs, q):
        st = self.st
        if method not in ("GET", "HEAD"):
            raise HttpError(405, "Method Not Allowed", "Use the archive/delete services.")
        with st.lock:
            if segs in ([], ["projects"]):
                return self.send_result_set([self._pre_row(e) for e in st.prearchive],
                                            "Prearchive")
            if segs[0] == "projects" and len(segs) == 2:
                rows = [self._pre_row(e) for e in st.prearchive if e["project"] == segs[1]]
                return self.send_result_set(rows, "Prearchive")
            if segs[0] == "projects" and len(segs) >= 4:
                en = self._find_pre("/prearchive/" + "/".join(segs[:4]))
                scans = sorted(en["scans"].items(), key=lambda kv: _scan_key(kv[0]))
                if segs[4:] == ["scans"]:
                    # As XNAT's PrearcScansListResource: no UID, no file counts.
                    rows = [{"ID": sid, "xsiType": s["xsiType"],
                             "series_description": s["series_description"]}
                            for sid, s in scans]
                    return self.send_result_set(rows, "Scans")
                if segs[4:] == ["resources"]:
                    # As XNAT's PrearcSessionResourcesList: one row per scan resource.
                    rows = [{"category": "scans", "cat_id": sid, "label": "DICOM",
                             "file_count": len(s["files"]),
                             "file_size": sum(f["size"] for f in s["files"].values())}
                            for sid, s in scans]
                    return self.send_result_set(rows, "Resources")
                if not segs[4:] and q.get("format", "").lower() == "xml":
                    return self.send_payload(200, _session_xml(en, scans), "text/xml")
                if not segs[4:]:
                    return self.send_result_set([self._pre_row(en)], "Prearchive")
        raise HttpError(404, "Not Found", "No prearchive resource at /%s" % "/".join(segs))

    def _find_pre(self, src):
        src = src.strip()
        if src.startswith("/data/"):
            src = src[5:]
        for en in self.st.prearchive:
            if en["url"] == src.rstrip("/"):
                return en
        raise HttpError(404, "Not Found", "No prearchive session at %s" % src)

    # --- services -------------------------------------------------------------------------
    def services(self, method, segs, q, user):
        st = self.st
        if segs == ["tokens", "issue"] and method == "GET":
            alias, secret = secrets.token_hex(8), secrets.token_hex(24)
            with st.lock:
                st.tokens[alias] = {"secret": secret, "user": user}
            return self.send_json({"alias": alias, "secret": secret, "xdatUserId": user,
                                   "estimatedExpirationTime": int(time.time() * 1000) + 172800000})
        if segs == ["import"]:
            if method != "POST":
                raise HttpError(405, "Method Not Allowed",
                                "The import service only accepts POST.")
            return self.import_service(q, user)
        if segs == ["archive"] and method == "POST":
            return self.archive_service(q)
        if segs == ["prearchive", "delete"] and method == "POST":
            with st.lock:
                en = self._find_pre(q.get("src", ""))
                st.prearchive.remove(en)
                shutil.rmtree(os.path.join(st.data_dir, en["dir"]), ignore_errors=True)
                st.save()
            return self.send_payload(200, "", "text/plain")
        raise HttpError(404, "Not Found", "No service at /data/services/%s" % "/".join(segs))

    def _upload_payload(self, q):
        """Read the request body and return (archive file name, bytes, extra form fields)."""
        ctype = self.headers.get("Content-Type") or ""
        if q.get("inbody", "").lower() == "true":
            body = self.read_body()
            ct = ctype.lower()
            name = "upload.zip"
            if "x-tar" in ct:
                name = "upload.tar"
            elif "gzip" in ct:
                name = "upload.tar.gz"
            return name, body, {}
        if ctype.lower().startswith("multipart/form-data"):
            fields, files = parse_multipart(self.read_body(), ctype)
            if len(files) != 1:
                raise HttpError(400, "Bad Request",
                                "Expected exactly one uploaded file, got %d." % len(files))
            return files[0][0], files[0][1], fields
        self.read_body()
        raise HttpError(400, "Bad Request",
                        "No file: send multipart/form-data or the body with inbody=true.")

    def import_service(self, q, user):
        st = self.st
        handler = q.get("import-handler", "DICOM-zip")
        if handler.lower() != "dicom-zip":
            raise HttpError(404, "Not Found", "Unknown import handler: %s" % handler)
        self._concerns(q.get("PROJECT_ID", q.get("project")),
                       q.get("EXPT_LABEL", q.get("session")))
        with st.lock:
            drop = st.knobs["drop_upload"] > 0
            if drop:
                st.knobs["drop_upload"] -= 1
        if drop:
            total = self._body_left if not self._chunked else 1 << 16
            try:
                self.read_some(max(1, min(total // 2, 1 << 16)))
            except Exception:
                pass
            with st.lock:
                st.uploads.append({"project": q.get("PROJECT_ID", q.get("project", "")),
                                   "subject": q.get("SUBJECT_ID", q.get("subject", "")),
                                   "session": q.get("EXPT_LABEL", q.get("session", "")),
                                   "files": 0, "status": "dropped", "time": now_iso()})
            raise DroppedUpload()
        rec = {"project": "", "subject": "", "session": "", "files": 0, "status": None,
               "time": now_iso()}
        # The upload log is written before the answer goes out, so a test that has seen the
        # answer always finds the entry.
        try:
            uri = self._do_import(q, rec)
        except HttpError as e:
            self._concerns_upload(rec)
            rec["status"] = e.status
            rec["error"] = e.reason
            with st.lock:
                st.uploads.append(rec)
            raise
        except Exception as e:
            self._concerns_upload(rec)
            rec["status"] = "client_disconnected" if isinstance(
                e, (ConnectionError, socket.timeout)) else 500
            with st.lock:
                st.uploads.append(rec)
            raise
        rec["status"] = 200
        rec["uri"] = uri
        self._concerns_upload(rec)
        with st.lock:
            key = "%s/%s/%s" % (rec["project"], rec["subject"], rec["session"])
            st.per_session[key] = st.per_session.get(key, 0) + 1
            st.uploads.append(rec)
            st.save()
        self.send_payload(200, uri + "\r\n", "text/plain")

    def _concerns_upload(self, rec):
        """An import is about the session it named (its parameters may come in the body); an
        archived one also about the experiment that now holds it."""
        if not rec["session"]:
            return
        e = None
        if str(rec.get("uri", "")).startswith("/data/archive/"):
            with self.st.lock:
                e = self.st.find_experiment(rec["project"], rec["session"])
        self._concerns(rec["project"], rec["session"], e["ID"] if e else None)

    def _do_import(self, q, rec):
        st = self.st
        name, data, fields = self._upload_payload(q)
        params = dict(fields)
        params.update(q)

        def param(*names):
            for n in names:
                if params.get(n):
                    return params[n]
            return None
        project = param("PROJECT_ID", "project")
        subject = param("SUBJECT_ID", "subject")
        session = param("EXPT_LABEL", "session")
        dest = param("dest")
        overwrite = (param("overwrite") or "none").lower()
        iu = param("Ignore-Unparsable")
        ignore_unparsable = (iu.lower() == "true") if iu else dest is not None
        rec.update(project=project or "", subject=subject or "", session=session or "")
        # Claim the session for the rest of the request: a concurrent send of the same session
        # is refused with 400, like XNAT does.
        key = (project or "", (session or "").lower())
        with st.lock:
            if project and session and key in st.in_progress:
                raise HttpError(400, CONCURRENT_SEND,
                                "Another upload of session %s into %s is in progress."
                                % (session, project))
            if st.knobs["concurrent_send"] > 0:
                st.knobs["concurrent_send"] -= 1
                raise HttpError(400, CONCURRENT_SEND, "Injected by the concurrent_send knob.")
            st.in_progress.add(key)
            hold = st.knobs["slow_import"]
            ms = 0
            if hold["count"] > 0:
                hold["count"] -= 1
                ms = hold["ms"]
        try:
            if ms:
                time.sleep(ms / 1000.0)
            return self._import_files(rec, name, data, project, subject, session, dest,
                                      overwrite, ignore_unparsable)
        finally:
            with st.lock:
                st.in_progress.discard(key)

    def _import_files(self, rec, name, data, project, subject, session, dest, overwrite,
                      ignore_unparsable):
        st = self.st
        members = unpack_archive(name, data)
        files = []
        for mname, mdata in members:
            info = parse_dicom(mname, mdata)
            if info is None:
                if ignore_unparsable:
                    continue
                raise HttpError(400, "Unable to parse DICOM file",
                                "File %s in the upload is not a readable DICOM file." % mname)
            files.append((mname, info, mdata))
        rec["files"] = len(files)
        if not files:
            raise HttpError(400, "No DICOM files found",
                            "The upload %s contains no readable DICOM files." % name)
        # Per-file checks in archive order; files before a failure stay in the prearchive.
        good = []
        study_uid = files[0][1]["study_uid"]
        failure = None
        for mname, info, mdata in files:
            missing = [k for k in ("sop_uid", "study_uid", "series_uid") if not info[k]]
            if missing:
                failure = HttpError(400, "Missing SOP Instance UID" if "sop_uid" in missing
                                    else "Missing DICOM UID",
                                    "File %s lacks %s." % (mname, ", ".join(missing)))
                break
            if info["study_uid"] != study_uid:
                failure = HttpError(400, "Upload contains more than one study",
                                    "File %s belongs to study %s, expected %s."
                                    % (mname, info["study_uid"], study_uid))
                break
            good.append((info, mdata))
        first = files[0][1]
        if not subject:
            subject = re.sub(r"[^A-Za-z0-9_-]", "_", first["patient_name"]) or "Unknown"
        if not session:
            session = re.sub(r"[^A-Za-z0-9_-]", "_", first["patient_id"]) or \
                ("session_" + hashlib.md5(study_uid.encode()).hexdigest()[:8])
        with st.lock:
            proj = st.projects.get(project) if project else None
            if failure is not None:
                if good:
                    self._to_prearchive(project if proj else "Unassigned", subject, session,
                                        study_uid, good, "ERROR")
                    st.save()
                raise failure
            if proj is not None and proj["readonly"]:
                raise HttpError(403, "Forbidden",
                                "User has no permission to add data to project %s." % project)
            good = self._series_filter(proj, good)
            rec["filtered"] = rec["files"] - len(good)
            slab, serr = clean_label(subject, st.label_policy)
            if serr:
                raise HttpError(400, "Invalid subject label",
                                "Subject label %r %s." % (subject, serr))
            elab, eerr = clean_label(session, st.label_policy)
            if eerr:
                raise HttpError(400, "Invalid session label",
                                "Session label %r %s." % (session, eerr))
            if proj is None:
                en = self._to_prearchive("Unassigned", slab, elab, study_uid, good, "READY")
                rec.update(project="Unassigned", subject=slab, session=elab)
                st.save()
                return "/data" + en["url"]
            if dest is None or dest.rstrip("/").lower().endswith("prearchive"):
                en = self._to_prearchive(project, slab, elab, study_uid, good, "READY")
                rec.update(project=project, subject=slab, session=elab)
                st.save()
                return "/data" + en["url"]
            if not dest.rstrip("/").lower().endswith("archive"):
                raise HttpError(400, "Bad Request", "Unknown destination %s" % dest)
            uri, s_label = self._archive(project, slab, elab, study_uid, good, overwrite,
                                         first.get("study_date", ""))
            rec.update(project=project, subject=s_label, session=elab)
            st.save()
            return uri

    def _series_filter(self, proj, files):
        """XNAT's series import filters (site, then project): files of a series whose
        SeriesDescription matches a filter regex are dropped without a word."""
        pats = [x for x in (self.st.site.get("series_filter", ""),
                            (proj or {}).get("series_filter", "")) if x]
        if not pats:
            return files
        return [(info, data) for info, data in files
                if not any(re.search(p, info["series_description"] or "", re.I) for p in pats)]

    def _conflict(self, project, subject, session, study_uid, files, detail):
        st = self.st
        if files:
            self._to_prearchive(project, subject, session, study_uid, files, "CONFLICT")
            st.save()
        if st.knobs["conflict_status"] == 400:
            text = CONFLICT_TEXT[st.knobs["conflict_text"]]
            raise HttpError(400, text, text + ": " + detail)
        raise HttpError(409, "Session already exists, retry with overwrite enabled", detail)

    def _archive(self, project, subject, session, study_uid, files, overwrite, study_date):
        """Archive files as project/subject/session; return (URI, subject label used)."""
        st = self.st
        e = st.find_experiment(project, session)
        if e is not None and e["label"].lower() != session.lower():
            e = None
        subj = st.find_subject(project, subject)
        if e is not None:
            owner = st.subjects[e["subject_ID"]]
            if owner["label"].lower() != subject.lower():
                self._conflict(project, subject, session, study_uid, files,
                               "Session %s already exists in %s for subject %s."
                               % (session, project, owner["label"]))
            if e["UID"] != study_uid:
                self._conflict(project, subject, session, study_uid, files,
                               "Session %s in %s holds another study (UID %s)."
                               % (session, project, e["UID"]))
            if overwrite not in ("append", "delete"):
                self._conflict(project, subject, session, study_uid, files,
                               "Session %s already exists in %s." % (session, project))
            if overwrite == "delete":
                shutil.rmtree(os.path.join(st.data_dir, e["dir"]), ignore_errors=True)
                e["scans"] = {}
        else:
            if subj is None:
                subj = self.create_subject(project, subject)
            eid = st.next_id("experiment")
            e = {"ID": eid, "label": session, "project": project, "subject_ID": subj["ID"],
                 "UID": study_uid, "date": study_date, "insert_date": now_iso(),
                 "dir": os.path.join("archive", project, "arc001", session), "scans": {}}
            st.experiments[eid] = e
        store_files(st, e, os.path.join(st.data_dir, e["dir"]), files)
        s_label = st.subjects[e["subject_ID"]]["label"]
        return ("/data/archive/projects/%s/subjects/%s/experiments/%s"
                % (project, s_label, e["label"])), s_label

    def receive_burst(self, project, subject, session, study_uid, files):
        """Files one burst of C-STOREd instances like XNAT's DICOM receiver: into the project's
        prearchive when it reviews sessions (prearchive_code 0), else archived; a session that
        exists already is merged with prearchive_code 5 and parked as CONFLICT otherwise."""
        st = self.st
        first = files[0][0]
        subject = subject or re.sub(r"[^A-Za-z0-9_-]", "_", first["patient_name"]) or "Unknown"
        session = session or re.sub(r"[^A-Za-z0-9_-]", "_", first["patient_id"]) or "Unknown"
        with st.lock:
            proj = st.projects.get(project)
            rec = {"project": project if proj else "Unassigned", "subject": subject,
                   "session": session, "files": len(files), "status": "dicom", "time": now_iso()}
            good = self._series_filter(proj, files)
            try:
                if proj is None or proj.get("prearchive_code", 4) == 0:
                    en = self._to_prearchive(rec["project"], subject, session, study_uid, good,
                                             "READY")
                    rec["uri"] = "/data" + en["url"]
                else:
                    overwrite = "append" if proj.get("prearchive_code", 4) == 5 else "none"
                    rec["uri"], _ = self._archive(project, subject, session, study_uid, good,
                                                  overwrite, first.get("study_date", ""))
            except HttpError as e:
                rec["error"] = e.reason
            st.uploads.append(rec)
            st.save()
        log("DICOM receiver: %d file(s) of %s/%s/%s -> %s" % (
            len(files), rec["project"], subject, session, rec.get("uri", rec.get("error"))))

    def create_subject(self, project, label):
        st = self.st
        sid = st.next_id("subject")
        s = {"ID": sid, "label": label, "project": project, "insert_date": now_iso()}
        st.subjects[sid] = s
        return s

    def _to_prearchive(self, project, subject, session, study_uid, files, status):
        st = self.st
        ts = datetime.datetime.now().strftime("%Y%m%d_%H%M%S%f")[:-3]
        used = set(e["timestamp"] for e in st.prearchive)
        while ts in used:
            ts = ts[:-3] + "%03d" % ((int(ts[-3:]) + 1) % 1000)
        url = "/prearchive/projects/%s/%s/%s" % (project, ts, session)
        now = now_iso()
        en = {"project": project, "timestamp": ts, "folderName": session, "name": session,
              "subject": subject, "tag": study_uid, "status": status, "scan_date": "",
              "scan_time": "", "uploaded": now, "lastmod": now, "url": url,
              "autoarchive": "", "prevent_anon": "false", "prevent_auto_commit": "false",
              "source": "", "visit": "", "protocol": "", "timeZone": "",
              "dir": os.path.join("prearchive", project, ts, session), "scans": {}}
        store_files(st, en, os.path.join(st.data_dir, en["dir"]), files)
        st.prearchive.append(en)
        return en

    def archive_service(self, q):
        st = self.st
        with st.lock:
            en = self._find_pre(q.get("src", ""))
            project = q.get("project") or en["project"]
            if project not in st.projects:
                raise HttpError(400, "Bad Request", "Project %s does not exist." % project)
            if st.projects[project]["readonly"]:
                raise HttpError(403, "Forbidden", "No create access to %s." % project)
            files = []
            for s in en["scans"].values():
                for sop, f in s["files"].items():
                    with open(os.path.join(st.data_dir, f["path"]), "rb") as fh:
                        data = fh.read()
                    files.append(({"sop_uid": sop, "series_uid": s["UID"],
                                   "series_number": s["ID"],
                                   "series_description": s["series_description"],
                                   "modality": s["modality"],
                                   "instance_number": f.get("instance_number", "")}, data))
            subject = q.get("subject") or en["subject"]
            session = q.get("session") or en["name"]
            overwrite = (q.get("overwrite") or "none").lower()
            try:
                uri, _ = self._archive(project, subject, session, en["tag"], files, overwrite, "")
            except HttpError:
                en["status"] = "CONFLICT"
                st.save()
                raise
            st.prearchive.remove(en)
            shutil.rmtree(os.path.join(st.data_dir, en["dir"]), ignore_errors=True)
            st.save()
        self.send_payload(200, uri + "\r\n", "text/plain")

    # --- admin ----------------------------------------------------------------------------
    def admin(self, method, path, q):
        st = self.st
        name = path[len("/_admin/"):].strip("/")
        self.read_body()

        def count():
            return int(q.get("count", "1"))
        with st.lock:
            if name == "fail" and method == "POST":
                status = int(q.get("status", "500"))
                st.knobs["fail"].append({"count": count(), "status": status,
                                         "path": q.get("path", ""),
                                         "reason": q.get("reason") or
                                         {500: "Internal Server Error", 502: "Bad Gateway",
                                          503: "Service Unavailable",
                                          504: "Gateway Timeout"}.get(status, "Injected failure")})
            elif name == "delay" and method == "POST":
                st.knobs["delay"].append({"count": count(), "ms": int(q.get("ms", "1000")),
                                          "path": q.get("path", "")})
            elif name == "slow_import" and method == "POST":
                st.knobs["slow_import"] = {"count": count(), "ms": int(q.get("ms", "1000"))}
            elif name == "drop_upload" and method == "POST":
                st.knobs["drop_upload"] = count()
            elif name == "refuse_auth" and method == "POST":
                st.knobs["refuse_auth"] = q.get("on", "1") not in ("0", "false", "off")
            elif name == "expire_sessions" and method == "POST":
                st.sessions.clear()
            elif name == "conflict_status" and method == "POST":
                st.knobs["conflict_status"] = int(q.get("status", "409"))
                if q.get("text", "archive") not in CONFLICT_TEXT:
                    raise HttpError(400, "Bad Request", "text must be archive or prearchive")
                st.knobs["conflict_text"] = q.get("text", "archive")
            elif name == "concurrent_send" and method == "POST":
                st.knobs["concurrent_send"] = count()
            elif name == "anonymisation" and method == "POST":
                mode = q.get("mode", "on")
                if mode not in ("on", "off", "missing", "forbidden"):
                    raise HttpError(400, "Bad Request", "mode must be on, off, missing, forbidden")
                if q.get("project"):
                    self._project(q["project"])["anonymisation"] = mode
                else:
                    st.site["anonymisation"] = mode
                st.save()
            elif name == "prearchive_code" and method == "POST":
                self._project(q.get("project", ""))["prearchive_code"] = int(q.get("code", "4"))
                st.save()
            elif name == "series_filter" and method == "POST":
                pat = q.get("regex", "")
                re.compile(pat)
                if q.get("project"):
                    self._project(q["project"])["series_filter"] = pat
                else:
                    st.site["series_filter"] = pat
                st.save()
            elif name == "label_policy" and method == "POST":
                if q.get("mode") not in ("clean", "reject"):
                    raise HttpError(400, "Bad Request", "mode must be clean or reject")
                st.label_policy = q["mode"]
            elif name == "clear_knobs" and method == "POST":
                st._reset_knobs()
            elif name == "reset" and method == "POST":
                st.reset()
            elif name == "project" and method == "POST":
                pid = q.get("id", "")
                if not pid:
                    raise HttpError(400, "Bad Request", "id required")
                st.projects[pid] = {"ID": pid, "readonly": q.get("readonly", "0") in
                                    ("1", "true", "on")}
                st.save()
            elif name == "uploads" and method == "GET":
                return self.send_json({"uploads": list(st.uploads),
                                       "per_session": dict(st.per_session)})
            elif name == "requests" and method == "GET":
                reqs = [r for r in st.requests
                        if "session" not in q or r["session"] == q["session"]]
                return self.send_json({"requests": reqs, "seq": st.seq})
            elif name == "state" and method == "GET":
                return self.send_json(self._state_dump())
            elif name == "role" and method == "POST":
                set_role(self.server, q)
            elif name == "health" and method == "GET":
                pass
            else:
                raise HttpError(404, "Not Found", "Unknown admin endpoint %s %s" % (method, path))
            self.send_json({"ok": True, "knobs": st.knobs, "label_policy": st.label_policy})

    def _state_dump(self):
        st = self.st
        projects = {}
        for pid, p in sorted(st.projects.items()):
            subs = {}
            for s in st.subjects.values():
                if s["project"] != pid:
                    continue
                exps = {}
                for e in st.experiments.values():
                    if e["subject_ID"] == s["ID"]:
                        exps[e["label"]] = {"ID": e["ID"], "UID": e["UID"],
                                            "xsiType": e["xsiType"], "files": file_count(e),
                                            "scans": scans_summary(e)}
                subs[s["label"]] = {"ID": s["ID"], "experiments": exps}
            projects[pid] = {"readonly": p["readonly"], "subjects": subs,
                             "anonymisation": p.get("anonymisation", "off"),
                             "prearchive_code": p.get("prearchive_code", 4),
                             "series_filter": p.get("series_filter", "")}
        pre = [{"project": e["project"], "timestamp": e["timestamp"], "name": e["name"],
                "subject": e["subject"], "tag": e["tag"], "status": e["status"],
                "url": e["url"], "files": file_count(e), "scans": scans_summary(e)}
               for e in st.prearchive]
        return {"projects": projects, "prearchive": pre, "sessions": len(st.sessions),
                "site": dict(st.site)}


# ----------------------------------------------------------------------------------------------
# Per-user project rights (what the web door asks with a person's own session)
# ----------------------------------------------------------------------------------------------

# The actions XNAT's default project groups grant on a project's data (GroupsAndPermissionsCache):
# owners everything, members read/create/edit, collaborators read.
ROLE_ACTIONS = {"owner": {"read", "create", "edit", "delete", "activate"},
                "member": {"read", "create", "edit"},
                "collaborator": {"read"}}
PERMISSION_ACTIONS = ("activate", "create", "delete", "edit", "read")


def parse_roles(items):
    """--role user:project:role (repeatable) -> {user: {project: role}}. A user with no role at
    all is a data admin (every project), as the stand-in's users always were."""
    roles = {}
    for item in items or []:
        user, project, role = (item.split(":") + ["", ""])[:3]
        if role not in ROLE_ACTIONS:
            raise SystemExit("--role %r: the role must be owner, member or collaborator" % item)
        roles.setdefault(user, {})[project] = role
    return roles


def set_role(server, q):
    """POST /_admin/role?user=U&project=P&role=owner|member|collaborator|none."""
    user, project, role = q.get("user", ""), q.get("project", ""), q.get("role", "")
    if not user or not project or role not in list(ROLE_ACTIONS) + ["none"]:
        raise HttpError(400, "Bad Request", "user, project and role (owner, member, "
                        "collaborator, none) required")
    mine = server.roles.setdefault(user, {})
    if role == "none":
        mine.pop(project, None)
    else:
        mine[project] = role


def permitted_projects(server, user, q):
    """GET /data/projects?permissions=ACTION&dataType=T: the projects on which the user's groups
    grant ACTION (ProjectListResource.PermissionsProjectHandler); data admins get every one."""
    action = q.get("permissions", "")
    if action not in PERMISSION_ACTIONS:
        raise HttpError(500, "Internal Server Error", "Unknown permission %r" % action)
    st = server.state
    mine = server.roles.get(user)
    ids = [p for p in sorted(st.projects)
           if mine is None or action in ROLE_ACTIONS.get(mine.get(p, ""), set())]
    return [{"id": p, "ID": p, "secondary_ID": p, "name": p, "description": "",
             "URI": "/data/projects/%s" % p} for p in ids]


# ----------------------------------------------------------------------------------------------
# Server, TLS and start-up
# ----------------------------------------------------------------------------------------------

class Builder:
    """The archive methods of Handler without a request, for the DICOM receiver's thread."""
    def __init__(self, state):
        self.st = state
    receive_burst = Handler.receive_burst
    _series_filter = Handler._series_filter
    _to_prearchive = Handler._to_prearchive
    _archive = Handler._archive
    _conflict = Handler._conflict
    create_subject = Handler.create_subject


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64
    ssl_context = None

    def finish_request(self, request, client_address):
        if self.ssl_context is not None:
            try:
                request.settimeout(30)
                request = self.ssl_context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as e:
                log("TLS handshake with %s failed: %s" % (client_address[0], e))
                return
        super().finish_request(request, client_address)


def make_certs(cert_dir):
    os.makedirs(cert_dir, exist_ok=True)
    ca, crt, key = (os.path.join(cert_dir, n) for n in ("ca.pem", "server.pem", "server.key"))
    if all(os.path.exists(p) for p in (ca, crt, key)):
        return crt, key
    ca_key = os.path.join(cert_dir, "ca.key")
    csr = os.path.join(cert_dir, "server.csr")
    ext = os.path.join(cert_dir, "server.ext")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(args):
        subprocess.run(["openssl"] + args, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    run(["req", "-x509"] + ec + ["-keyout", ca_key, "-out", ca, "-days", "30",
                                 "-subj", "/CN=XNAT stand-in test CA",
                                 "-addext", "basicConstraints=critical,CA:TRUE",
                                 "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    run(["req"] + ec + ["-keyout", key, "-out", csr, "-subj", "/CN=localhost"])
    with open(ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run(["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
         "-out", crt, "-days", "30", "-extfile", ext])
    for p in (csr, ext):
        os.remove(p)
    return crt, key


def parse_args(argv):
    ap = argparse.ArgumentParser(description="XNAT stand-in for pacs2xnat tests")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--users", default="admin:admin",
                    help="user:password[,user:password...]")
    ap.add_argument("--projects", default="")
    ap.add_argument("--role", action="append", default=[],
                    help="user:project:owner|member|collaborator (repeatable); users without a "
                         "role see every project (data admins)")
    ap.add_argument("--readonly-projects", default="")
    ap.add_argument("--https", action="store_true")
    ap.add_argument("--cert-dir")
    ap.add_argument("--session-timeout", type=float, default=900.0)
    ap.add_argument("--label-policy", choices=("clean", "reject"), default="clean")
    ap.add_argument("--dicom-port", type=int, default=0,
                    help="run an XNAT-like DICOM receiver (DCMTK storescp) on this port")
    ap.add_argument("--dicom-ae", default="XNAT")
    ap.add_argument("--dicom-idle", type=float, default=300.0,
                    help="seconds a study must be idle before its session is built (XNAT: 300)")
    ap.add_argument("--site-anonymisation", choices=("on", "off", "missing", "forbidden"),
                    default="on", help="the site-wide anonymisation script (default: enabled)")
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(argv if argv is not None else sys.argv[1:])
    users = {}
    for item in filter(None, args.users.split(",")):
        u, _, p = item.partition(":")
        users[u] = p
    split = lambda s: [x for x in (s or "").split(",") if x]
    state = State(args.data_dir, split(args.projects), split(args.readonly_projects),
                  args.label_policy, args.site_anonymisation)
    server = Server((args.host, args.port), Handler)
    server.state = state
    server.users = users
    server.roles = parse_roles(args.role)
    server.session_timeout = args.session_timeout
    if args.https:
        cert_dir = args.cert_dir or os.path.join(args.data_dir, "certs")
        crt, key = make_certs(cert_dir)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(crt, key)
        server.ssl_context = ctx
    port = server.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, args.port_file)
    print("LISTENING %d" % port, flush=True)
    threading.Thread(target=lambda: __import__("pydicom"), daemon=True).start()
    log("serving %s on %s:%d, projects=%s readonly=%s" % (
        "https" if args.https else "http", args.host, port, ",".join(sorted(state.projects)),
        ",".join(split(args.readonly_projects))))

    receiver = None
    if args.dicom_port:
        from receiver import Receiver
        builder = Builder(state)
        receiver = Receiver(os.path.join(args.data_dir, "dicom-spool"), args.dicom_port,
                            args.dicom_ae, args.dicom_idle, parse_dicom, builder.receive_burst,
                            log)

    def on_term(signum, frame):
        raise KeyboardInterrupt()
    signal.signal(signal.SIGTERM, on_term)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        if receiver:
            receiver.stop()
        server.server_close()
        log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
