#!/usr/bin/python3
"""XNAT stand-in: a small, independent HTTP(S) server that mimics the parts of XNAT's REST API
that pacs2xnat uses (auth, project/subject/experiment/scan/file listings, the DICOM-zip import
service, the prearchive) plus fault-injection knobs under /_admin/ for tests.

Written against XNAT 1.8's own source (the NrgXnat/xnat monorepo: every behaviour names the class
it comes from; CONFORMANCE.md lists them) and /work/shared/XNAT-API.md, with the Python standard
library and pydicom, so that it cannot share bugs with the C++ client in lib/xnat. How objects
become prearchive and archive sessions is in xnat_model.py; see README.md in this folder.
"""

import argparse
import base64
import datetime
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
import threading
import time
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sop_classes  # noqa: E402
import xnat_model as xm  # noqa: E402

# pydicom is imported lazily (it costs ~0.2 s), pre-loaded in a thread once we listen.

VERSION = "1.8.10-standin"
STATE_FILE = "standin-state.json"
# Characters XNAT replaces with '_' when it archives a label (XnatExperimentdata.cleanValue).
XNAT_CLEANED_CHARS = xm.CLEANED_CHARS
LABEL_RE = re.compile(r"^[A-Za-z0-9_-]+$")
UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")
CONCURRENT_SEND = xm.CONCURRENT_SEND
DRAIN_LIMIT = 16 * 1024 * 1024  # unread request bodies up to this size are drained, else close
SESSION_XSI = xm.SESSION_XSI


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
    """Return a dict with the attributes we need, None if the file is not DICOM. Like XNAT
    (GradualDicomImporter reads every entry with dcm4che), DICOMDIR, __MACOSX/ and ._ files are
    not skipped: a DICOMDIR reads but has no SOP Class UID, the others do not read."""
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
                 site_anonymisation="on", session_idle=300.0):
        self.lock = threading.RLock()
        # SessionXMLRebuilder's interval: RECEIVING prearchive sessions idle this long are built
        # (and auto-archived when the project says so). XNAT: minutes; seconds in tests.
        self.session_idle_default = session_idle
        self.session_idle = session_idle
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
        # separate_secondary: the site preference separateSecondaryDicomOnArchive (default on):
        # instances of non-primary SOP classes go to a scan resource "secondary".
        self.site = {"anonymisation": getattr(self, "site_anonymisation", "on"),
                     "series_filter": "", "separate_secondary": True}
        self.counters = {"subject": 0, "experiment": 0, "resource": 0, "scan": 0}
        self.session_idle = getattr(self, "session_idle_default", 300.0)

    def _reset_knobs(self):
        self.knobs = {"fail": [], "delay": [], "drop_upload": 0, "refuse_auth": False,
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
        self.site.update(d.get("site", {}))
        self.counters.update(d.get("counters", {}))
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
# Views of sessions (archive experiments and prearchive session documents share the shape, see
# xnat_model.make_document)
# ----------------------------------------------------------------------------------------------

def _session_xml(en, doc):
    """The session document XNAT keeps next to a prearchive session (the parts we read): each
    scan with its catalog resources, "DICOM" (content RAW) and/or "secondary"
    (CatalogBuilder.RESOURCE_LABEL_*)."""
    esc = lambda v: html.escape(str(v), quote=True)
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           '<xnat:MRSession xmlns:xnat="http://nrg.wustl.edu/xnat" '
           'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" project="%s" label="%s" '
           'UID="%s">' % (esc(en["project"]), esc(doc["label"]), esc(doc["UID"])),
           '<xnat:scans>']
    for sid, s in xm.sorted_scans(doc):
        files = "".join('<xnat:file xsi:type="xnat:resourceCatalog" label="%s" format="%s" '
                        'content="%s"/>' % (esc(r["label"]), esc(r["format"]), esc(r["content"]))
                        for r in s["resources"].values())
        out.append('<xnat:scan ID="%s" type="%s" UID="%s" xsi:type="%s">'
                   '<xnat:series_description>%s</xnat:series_description>%s</xnat:scan>'
                   % (esc(sid), esc(s["type"]), esc(s["UID"]), esc(s["xsiType"]),
                      esc(s["series_description"]), files))
    out.append('</xnat:scans></xnat:MRSession>')
    return "\n".join(out)


def file_count(holder):
    """DICOM files (both DICOM and secondary resources) of a session or prearchive entry."""
    if "files" in holder and "scans" not in holder:
        return len(holder["files"])
    return xm.dicom_file_count(holder)


def scans_summary(holder):
    """The /_admin/state view of a session's scans: files counts DICOM and secondary."""
    out = {}
    for sid, s in xm.sorted_scans(holder):
        dicom = [f for label, f in xm.resource_files(s)
                 if label in (sop_classes.RESOURCE_DICOM, sop_classes.RESOURCE_SECONDARY)]
        out[sid] = {"UID": s["UID"], "series_description": s["series_description"],
                    "modality": s["modality"], "files": len(dicom),
                    "resources": {label: len(r["files"]) for label, r in s["resources"].items()},
                    "sop_uids": sorted(f["sop_uid"] for f in dicom)}
    return out


def resource_rows(base, scans):
    """XNAT's scan resource listing: one row per resource; cat_id is the scan's ID."""
    rows = []
    for sid, s in scans:
        for label, r in s["resources"].items():
            rows.append({"xnat_abstractresource_id": r["xnat_abstractresource_id"],
                         "cat_id": sid, "label": label, "element_name": "xnat:resourceCatalog",
                         "category": "scans", "cat_desc": "", "format": r["format"],
                         "content": r["content"], "tags": "",
                         "file_count": len(r["files"]),
                         "file_size": sum(f["size"] for f in r["files"].values()),
                         "URI": "%s/scans/%s/resources/%s" % (base, sid,
                                                              r["xnat_abstractresource_id"])})
    return rows


def file_rows(base, scans, resource=None):
    """XNAT's file listing: collection is the resource's label, the URI names it."""
    rows = []
    for sid, s in scans:
        for label, r in s["resources"].items():
            if resource not in (None, "ALL", label, r["xnat_abstractresource_id"]):
                continue
            for f in sorted(r["files"].values(), key=lambda f: f["name"]):
                rows.append({"Name": f["name"], "Size": f["size"],
                             "URI": "%s/scans/%s/resources/%s/files/%s" % (base, sid, label,
                                                                          f["name"]),
                             "collection": label, "file_tags": "", "file_format": r["format"],
                             "file_content": r["content"],
                             "cat_ID": r["xnat_abstractresource_id"], "digest": f["digest"]})
    return rows


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
        self._t0 = None
        if getattr(self.server, "nagle", False):
            return  # Nagle left on, as Python's http.server leaves it
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

    def send_payload(self, status, body, ctype, headers=()):
        if isinstance(body, str):
            body = body.encode("utf-8")
        self._settle_body()
        # Tomcat 8.5+ (XNAT 1.8 runs on Tomcat 9) sends no reason phrase at all.
        self.send_response(status, "")
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self._headers_buffer.append(b"\r\n")
        self.status_sent = status
        if getattr(self.server, "nagle", False):
            # --nagle: headers, then the body in a second write, Nagle on (Python's http.server
            # as it ships): the body waits for the client's ACK of the headers.
            self._record_request()  # before the client can see the answer
            self.flush_headers()
            if self.command != "HEAD" and body:
                self.wfile.write(body)
            return
        # Headers and body in one write: no Nagle/delayed-ACK stall between them.
        if self.command != "HEAD":
            self._headers_buffer.append(body)
        self._record_request()  # before the client can see the answer
        self.flush_headers()

    def send_json(self, obj, status=200):
        self.send_payload(status, json.dumps(obj, indent=None), "application/json")

    def send_result_set(self, rows, title="Results"):
        rows = [{k: ("" if v is None else str(v)) for k, v in r.items()} for r in rows]
        self.send_json({"ResultSet": {"Result": rows, "totalRecords": str(len(rows)),
                                      "title": title}})

    def send_error_page(self, status, reason, detail, headers=()):
        """XNAT's error answer: Restlet's status page (StatusFilter) with the message in <h3>,
        not escaped, as Restlet does; no reason phrase (Tomcat). The stand-in's own detail goes
        to its log only: XNAT sends none."""
        if detail and detail != reason:
            log("%d %s (%s)" % (status, reason, detail))
        body = ("<html>\n<head>\n   <title>Status page</title>\n</head>\n<body>\n<h3>%s</h3>"
                "<p>You can get technical details <a href=\"http://www.w3.org/Protocols/"
                "rfc2616/rfc2616-sec10.html\">here</a>.<br>\nPlease continue your visit at our "
                "<a href=\"/\">home page</a>.\n</p>\n</body>\n</html>\n" % reason)
        self.send_payload(status, body, "text/html;charset=UTF-8", headers=headers)

    def _start_request(self, method, path, query):
        """A request has arrived: its place on the request log's clock, nothing known yet."""
        self._req_info = (method, path, query)
        self._recorded = False
        self._t0 = time.monotonic()
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
            now = time.monotonic()
            entry = {"seq": self._seq, "answered_seq": None, "method": method, "path": path,
                     "query": query, "status": status,
                     "arrived": round(self._t0, 6), "answered": round(now, 6),
                     "ms": round((now - self._t0) * 1000.0, 3)}
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
            self.send_response(401, "")
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
            self._record_request()  # logged before the client can see the connection close
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
                for sid, s in xm.sorted_scans(e)]}]
            fields = {k: v for k, v in row.items() if k != "xnat:subjectassessordata/id"}
            return self.send_json({"items": [{"meta": {"xsi:type": e["xsiType"]},
                                              "data_fields": fields, "children": children}]})
        if method not in ("GET", "HEAD"):
            raise HttpError(405, "Method Not Allowed", "Not supported by the stand-in.")
        base = "/data/experiments/%s" % e["ID"]
        if rest == ["scans"]:
            # Like XNAT's listing: no UID column (it is on each scan's own JSON).
            rows = [{"xsiType": s["xsiType"],
                     "xnat_imagescandata_id": s.get("xnat_imagescandata_id", ""), "ID": sid,
                     "type": s["type"], "series_description": s["series_description"],
                     "note": "", "quality": "usable",
                     "URI": "%s/scans/%s" % (base, sid)}
                    for sid, s in xm.sorted_scans(e)]
            return self.send_result_set(rows, "Scans")
        if rest == ["resources"]:
            return self.send_result_set([], "Resources")
        if rest[0] != "scans" or len(rest) < 2:
            raise HttpError(404, "Not Found", "No resource at %s/%s" % (base, "/".join(rest)))
        wanted = rest[1]
        if wanted == "ALL":
            scans = xm.sorted_scans(e)
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
            # XNAT's resource listing: one row per resource (DICOM, secondary, SNAPSHOTS, ...);
            # cat_id is the ID of the scan the resource belongs to.
            return self.send_result_set(resource_rows(base, scans), "Resources")
        if sub == ["files"] or (len(sub) == 3 and sub[0] == "resources" and sub[2] == "files"):
            res = sub[1] if len(sub) == 3 else None
            if res not in (None, "ALL") and not any(
                    res in (label, r["xnat_abstractresource_id"])
                    for _, s in scans for label, r in s["resources"].items()):
                raise HttpError(404, "Not Found", "Resource %s not found." % res)
            return self.send_result_set(file_rows(base, scans, res), "Files")
        if len(sub) == 4 and sub[0] == "resources" and sub[2] == "files":
            for sid, s in scans:
                for label, r in s["resources"].items():
                    f = r["files"].get(sub[3])
                    if f is not None and sub[1] in (label, r["xnat_abstractresource_id"]):
                        with open(os.path.join(st.data_dir, f["path"]), "rb") as fh:
                            data = fh.read()
                        return self.send_payload(200, data, "application/octet-stream")
            raise HttpError(404, "Not Found", "File %s not found." % sub[3])
        raise HttpError(404, "Not Found", "No resource at %s/%s" % (base, "/".join(rest)))

    # --- prearchive -----------------------------------------------------------------------
    @staticmethod
    def _pre_row(en):
        row = {k: en.get(k, "") for k in ("folderName", "lastmod", "name", "project", "scan_date",
                                          "status", "subject", "tag", "timestamp", "uploaded",
                                          "url", "scan_time", "prevent_anon",
                                          "prevent_auto_commit", "source", "visit", "protocol",
                                          "timeZone")}
        row["autoarchive"] = {0: "Manual", 4: "AutoArchive", 5: "AutoArchiveOverwrite"}.get(
            en.get("autoarchive"), "")
        return row

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
                return self._prearchive_session(en, segs[4:], q)
        raise HttpError(404, "Not Found", "No prearchive resource at /%s" % "/".join(segs))

    def _prearchive_session(self, en, rest, q):
        """One prearchive session. Its scans, resources and document come from the session
        document, which exists only once the session is built (PrearcSessionResourceA.
        retrieveSessionBean, PrearcSessionResource.represent): 404 before."""
        doc = en.get("document")
        if rest == ["logs", "last"]:
            # PrearcUtils.getLastLog: the text of the newest log, e.g. why archiving failed.
            logs = en.get("logs") or []
            return self.send_payload(200, logs[-1]["text"] if logs else "", "text/plain")
        if rest == ["logs"]:
            return self.send_result_set([{"id": x["id"], "date": x["time"], "entry": x["text"]}
                                         for x in en.get("logs") or []], "Logs")
        if rest in (["scans"], ["resources"]) and doc is None:
            raise HttpError(404, xm.NO_PREARC_RESOURCE)
        if rest == ["scans"]:
            # As XNAT's PrearcScansListResource: no UID, no file counts.
            return self.send_result_set([{"ID": sid, "xsiType": s["xsiType"],
                                          "series_description": s["series_description"]}
                                         for sid, s in xm.sorted_scans(doc)], "Scans")
        if rest == ["resources"]:
            # As XNAT's PrearcSessionResourcesList: one row per scan resource.
            rows = [{"category": "scans", "cat_id": sid, "label": label,
                     "file_count": len(r["files"]),
                     "file_size": sum(f["size"] for f in r["files"].values())}
                    for sid, s in xm.sorted_scans(doc) for label, r in s["resources"].items()]
            return self.send_result_set(rows, "Resources")
        if not rest and q.get("format", "").lower() == "xml":
            if doc is None:
                raise HttpError(404, xm.NO_DOCUMENT)
            return self.send_payload(200, _session_xml(en, doc), "text/xml")
        if not rest:
            return self.send_result_set([self._pre_row(en)], "Prearchive")
        raise HttpError(404, "Not Found", "No prearchive resource at %s/%s"
                        % (en["url"], "/".join(rest)))

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
            if not files:   # Importer.handlePost
                raise HttpError(400, "Unable to identify upload format.")
            if len(files) > 1:
                raise HttpError(400, "Importer is limited to one uploaded resource at a time.")
            return files[0][0].replace("\\", "/").split("/")[-1], files[0][1], fields
        self.read_body()
        raise HttpError(400, "Unable to identify upload format.")

    def import_service(self, q, user):
        st = self.st
        handler = q.get("import-handler", "DICOM-zip")
        if handler != "DICOM-zip":   # ImporterHandlerA.buildImporter
            raise HttpError(404, "Unknown importer implementation specified: " + handler)
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
            uris = self._do_import(q, rec)
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
        rec["uris"] = [u if u.startswith("/xapi/") else "/data" + u for u in uris]
        rec["uri"] = rec["uris"][0] if uris else ""
        self._concerns_upload(rec)
        with st.lock:
            key = "%s/%s/%s" % (rec["project"], rec["subject"], rec["session"])
            st.per_session[key] = st.per_session.get(key, 0) + 1
            st.uploads.append(rec)
            st.save()
        self.send_uri_list(uris)

    def send_uri_list(self, uris):
        """Importer.represent: text/uri-list, one URI a line with CRLF, each with "/data" in
        front (wrapPartialDataURI); text/plain (one URI, no CRLF) when format=txt or the client
        prefers text/plain (Restlet's variant negotiation); an empty list is an empty body."""
        uris = [u if u.startswith("/xapi/") or u.startswith("/data") else "/data" + u
                for u in uris]
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        fmt = (q.get("format") or [""])[-1].lower()
        if fmt == "txt" or (not fmt and self._prefers_text_plain()):
            body = uris[0] if len(uris) == 1 else "".join(u + "\r\n" for u in uris)
            return self.send_payload(200, body, "text/plain;charset=UTF-8")
        self.send_payload(200, "".join(u + "\r\n" for u in uris), "text/uri-list;charset=UTF-8")

    def _prefers_text_plain(self):
        """Restlet picks the variant (JSON, HTML, XML, text/plain, in that order) the Accept
        header rates highest; without Accept, JSON, which Importer answers as a uri-list."""
        best, best_q = None, 0.0
        for part in (self.headers.get("Accept") or "").split(","):
            bits = [b.strip() for b in part.split(";")]
            q = 1.0
            for b in bits[1:]:
                if b.startswith("q="):
                    try:
                        q = float(b[2:])
                    except ValueError:
                        q = 0.0
            for variant in ("application/json", "text/html", "text/xml", "text/plain"):
                if bits[0] in (variant, variant.split("/")[0] + "/*", "*/*") and q > best_q:
                    best, best_q = variant, q
                    if bits[0] == variant:
                        break
        return best == "text/plain"

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
        """The DICOM-zip handler (Importer.handlePost, DicomZipImporter.call): every entry of the
        archive is filed into the prearchive in order (xnat_model.file_object); with dest (or the
        client's action=commit) the sessions are then built and, for dest=/archive, archived
        (xnat_model.commit_sessions). Returns the URIs XNAT answers with."""
        st = self.st
        name, data, fields = self._upload_payload(q)
        params = dict(fields)
        params.update(q)
        # Importer.handlePost: Ignore-Unparsable comes only from the client, or from its
        # action=commit; DicomZipImporter reads it before dest adds action=commit.
        iu = params.get("Ignore-Unparsable")
        if iu is None and str(params.get("action", "")).lower() == "commit":
            iu = "true"
        ignore_unparsable = str(iu).lower() == "true"
        if params.get("dest"):
            try:
                to_archive, props = xm.parse_destination(params["dest"])
            except xm.XnatFailure as e:
                raise HttpError(e.status, e.message)
            params.update(props)
            params["action"] = "commit"
            params["AA"] = params["auto-archive"] = "true" if to_archive else "false"
        for alias, key in (("project", "PROJECT_ID"), ("subject", "SUBJECT_ID"),
                           ("session", "EXPT_LABEL")):
            if alias in params:
                params[key] = params[alias]
        rec.update(project=params.get("PROJECT_ID") or "", subject=params.get("SUBJECT_ID") or "",
                   session=params.get("EXPT_LABEL") or "")
        try:
            entries = xm.unpack(name, data)
        except xm.XnatFailure as e:
            raise HttpError(e.status, e.message)
        parsed = [(ename, parse_dicom(ename, edata), edata) for ename, edata in entries]
        keys = self._claim_files(params, parsed)
        try:
            self._hold_if_slow()
            with st.lock:
                return self._import_entries(params, parsed, ignore_unparsable, rec)
        finally:
            with st.lock:
                st.in_progress.difference_update(keys)

    def _claim_files(self, params, parsed):
        """PrearcUtils.lockFile: two uploads writing the same object of the same session at once
        make the second fail with 400 "Concurrent file sends of the same data is not
        supported." (XNAT locks a file while it writes it; the stand-in holds the claim for the
        whole request, so that the slow_import knob can make the overlap happen)."""
        st = self.st
        keys = set((params.get("PROJECT_ID") or "", params.get("EXPT_LABEL") or "",
                    info.get("study_uid", ""), info.get("sop_uid", ""))
                   for _, info, _ in parsed if info and info.get("sop_uid"))
        with st.lock:
            if keys & st.in_progress:
                raise HttpError(400, CONCURRENT_SEND)
            if st.knobs["concurrent_send"] > 0:
                st.knobs["concurrent_send"] -= 1
                raise HttpError(400, CONCURRENT_SEND, "Injected by the concurrent_send knob.")
            st.in_progress.update(keys)
        return keys

    def _hold_if_slow(self):
        st = self.st
        with st.lock:
            hold = st.knobs["slow_import"]
            ms = 0
            if hold["count"] > 0:
                hold["count"] -= 1
                ms = hold["ms"]
        if ms:
            time.sleep(ms / 1000.0)

    def _import_entries(self, params, parsed, ignore_unparsable, rec):
        """DicomZipImporter.importZipFile and call(): a ClientException from an entry fails the
        upload (the entries filed before it stay in the prearchive) unless Ignore-Unparsable is
        on, when the entry is skipped; only if nothing was filed is the last one thrown."""
        st = self.st
        uris, skipped, filed = [], None, 0
        try:
            for ename, info, edata in parsed:
                try:
                    url = xm.file_object(st, params, ename, info, edata)
                except xm.XnatFailure as e:
                    if not ignore_unparsable:
                        raise
                    skipped = e
                    continue
                if url is None:
                    continue
                filed += 1
                if url not in uris:
                    uris.append(url)
            rec["files"] = filed
            rec["filtered"] = len(parsed) - filed - (1 if skipped else 0)
            if not uris and skipped is not None:
                raise skipped
            if uris and rec["project"] != uris[0].split("/")[3]:
                rec["project"] = uris[0].split("/")[3]
            if params.get("action") == "commit":
                uris = xm.commit_sessions(st, uris, self._auto_archive(params),
                                          *xm.override_value(params.get("overwrite")),
                                          params)
                self._note_archived(rec, uris)
            return uris
        except xm.XnatFailure as e:
            rec["files"] = filed
            raise HttpError(e.status, e.message, str(e.__cause__ or e.message))
        finally:
            st.save()

    @staticmethod
    def _auto_archive(params):
        """GradualDicomImporter.isAutoArchive: AA or auto-archive is "true"."""
        return any(str(params.get(k, "")).lower() == "true" for k in ("AA", "auto-archive"))

    @staticmethod
    def _note_archived(rec, uris):
        for u in uris:
            parts = u.split("/")
            if len(parts) >= 8 and parts[1] == "archive":
                rec.update(project=parts[3], subject=parts[5], session=parts[7])
                return

    def archive_service(self, q):
        """POST /data/services/archive (Archiver.finishSingleSessionArchive, QueueBasedImageCommit,
        PrearchiveArchiveHandler): merging is always allowed; overwrite=append or delete
        overrides XNAT's checks and overwrites files. A refusal is 500 "FAILED: Unable to
        archive NAME: Operation Failed: <XNAT's message>"; success is the session's URI, as a
        303 redirect when the session was to be auto-archived."""
        st = self.st
        with st.lock:
            en = self._find_pre(q.get("src", ""))
            override = (q.get("overwrite") or "").lower() in ("append", "delete")
            params = {k: q[k] for k in ("project", "subject", "session") if q.get(k)}
            redirect = xm.is_auto_archive(st, en) and en.get("autoarchive") in (4, 5)
            try:
                uri = xm.archive_entry(st, en, override, True,
                                       xm.is_overwrite_files(st, en, {}), params)
            except xm.XnatFailure as e:
                st.save()
                raise HttpError(500, "FAILED: Unable to archive %s: Operation Failed: %s"
                                % (en["folderName"], e.message))
            st.save()
        if redirect or q.get("redirect", "").lower() == "true":
            host = self.headers.get("Host") or "localhost"
            scheme = "https" if self.server.ssl_context is not None else "http"
            return self.send_payload(303, "", "text/plain",
                                     headers=[("Location", "%s://%s/data%s" % (scheme, host, uri))])
        self.send_payload(200, "/data" + uri + "\r\n", "text/uri-list")

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
            elif name in ADMIN_MODEL_KNOBS and method == "POST":
                ADMIN_MODEL_KNOBS[name](self, q)
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
                if self.server.receiver is not None and self.server.receiver.refused:
                    self.server.receiver.accept_all()
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
                                            "xsiType": e.get("xsiType", ""),
                                            "files": file_count(e), "scans": scans_summary(e)}
                subs[s["label"]] = {"ID": s["ID"], "experiments": exps}
            projects[pid] = {"readonly": p["readonly"], "subjects": subs,
                             "anonymisation": p.get("anonymisation", "off"),
                             "prearchive_code": p.get("prearchive_code", 4),
                             "series_filter": p.get("series_filter", "")}
        pre = [{"project": e["project"], "timestamp": e["timestamp"], "name": e["name"],
                "subject": e["subject"], "tag": e["tag"], "status": e["status"],
                "url": e["url"], "files": len(e.get("files", {})),
                "autoarchive": e.get("autoarchive"), "built": e.get("document") is not None,
                "scans": scans_summary(e["document"]) if e.get("document") else {},
                "logs": [x["text"] for x in e.get("logs", [])]}
               for e in st.prearchive]
        return {"projects": projects, "prearchive": pre, "sessions": len(st.sessions),
                "site": dict(st.site), "session_idle": st.session_idle}


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

# ----------------------------------------------------------------------------------------------
# Admin knobs about XNAT's data model (site preferences, resources, the rebuilder)
# ----------------------------------------------------------------------------------------------

def _knob_separate_secondary(handler, q):
    """The site preference separateSecondaryDicomOnArchive (default on): off files every
    instance under "DICOM". Applies to sessions built from now on."""
    handler.st.site["separate_secondary"] = q.get("on", "1") not in ("0", "false", "off")
    handler.st.save()


def _knob_scan_resource(handler, q):
    """Adds a non-DICOM resource (e.g. SNAPSHOTS, NIFTI) with N small files to an archived
    scan, as XNAT's snapshot generation or a pipeline would."""
    st = handler.st
    e = st.find_experiment(q.get("project", ""), q.get("session", ""))
    if e is None or q.get("scan") not in e["scans"]:
        raise HttpError(404, "Not Found", "No scan %s in %s/%s" % (
            q.get("scan"), q.get("project"), q.get("session")))
    label = q.get("label", "SNAPSHOTS")
    if label in (sop_classes.RESOURCE_DICOM, sop_classes.RESOURCE_SECONDARY):
        raise HttpError(400, "Bad Request", "use a label other than DICOM and secondary")
    scan = e["scans"][q["scan"]]
    res = scan["resources"].get(label) or xm.new_resource(
        st, label, q.get("format", "GIF"), q.get("content", "SNAPSHOTS"))
    scan["resources"][label] = res
    for i in range(int(q.get("files", "1"))):
        name = "%s_%s_%d.%s" % (q["scan"], label.lower(), len(res["files"]) + 1,
                                q.get("format", "GIF").lower())
        data = ("%s %s %d\n" % (label, q["scan"], i)).encode()
        path = os.path.join(st.data_dir, e["dir"], "SCANS", q["scan"], label, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        res["files"][name] = xm._file_info(name, data, path, st)
    st.save()


def _knob_session_idle(handler, q):
    """SessionXMLRebuilder's interval in seconds (also --dicom-idle)."""
    handler.st.session_idle = float(q.get("seconds", "300"))


def _knob_rebuild(handler, q):
    """Runs the session XML rebuilder now for sessions idle at least older_than seconds (0: all
    RECEIVING sessions), as if XNAT's interval had passed."""
    run_rebuilder(handler.st, float(q.get("older_than", "0")))


def _knob_receiver_refuse_sop(handler, q):
    """XNAT's DICOM receiver refuses, in association negotiation, a SOP class it does not list
    (CStoreService.CUIDS): takes uid out of (on=0: back into) what the receiver accepts."""
    if handler.server.receiver is None:
        raise HttpError(400, "Bad Request", "no DICOM receiver (--dicom-port)")
    if not xm.UID_RE.match(q.get("uid", "")):
        raise HttpError(400, "Bad Request", "uid must be a UID")
    handler.server.receiver.refuse(q["uid"], q.get("on", "1") not in ("0", "false", "off"))


ADMIN_MODEL_KNOBS = {"separate_secondary": _knob_separate_secondary,
                     "receiver_refuse_sop": _knob_receiver_refuse_sop,
                     "scan_resource": _knob_scan_resource,
                     "session_idle": _knob_session_idle,
                     "rebuild": _knob_rebuild}


def run_rebuilder(st, idle_s):
    """One pass of the session XML rebuilder (xnat_model.build_idle_sessions); sessions that
    came from the DICOM receiver are listed in /_admin/uploads with status "dicom"."""
    def record(en, result):
        if en.get("origin") != "dicom":
            return
        rec = {"project": en["project"], "subject": en["subject"], "session": en["name"],
               "files": len(en.get("files", {})), "status": "dicom", "time": now_iso(),
               "uri": result["uri"]}
        if "error" in result:
            rec.update(error=result["error"], prearchive_status=result["status"])
        st.uploads.append(rec)
        log("DICOM receiver: session %s/%s -> %s" % (en["project"], en["name"],
                                                     result.get("error") or result["uri"]))
    with st.lock:
        before = len(st.prearchive), sum(1 for e in st.prearchive if e["status"] == "RECEIVING")
        xm.build_idle_sessions(st, time.time(), idle_s, record)
        after = len(st.prearchive), sum(1 for e in st.prearchive if e["status"] == "RECEIVING")
        if before != after:
            st.save()


def rebuilder_thread(st, stop):
    while not stop.wait(0.2):
        try:
            run_rebuilder(st, st.session_idle)
        except Exception:
            traceback.print_exc(file=sys.stderr)


def receive_object(st, name, info, data):
    """The DICOM receiver hands each stored instance here: it is filed like XNAT's CStoreService
    does (GradualDicomImporter, project and labels from the routing text), and the rebuilder
    builds the session once it has been idle."""
    with st.lock:
        try:
            xm.file_object(st, {}, name, info, data, origin="dicom")
        except xm.XnatFailure as e:
            log("DICOM receiver: %s refused: %s" % (name, e.message))
        st.save()


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
    ap.add_argument("--dicom-idle", "--session-idle", type=float, default=300.0,
                    help="seconds a RECEIVING prearchive session must be idle before it is built "
                         "and auto-archived (XNAT's session XML rebuilder: 5 minutes)")
    ap.add_argument("--site-anonymisation", choices=("on", "off", "missing", "forbidden"),
                    default="on", help="the site-wide anonymisation script (default: enabled)")
    ap.add_argument("--nagle", action="store_true",
                    help="write each answer's headers and body in two writes with Nagle's "
                         "algorithm on (as Python's http.server does; default: one write, "
                         "TCP_NODELAY)")
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(argv if argv is not None else sys.argv[1:])
    users = {}
    for item in filter(None, args.users.split(",")):
        u, _, p = item.partition(":")
        users[u] = p
    split = lambda s: [x for x in (s or "").split(",") if x]
    state = State(args.data_dir, split(args.projects), split(args.readonly_projects),
                  args.label_policy, args.site_anonymisation, args.dicom_idle)
    server = Server((args.host, args.port), Handler)
    server.receiver = None
    server.state = state
    server.users = users
    server.roles = parse_roles(args.role)
    server.session_timeout = args.session_timeout
    server.nagle = args.nagle
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
        receiver = Receiver(os.path.join(args.data_dir, "dicom-spool"), args.dicom_port,
                            args.dicom_ae, parse_dicom,
                            lambda name, info, data: receive_object(state, name, info, data), log)
        server.receiver = receiver
    stop_rebuilder = threading.Event()
    threading.Thread(target=rebuilder_thread, args=(state, stop_rebuilder), daemon=True).start()

    def on_term(signum, frame):
        raise KeyboardInterrupt()
    signal.signal(signal.SIGTERM, on_term)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        stop_rebuilder.set()
        if receiver:
            receiver.stop()
        server.server_close()
        log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
