#!/usr/bin/python3
"""Self-test of the XNAT stand-in: starts it as a subprocess on a free port and exercises the
import service, listings, XNAT's merge rules, the prearchive, fault knobs, sessions, HTTPS and
the DICOM receiver. Each behaviour taken from XNAT's source has a test here named in
CONFORMANCE.md.

Run: /usr/bin/python3 tests/xnat_standin/test_standin.py   (or python3 -m unittest from here)
"""

import base64
import hashlib
import http.client
import io
import json
import os
import shutil
import random
import re
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.parse
import zipfile

from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

HERE = os.path.dirname(os.path.abspath(__file__))
STANDIN = os.path.join(HERE, "standin.py")
MR_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
SC_STORAGE = "1.2.840.10008.5.1.4.1.1.7"
DOSE_SR = "1.2.840.10008.5.1.4.1.1.88.67"
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
PDF_STORAGE = "1.2.840.10008.5.1.4.1.1.104.1"
GSPS = "1.2.840.10008.5.1.4.1.1.11.1"
SIEMENS_CSA = "1.3.12.2.1107.5.9.1"
PRIVATE_SOP = "1.2.826.0.1.3680043.9.7777.1"
WRAP = "unable to archive for the Prearchive session"
HAS_FILES = "Session already exists with matching files."
CAT_ENTRY_MATCH = "Session already exists with the same resources."
AUTH = "Basic " + base64.b64encode(b"alice:secret").decode()


def make_dicom(study_uid, series_uid, series_number, instance, sop_uid=None, modality="MR",
               with_sop=True, sop_class=MR_STORAGE, comments=None, description=None):
    sop_uid = sop_uid or generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class or MR_STORAGE
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.is_little_endian = True
    ds.is_implicit_VR = False
    if sop_class:
        ds.SOPClassUID = sop_class
    if comments:
        ds.PatientComments = comments
    if with_sop:
        ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    if series_number is not None:
        ds.SeriesNumber = series_number
    ds.InstanceNumber = instance
    ds.Modality = modality
    ds.SeriesDescription = description or "T1 series %s" % series_number
    ds.PatientName = "Doe^John"
    ds.PatientID = "PID001"
    ds.StudyDate = "20240102"
    ds.Rows = 2
    ds.Columns = 2
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = b"\1\2\3\4"
    buf = io.BytesIO()
    ds.save_as(buf, write_like_original=False)
    return sop_uid, buf.getvalue()


def make_study(n_series2=1, study_uid=None):
    """Three files: two in series 1, one in series 2, plus a non-DICOM text file."""
    study_uid = study_uid or generate_uid()
    s1, s2 = generate_uid(), generate_uid()
    files = [make_dicom(study_uid, s1, 1, 1), make_dicom(study_uid, s1, 1, 2)]
    files += [make_dicom(study_uid, s2, 2, i + 1) for i in range(n_series2)]
    return study_uid, (s1, s2), files


def make_zip(files, extra_text=False, names=None):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i, (_, data) in enumerate(files):
            zf.writestr("study/" + (names[i] if names else "IM%04d" % i), data)
        if extra_text:
            zf.writestr("study/README.txt", "not a DICOM file\n")
    return buf.getvalue()


def start_standin(tmp, extra=(), timeout=15):
    port_file = os.path.join(tmp, "port")
    args = ["/usr/bin/python3", STANDIN, "--port", "0", "--data-dir", os.path.join(tmp, "data"),
            "--users", "alice:secret,bob:pw2", "--projects", "P1,P2",
            "--readonly-projects", "RO", "--port-file", port_file] + list(extra)
    log = open(os.path.join(tmp, "standin.log"), "w")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, text=True)
    line = proc.stdout.readline()
    if not line.startswith("LISTENING "):
        proc.kill()
        raise RuntimeError("stand-in did not start: %r (see %s)" % (line, log.name))
    port = int(line.split()[1])
    with open(port_file) as f:
        assert int(f.read()) == port
    return proc, port, log


class Client:
    def __init__(self, port, https_ctx=None, host="127.0.0.1"):
        self.port, self.ctx, self.host = port, https_ctx, host
        self.conn = None

    def connect(self):
        if self.ctx:
            return http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=10)
        return http.client.HTTPConnection(self.host, self.port, timeout=10)

    def req(self, method, path, body=None, headers=None, auth=AUTH, keep=True):
        h = dict(headers or {})
        if auth:
            h["Authorization"] = auth
        if self.conn is None or not keep:
            self.close()
            self.conn = self.connect()
        conn = self.conn
        try:
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
        except Exception:
            self.close()
            raise
        data = r.read()
        if r.will_close:
            self.close()
        return r.status, r.reason, r, data

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def json(self, path, **kw):
        st, reason, _, data = self.req("GET", path, **kw)
        if st != 200:
            raise AssertionError("GET %s -> %d %s %s" % (path, st, reason, data[:200]))
        return json.loads(data)

    def rows(self, path, **kw):
        return self.json(path, **kw)["ResultSet"]["Result"]

    def text(self, path, **kw):
        st, _, _, data = self.req("GET", path, **kw)
        return st, data.decode("utf-8", "replace")

    def admin(self, method, path):
        return self.req(method, "/_admin/" + path, auth=None)

    def import_zip(self, zbytes, project="P1", subject="SUBJ1", session="SESS1", extra="",
                   dest="/archive", headers=None, **kw):
        q = {"import-handler": "DICOM-zip", "PROJECT_ID": project, "SUBJECT_ID": subject,
             "EXPT_LABEL": session, "inbody": "true"}
        if dest:
            q["dest"] = dest
        path = "/data/services/import?" + urllib.parse.urlencode(q) + extra
        h = {"Content-Type": "application/zip"}
        h.update(headers or {})
        return self.req("POST", path, body=zbytes, headers=h, **kw)


class StandinTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="standin-test-")
        t0 = time.time()
        cls.proc, cls.port, cls.log = start_standin(cls.tmp)
        cls.startup = time.time() - t0

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()
        cls.proc.wait(5)
        cls.proc.stdout.close()
        cls.log.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.c = Client(self.port)
        st, _, _, _ = self.c.admin("POST", "reset")
        self.assertEqual(st, 200)

    def tearDown(self):
        self.c.close()

    def test_startup_fast(self):
        self.assertLess(self.startup, 3.0)

    def test_zz_no_internal_errors(self):
        with open(self.log.name) as f:
            text = f.read()
        self.assertNotIn("Traceback", text)
        self.assertIn("POST /data/services/import?", text)

    def test_auth(self):
        st, _, r, _ = self.c.req("GET", "/data/projects?format=json", auth=None)
        self.assertEqual(st, 401)
        self.assertEqual(r.getheader("WWW-Authenticate"), 'Basic realm="XNAT"')
        bad = "Basic " + base64.b64encode(b"alice:wrong").decode()
        self.assertEqual(self.c.req("GET", "/data/projects?format=json", auth=bad)[0], 401)
        ids = [p["ID"] for p in self.c.rows("/data/projects?format=json")]
        self.assertEqual(sorted(ids), ["P1", "P2", "RO"])
        self.assertEqual(self.c.req("GET", "/data/projects/P1?format=json")[0], 200)
        self.assertEqual(self.c.req("GET", "/data/projects/NOPE?format=json")[0], 404)
        # The request log never holds credentials.
        st, _, _, data = self.c.admin("GET", "requests")
        self.assertNotIn(b"secret", data)
        self.assertNotIn(AUTH.encode(), data)
        self.assertTrue(json.loads(data)["requests"])
        with open(self.log.name) as f:
            self.assertNotIn("YWxpY2U6c2VjcmV0", f.read())  # base64 of alice:secret

    def test_import_list_and_files(self):
        study, (s1, s2), files = make_study()
        st, reason, r, body = self.c.import_zip(make_zip(files))
        self.assertEqual(st, 200, body)
        self.assertEqual(body, b"/data/archive/projects/P1/subjects/SUBJ1/experiments/SESS1\r\n")
        exps = self.c.rows("/data/projects/P1/experiments?format=json&columns=ID,label,UID"
                           "&label=SESS1")
        self.assertEqual(len(exps), 1)
        e = exps[0]
        self.assertEqual((e["label"], e["UID"], e["subject_label"], e["xsiType"]),
                         ("SESS1", study, "SUBJ1", "xnat:mrSessionData"))
        self.assertRegex(e["ID"], r"^XNAT_E\d{5}$")
        self.assertEqual(self.c.rows("/data/projects/P1/experiments?format=json&label=OTHER"), [])
        scans = self.c.rows("/data/experiments/%s/scans?format=json" % e["ID"])
        self.assertEqual([s["ID"] for s in scans], ["1", "2"])
        self.assertNotIn("UID", scans[0])  # like XNAT: the UID is on the scan's own JSON
        item = self.c.json("/data/experiments/%s?format=json" % e["ID"])
        kids = item["items"][0]["children"][0]["items"]
        self.assertEqual([(k["data_fields"]["ID"], k["data_fields"]["UID"]) for k in kids],
                         [("1", s1), ("2", s2)])
        res = self.c.rows("/data/experiments/%s/scans/ALL/resources?format=json" % e["ID"])
        self.assertEqual([(r["cat_id"], r["label"], r["file_count"]) for r in res],
                         [("1", "DICOM", "2"), ("2", "DICOM", "1")])
        self.assertEqual(scans[0]["series_description"], "T1 series 1")
        fl = self.c.rows("/data/experiments/%s/scans/ALL/files?format=json" % e["ID"])
        self.assertEqual(len(fl), 3)
        per_scan = {}
        for f in fl:
            self.assertEqual(f["collection"], "DICOM")
            sid = f["URI"].split("/scans/")[1].split("/")[0]
            self.assertIn("/scans/%s/resources/DICOM/files/%s" % (sid, f["Name"]), f["URI"])
            per_scan[sid] = per_scan.get(sid, 0) + 1
        self.assertEqual(per_scan, {"1": 2, "2": 1})
        name_to_data = {"IM%04d" % i: data for i, (_, data) in enumerate(files)}
        for f in fl:
            st, _, _, data = self.c.req("GET", f["URI"])
            self.assertEqual(st, 200)
            self.assertEqual(data, name_to_data[f["Name"]])  # XNAT keeps the uploaded name
            self.assertEqual(f["digest"], hashlib.md5(data).hexdigest())
            self.assertEqual(int(f["Size"]), len(data))
        res = self.c.rows("/data/experiments/%s/scans/1/resources?format=json" % e["ID"])
        self.assertEqual((res[0]["label"], res[0]["file_count"]), ("DICOM", "2"))
        # project-qualified forms and subject-qualified form
        q = self.c.rows("/data/projects/P1/experiments/SESS1/scans?format=json")
        self.assertEqual(len(q), 2)
        item = self.c.json("/data/projects/P1/subjects/subj1/experiments/SESS1?format=json")
        self.assertEqual(item["items"][0]["data_fields"]["UID"], study)
        subs = self.c.rows("/data/projects/P1/subjects?format=json")
        self.assertEqual([(s["label"], s["ID"][:6]) for s in subs], [("SUBJ1", "XNAT_S")])
        state = json.loads(self.c.admin("GET", "state")[3])
        self.assertEqual(state["projects"]["P1"]["subjects"]["SUBJ1"]["experiments"]["SESS1"]
                         ["files"], 3)
        up = json.loads(self.c.admin("GET", "uploads")[3])
        self.assertEqual(up["per_session"], {"P1/SUBJ1/SESS1": 1})
        self.assertEqual(up["uploads"][0]["files"], 3)

    def test_merge_into_held_session_and_conflicts(self):
        """DicomZipImporter.archiveSession merges into an existing session when the project's
        prearchive code is not Manual, even without overwrite; instances XNAT already holds are
        refused (MergeSessionsA.checkForConflict) and the upload parks as CONFLICT."""
        study, (s1, s2), files = make_study()
        self.assertEqual(self.c.import_zip(make_zip(files[:2]))[0], 200)
        # new instances only: merged without overwrite=append (prearchive code 4)
        st, _, _, body = self.c.import_zip(make_zip(files[2:], names=["IM0002"]))
        self.assertEqual((st, body),
                         (200, b"/data/archive/projects/P1/subjects/SUBJ1/experiments/SESS1\r\n"))
        self.assertEqual(len(self.c.rows("/data/projects/P1/experiments/SESS1/scans/ALL/files"
                                         "?format=json")), 3)
        self.assertEqual(self.c.rows("/data/prearchive/projects/P1?format=json"), [])
        # the same files again (same names): HAS_FILES, wrapped in a 400
        st, reason, r, body = self.c.import_zip(make_zip(files), extra="&overwrite=append")
        self.assertEqual((st, reason), (400, ""))
        self.assertIn(("<h3>%s</h3>" % WRAP).encode(), body)
        self.assertNotIn(HAS_FILES.encode(), body)  # XNAT's reason is only in the session log
        pre = self.c.rows("/data/prearchive/projects/P1?format=json")
        self.assertEqual([(p["status"], p["tag"]) for p in pre], [("CONFLICT", study)])
        self.assertEqual(self.c.text("/data" + pre[0]["url"] + "/logs/last"), (200, HAS_FILES))
        # the conflicting files are kept, and the session document is there (it was built)
        res = self.c.rows("/data" + pre[0]["url"] + "/resources?format=json")
        self.assertEqual(sum(int(x["file_count"]) for x in res), 3)
        # the same instance under another name: SessionOverwriteCheck (same SOP Instance UID);
        # the CONFLICT entry is reused and archived again with what it holds
        self.c.req("POST", "/data/services/prearchive/delete?src=" + pre[0]["url"])
        st, _, _, _ = self.c.import_zip(make_zip(files[:1], names=["other-name.dcm"]))
        self.assertEqual(st, 400)
        pre = self.c.rows("/data/prearchive/projects/P1?format=json")
        self.assertEqual(self.c.text("/data" + pre[0]["url"] + "/logs/last")[1], CAT_ENTRY_MATCH)
        # overwrite_files=true: the entry is reused, its files replace XNAT's
        st, _, _, _ = self.c.import_zip(make_zip(files[:1], names=["other-name.dcm"]),
                                        extra="&overwrite_files=true")
        self.assertEqual(st, 200)
        self.assertEqual(self.c.rows("/data/prearchive/projects/P1?format=json"), [])
        names = sorted(f["Name"] for f in self.c.rows(
            "/data/projects/P1/experiments/SESS1/scans/1/files?format=json"))
        self.assertEqual(names, ["IM0001", "other-name.dcm"])  # same SOP: one entry, renamed
        up = json.loads(self.c.admin("GET", "uploads")[3])
        self.assertEqual([u["status"] for u in up["uploads"]], [200, 200, 400, 400, 200])
        self.assertEqual(up["uploads"][2]["error"], WRAP)

    def test_prearchive_code_5_overwrites_and_code_0_needs_append(self):
        """PrearcSession.isOverwriteFiles: code 5 overwrites held instances. Code 0 (Manual):
        dest=/archive archives anyway, but only merges with overwrite (PRE_EXISTS)."""
        study, _, files = make_study()
        self.assertEqual(self.c.import_zip(make_zip(files))[0], 200)
        self.c.admin("POST", "prearchive_code?project=P1&code=5")
        self.assertEqual(self.c.import_zip(make_zip(files))[0], 200)
        self.assertEqual(len(self.c.rows("/data/projects/P1/experiments/SESS1/scans/ALL/files"
                                         "?format=json")), 3)
        self.c.admin("POST", "prearchive_code?project=P1&code=0")
        _, more = make_dicom(study, generate_uid(), 9, 1)
        self.assertEqual(self.c.import_zip(make_zip([(None, more)]))[0], 400)
        pre = self.c.rows("/data/prearchive/projects/P1?format=json")
        self.assertEqual(pre[0]["status"], "CONFLICT")
        self.assertEqual(pre[0]["autoarchive"], "Manual")
        self.assertEqual(self.c.text("/data" + pre[0]["url"] + "/logs/last")[1],
                         "Session already exists, retry with overwrite enabled")
        # the next upload reuses the CONFLICT entry; with overwrite=append it merges
        self.assertEqual(self.c.import_zip(make_zip([(None, more)]),
                                           extra="&overwrite=append")[0], 200)
        scans = self.c.rows("/data/projects/P1/experiments/SESS1/scans?format=json")
        self.assertEqual([x["ID"] for x in scans], ["1", "2", "9"])

    def test_overwrite_delete_and_subject_uid_checks(self):
        """PrearcSessionArchiver.checkForConflicts: another study under the label is
        UID_MOD unless overwrite=delete (overrideExceptions); another subject is always
        SUBJECT_MOD; a label differing in case is LABEL_MOD."""
        _, _, files = make_study()
        self.assertEqual(self.c.import_zip(make_zip(files))[0], 200)
        _, _, other = make_study()
        self.assertEqual(self.c.import_zip(make_zip(other))[0], 400)
        pre = self.c.rows("/data/prearchive/projects/P1?format=json")[0]
        self.assertEqual(self.c.text("/data" + pre["url"] + "/logs/last")[1],
                         "Invalid modification of session UID via archive process.")
        # overwrite=delete merges the other study into the session (it does not delete it)
        self.assertEqual(self.c.import_zip(make_zip(other), extra="&overwrite=delete")[0], 200)
        self.assertEqual(len(self.c.rows("/data/projects/P1/experiments/SESS1/scans/ALL/files"
                                         "?format=json")), 6)
        _, _, third = make_study()
        self.assertEqual(self.c.import_zip(make_zip(third), subject="OTHER",
                                           extra="&overwrite=delete")[0], 400)
        pre = [p for p in self.c.rows("/data/prearchive/projects/P1?format=json")][0]
        self.assertEqual(self.c.text("/data" + pre["url"] + "/logs/last")[1],
                         "Invalid modification of session subject via archive process.: SESS1 "
                         "Already Exists for another Subject")
        # subject lookup ignores case: subj1 is SUBJ1
        _, _, fourth = make_study()
        self.assertEqual(self.c.import_zip(make_zip(fourth), subject="subj1", session="sess1",
                                           extra="&overwrite=delete")[0], 400)
        pre = [p for p in self.c.rows("/data/prearchive/projects/P1?format=json")
               if p["name"] == "sess1"][0]
        self.assertEqual(self.c.text("/data" + pre["url"] + "/logs/last")[1],
                         "Invalid modification of session label via archive process.")
        self.assertEqual(len(self.c.rows("/data/projects/P1/subjects?format=json")), 2)

    def test_unknown_project_goes_to_unassigned(self):
        """GradualDicomImporter.getProject: an unknown project files into the Unassigned
        prearchive; dest=/prearchive answers its URI, dest=/archive fails to archive it."""
        study, _, files = make_study()
        st, _, _, body = self.c.import_zip(make_zip(files), project="NOPE", dest="/prearchive")
        self.assertEqual(st, 200)
        self.assertRegex(body.decode(),
                         r"^/data/prearchive/projects/Unassigned/\d{8}_\d{9}/SESS1\r\n$")
        pre = self.c.rows("/data/prearchive/projects/Unassigned?format=json")
        self.assertEqual(len(pre), 1)
        self.assertEqual((pre[0]["tag"], pre[0]["status"], pre[0]["name"]),
                         (study, "READY", "SESS1"))
        self.assertTrue(pre[0]["url"].startswith("/prearchive/projects/Unassigned/"))
        st, _, _, body = self.c.import_zip(make_zip(files), project="NOPE")
        self.assertEqual(st, 400)
        self.assertIn(WRAP.encode(), body)
        pre = self.c.rows("/data/prearchive/projects/Unassigned?format=json")
        self.assertEqual([p["status"] for p in pre], ["ERROR"])  # the same entry, reused
        self.assertEqual(self.c.rows("/data/projects/P1/experiments?format=json"), [])
        # dest=/prearchive into a real project, then archive it from there
        st, _, _, body = self.c.import_zip(make_zip(files), dest="/prearchive")
        self.assertEqual(st, 200)
        src = body.decode().strip()[len("/data"):]
        self.assertTrue(src.startswith("/prearchive/projects/P1/"))
        self.assertEqual(self.c.rows("/data/prearchive/projects/P1?format=json")[0]["status"],
                         "READY")
        st, _, r, body = self.c.req("POST", "/data/services/archive?src=" + src)
        # the session was to be auto-archived (code 4): Archiver redirects to it
        self.assertEqual(st, 303)
        self.assertTrue(r.getheader("Location").endswith(
            "/data/archive/projects/P1/subjects/SUBJ1/experiments/SESS1"))
        self.assertEqual(self.c.rows("/data/prearchive/projects/P1?format=json"), [])

    def test_readonly_bad_input_and_labels(self):
        _, _, files = make_study()
        z = make_zip(files)
        # a project the user may read but not write: filed there, archiving fails (ERROR)
        self.assertEqual(self.c.import_zip(z, project="RO")[0], 400)
        self.assertEqual([p["status"] for p in self.c.rows(
            "/data/prearchive/projects/RO?format=json")], ["ERROR"])
        st, reason, _, body = self.c.import_zip(z, extra="&import-handler=bogus")
        self.assertEqual(st, 404)
        self.assertIn(b"Unknown importer implementation specified: bogus", body)
        self.assertEqual(self.c.req("GET", "/data/services/import")[0], 405)
        # two studies under one label: two prearchive sessions, the second one conflicts
        _, _, other = make_study()
        st, _, _, body = self.c.import_zip(make_zip(files + other[:1]), session="TWO")
        self.assertEqual(st, 400)
        pre = self.c.rows("/data/prearchive/projects/P1?format=json")
        self.assertEqual([(p["name"], p["status"]) for p in pre], [("TWO", "CONFLICT")])
        self.assertEqual(len(self.c.rows("/data/projects/P1/experiments?format=json&label=TWO")),
                         1)
        # missing SOP Instance UID
        _, nosop = make_dicom(generate_uid(), generate_uid(), 1, 1, with_sop=False)
        st, _, _, body = self.c.import_zip(make_zip([(None, nosop)]))
        self.assertEqual(st, 400)
        self.assertIn(b"<h3>object IM0000 contains no SOP Instance UID</h3>", body)
        # a body that is no zip at all: no entries, 200 and no URI (ZipInputStream)
        self.assertEqual(self.c.import_zip(b"garbage")[::3], (200, b""))
        # label cleaning: '.' and ' ' become '_' at archive time
        st, _, _, body = self.c.import_zip(z, subject="S 1", session="SESS.2")
        self.assertEqual((st, body),
                         (200, b"/data/archive/projects/P1/subjects/S_1/experiments/SESS_2\r\n"))
        # unconfirmed in source, a knob: labels still outside [A-Za-z0-9_-] fail the archive
        _, _, f2 = make_study()
        self.assertEqual(self.c.import_zip(make_zip(f2), session="S\u00e9ance")[0], 400)
        self.c.admin("POST", "label_policy?mode=reject")
        _, _, f3 = make_study()
        st, _, _, body = self.c.import_zip(make_zip(f3), session="SESS.3")
        self.assertEqual(st, 400)
        pre = [p for p in self.c.rows("/data/prearchive/projects/P1?format=json")
               if p["name"] == "SESS.3"][0]
        self.assertEqual((pre["status"], self.c.text("/data" + pre["url"] + "/logs/last")[1]),
                         ("ERROR", "Invalid session label: SESS.3"))

    def test_multipart_and_chunked(self):
        _, _, files = make_study()
        z = make_zip(files)
        boundary = "----standinBoundary42"
        body = ("--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"s.zip\"\r\n"
                "Content-Type: application/zip\r\n\r\n" % boundary).encode() + z + \
            ("\r\n--%s--\r\n" % boundary).encode()
        q = "import-handler=DICOM-zip&project=P2&subject=A&session=B&dest=/archive"
        st, _, _, resp = self.c.req("POST", "/data/services/import?" + q, body=body, headers={
            "Content-Type": "multipart/form-data; boundary=" + boundary})
        self.assertEqual((st, resp), (200, b"/data/archive/projects/P2/subjects/A/experiments/B\r\n"))
        # chunked body
        conn = self.c.connect()
        q = "import-handler=DICOM-zip&project=P2&subject=A&session=C&dest=/archive&inbody=true"
        chunks = [z[i:i + 1000] for i in range(0, len(z), 1000)]
        conn.request("POST", "/data/services/import?" + q, body=iter(chunks),
                     headers={"Authorization": AUTH, "Content-Type": "application/zip"},
                     encode_chunked=True)
        r = conn.getresponse()
        self.assertEqual((r.status, r.read()),
                         (200, b"/data/archive/projects/P2/subjects/A/experiments/C\r\n"))
        # keep-alive: the same connection serves another request
        conn.request("GET", "/data/projects/P2/experiments?format=json",
                     headers={"Authorization": AUTH})
        r = conn.getresponse()
        self.assertEqual(len(json.loads(r.read())["ResultSet"]["Result"]), 2)
        conn.close()

    def test_fail_delay_drop_knobs(self):
        _, _, files = make_study()
        z = make_zip(files)
        self.c.admin("POST", "fail?count=2&status=503&path=/data/services/import")
        self.assertEqual(self.c.req("GET", "/data/projects?format=json")[0], 200)
        self.assertEqual(self.c.import_zip(z)[:2], (503, ""))
        self.assertEqual(self.c.import_zip(z)[0], 503)
        self.assertEqual(self.c.import_zip(z)[0], 200)
        self.c.admin("POST", "delay?ms=300&count=1")
        t0 = time.time()
        self.c.req("GET", "/data/projects?format=json")
        self.assertGreaterEqual(time.time() - t0, 0.29)
        self.c.admin("POST", "drop_upload?count=1")
        big = make_zip(files) + b"\0" * 300000  # bigger than the part read before the drop
        with self.assertRaises((http.client.HTTPException, ConnectionError, socket.timeout)):
            self.c.import_zip(big, session="SESS2", keep=False)
        self.assertEqual(self.c.import_zip(z, session="SESS2", keep=False)[0], 200)
        up = json.loads(self.c.admin("GET", "uploads")[3])
        # injected failures answer before the import service runs, so only 3 uploads are logged
        self.assertEqual([u["status"] for u in up["uploads"]], [200, "dropped", 200])
        self.c.admin("POST", "refuse_auth?on=1")
        self.assertEqual(self.c.req("GET", "/data/projects?format=json")[0], 401)
        self.c.admin("POST", "refuse_auth?on=0")
        self.assertEqual(self.c.req("GET", "/data/projects?format=json")[0], 200)
        reqs = json.loads(self.c.admin("GET", "requests")[3])["requests"]
        self.assertEqual([r["status"] for r in reqs if r["path"] == "/data/services/import"],
                         [503, 503, 200, None, 200])

    def test_request_log_names_sessions_in_order(self):
        _, _, files = make_study()
        # A label lookup that arrives before the upload but is answered after it.
        self.c.admin("POST", "delay?ms=500&count=1&path=/data/projects/P1/experiments")
        early = {}

        def slow_lookup():
            c = Client(self.port)
            early["status"] = c.req("GET", "/data/projects/P1/experiments?format=json"
                                           "&label=SESS1")[0]
            c.close()
        th = threading.Thread(target=slow_lookup)
        th.start()
        time.sleep(0.2)
        self.assertEqual(self.c.import_zip(make_zip(files))[0], 200)
        th.join()
        self.assertEqual(early["status"], 200)
        eid = self.c.rows("/data/experiments?project=P1&label=SESS1&format=json")[0]["ID"]
        self.c.rows("/data/experiments/%s/scans?format=json" % eid)
        self.c.rows("/data/projects/P1/subjects/SUBJ1/experiments/SESS1/scans/ALL/files"
                    "?format=json")
        self.c.rows("/data/projects?format=json")
        self.assertEqual(self.c.req("GET", "/data/projects/P1/experiments/NOPE?format=json")[0],
                         404)
        log = json.loads(self.c.admin("GET", "requests")[3])
        reqs = log["requests"]
        about = [(r["method"], r["session"], r["experiment"]) for r in reqs]
        self.assertEqual(about, [("POST", "SESS1", eid), ("GET", "SESS1", None),
                                 ("GET", "SESS1", None), ("GET", "SESS1", eid),
                                 ("GET", "SESS1", eid), ("GET", None, None),
                                 ("GET", "NOPE", None)])
        self.assertEqual(reqs[0]["project"], "P1")
        self.assertIsNone(reqs[5]["project"])
        # One clock for arrivals and answers: every tick used once, entries in answer order.
        ticks = [t for r in reqs for t in (r["seq"], r["answered_seq"])]
        self.assertEqual(len(set(ticks)), len(ticks))
        self.assertTrue(all(r["seq"] < r["answered_seq"] for r in reqs))
        answered = [r["answered_seq"] for r in reqs]
        self.assertEqual(answered, sorted(answered))
        self.assertLessEqual(max(ticks), log["seq"])
        # The slow lookup arrived before the upload was answered and was answered after it.
        upload, slow = reqs[0], reqs[1]
        self.assertLess(slow["seq"], upload["answered_seq"])
        self.assertGreater(slow["answered_seq"], upload["answered_seq"])
        only = json.loads(self.c.admin("GET", "requests?session=NOPE")[3])["requests"]
        self.assertEqual([r["path"] for r in only], ["/data/projects/P1/experiments/NOPE"])
        # The clock never goes back, not even across a reset.
        self.c.admin("POST", "reset")
        self.c.rows("/data/projects?format=json")
        after = json.loads(self.c.admin("GET", "requests")[3])["requests"]
        self.assertEqual(len(after), 1)
        self.assertGreater(after[0]["seq"], log["seq"])

    def test_scan_ids_for_duplicate_or_missing_series_numbers(self):
        study = generate_uid()
        a, b, c, d = (generate_uid() for _ in range(4))
        files = [make_dicom(study, a, 5, 1), make_dicom(study, b, 5, 1),
                 make_dicom(study, c, None, 1), make_dicom(study, d, 7, 1)]
        self.assertEqual(self.c.import_zip(make_zip(files))[0], 200)
        item = self.c.json("/data/projects/P1/experiments/SESS1?format=json")
        ids = {k["data_fields"]["UID"]: k["data_fields"]["ID"]
               for k in item["items"][0]["children"][0]["items"]}
        self.assertEqual(ids[d], "7")
        self.assertEqual(sorted([ids[a], ids[b]]), ["5", "5-MR1"])
        self.assertEqual(ids[c], c.split(".")[-1])  # no SeriesNumber: derived from the UID
        # a later series with a number already taken is renamed too
        e = generate_uid()
        self.assertEqual(self.c.import_zip(make_zip([make_dicom(study, e, 7, 1)]),
                                           extra="&overwrite=append")[0], 200)
        item = self.c.json("/data/projects/P1/experiments/SESS1?format=json")
        ids = {k["data_fields"]["UID"]: k["data_fields"]["ID"]
               for k in item["items"][0]["children"][0]["items"]}
        self.assertEqual(ids[e], "7-MR1")

    def test_concurrent_same_session(self):
        _, _, files = make_study()
        z = make_zip(files)
        self.c.admin("POST", "slow_import?ms=800&count=1")
        result = {}

        def first():
            c = Client(self.port)
            result["first"] = c.import_zip(z)[0]
            c.close()
        th = threading.Thread(target=first)
        th.start()
        time.sleep(0.3)
        st, reason, _, body = self.c.import_zip(z)
        th.join()
        self.assertEqual((st, reason, result["first"]), (400, "", 200))
        self.assertIn(b"<h3>Concurrent file sends of the same data is not supported.</h3>", body)
        # a client that gives up (read timeout) still leaves the session archived
        self.c.admin("POST", "slow_import?ms=600&count=1")
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=0.2)
        q = "import-handler=DICOM-zip&project=P1&subject=S&session=LATE&dest=/archive&inbody=true"
        with self.assertRaises(socket.timeout):
            conn.request("POST", "/data/services/import?" + q, body=z,
                         headers={"Authorization": AUTH, "Content-Type": "application/zip"})
            conn.getresponse()
        conn.close()
        time.sleep(0.6)
        self.assertEqual(len(self.c.rows("/data/projects/P1/experiments?format=json&label=LATE")),
                         1)

    def test_site_settings_and_series_filter(self):
        get = lambda path: self.c.req("GET", path)[::3]
        self.assertEqual(get("/xapi/anonymize/site/enabled"), (200, b"true"))
        self.assertEqual(get("/xapi/anonymize/projects/P1/enabled"), (200, b"false"))
        self.assertEqual(get("/xapi/anonymize/projects/P1")[0], 204)
        self.c.admin("POST", "anonymisation?project=P1&mode=on")
        self.c.admin("POST", "anonymisation?mode=missing")
        self.assertEqual(get("/xapi/anonymize/projects/P1/enabled"), (200, b"true"))
        self.assertEqual(get("/xapi/anonymize/site/enabled")[0], 404)
        self.c.admin("POST", "anonymisation?project=P1&mode=forbidden")
        self.assertEqual(get("/xapi/anonymize/projects/P1/enabled")[0], 403)
        self.assertEqual(get("/data/projects/P1/prearchive_code"), (200, b"4"))
        self.c.admin("POST", "prearchive_code?project=P1&code=0")
        self.assertEqual(get("/data/projects/P1/prearchive_code"), (200, b"0"))
        # a series import filter drops a series silently
        self.c.admin("POST", "series_filter?project=P1&regex=series%202")
        study, (s1, s2), files = make_study()
        self.assertEqual(self.c.import_zip(make_zip(files))[0], 200)
        state = json.loads(self.c.admin("GET", "state")[3])
        exp = state["projects"]["P1"]["subjects"]["SUBJ1"]["experiments"]["SESS1"]
        self.assertEqual([s["UID"] for s in exp["scans"].values()], [s1])
        # an injected concurrent send, then the same files again, replacing XNAT's
        self.c.admin("POST", "concurrent_send?count=1")
        extra = "&overwrite=append&overwrite_files=true"
        st, reason, _, body = self.c.import_zip(make_zip(files), extra=extra)
        self.assertEqual((st, reason), (400, ""))
        self.assertIn(b"Concurrent file sends of the same data is not supported.", body)
        self.assertEqual(self.c.import_zip(make_zip(files), extra=extra)[0], 200)

    def test_secondary_resources_in_every_listing(self):
        """CatalogBuilder via SOPModel.isPrimaryImagingSOP: primary SOP classes under DICOM,
        the rest (SC, dose SR, PDF, presentation states, private) under secondary, one scan
        may hold both; every listing the daemon reads shows both resources."""
        study = generate_uid()
        ct, mixed, pr = generate_uid(), generate_uid(), generate_uid()
        files = [make_dicom(study, ct, 1, 1, modality="CT", sop_class=CT_STORAGE),
                 make_dicom(study, ct, 1, 2, modality="CT", sop_class=CT_STORAGE),
                 make_dicom(study, mixed, 2, 1, modality="CT", sop_class=CT_STORAGE),
                 make_dicom(study, mixed, 2, 2, modality="CT", sop_class=SC_STORAGE),
                 make_dicom(study, mixed, 2, 3, modality="SR", sop_class=DOSE_SR),
                 make_dicom(study, pr, 3, 1, modality="PR", sop_class=GSPS),
                 make_dicom(study, pr, 3, 2, modality="OT", sop_class=PDF_STORAGE),
                 make_dicom(study, pr, 3, 3, modality="OT", sop_class=PRIVATE_SOP),
                 make_dicom(study, pr, 3, 4, modality="SR", sop_class=BASIC_TEXT_SR)]
        # the prearchive first: its resources listing and session document
        st, _, _, body = self.c.import_zip(make_zip(files), dest="/prearchive")
        self.assertEqual(st, 200)
        url = body.decode().strip()
        want = [("1", "DICOM", "2"), ("2", "DICOM", "1"), ("2", "secondary", "2"),
                ("3", "DICOM", "1"), ("3", "secondary", "3")]
        res = self.c.rows(url + "/resources?format=json")
        self.assertEqual(sorted((r["category"], r["cat_id"], r["label"], r["file_count"])
                                for r in res), sorted(("scans",) + w for w in want))
        st, xml = self.c.text(url + "?format=xml")
        self.assertEqual(st, 200)
        self.assertIn('label="secondary" format="DICOM" content="secondary"', xml)
        self.assertEqual(xml.count('label="DICOM"'), 3)
        # then the archive
        self.assertEqual(self.c.req("POST", "/data/services/prearchive/delete?src=" + url)[0],
                         200)
        self.assertEqual(self.c.import_zip(make_zip(files))[0], 200)
        eid = self.c.rows("/data/projects/P1/experiments?format=json&label=SESS1")[0]["ID"]
        base = "/data/experiments/" + eid
        res = self.c.rows(base + "/scans/ALL/resources?format=json")
        self.assertEqual(sorted((r["cat_id"], r["label"], r["file_count"]) for r in res),
                         sorted(want))
        self.assertTrue(all(int(r["file_size"]) > 0 for r in res))
        res = self.c.rows(base + "/scans/2/resources?format=json")
        self.assertEqual(sorted(r["label"] for r in res), ["DICOM", "secondary"])
        fl = self.c.rows(base + "/scans/ALL/files?format=json")
        self.assertEqual(len(fl), 9)
        for f in fl:
            self.assertIn("/resources/%s/files/%s" % (f["collection"], f["Name"]), f["URI"])
            self.assertEqual(self.c.req("GET", f["URI"])[0], 200)
        self.assertEqual(sorted(f["collection"] for f in fl).count("secondary"), 5)
        self.assertEqual(len(self.c.rows(base + "/scans/2/resources/secondary/files"
                                                "?format=json")), 2)
        # a non-DICOM resource (snapshots) is a row of its own
        self.c.admin("POST", "scan_resource?project=P1&session=SESS1&scan=1&label=SNAPSHOTS"
                             "&files=2")
        res = self.c.rows(base + "/scans/1/resources?format=json")
        self.assertEqual(sorted((r["label"], r["file_count"], r["format"]) for r in res),
                         [("DICOM", "2", "DICOM"), ("SNAPSHOTS", "2", "GIF")])
        self.assertEqual(len(self.c.rows(base + "/scans/ALL/files?format=json")), 11)
        # the site preference off: everything under DICOM (sessions built from now on)
        self.c.admin("POST", "separate_secondary?on=0")
        st, _, _, body = self.c.import_zip(make_zip(files), session="FLAT", dest="/prearchive")
        res = self.c.rows(body.decode().strip() + "/resources?format=json")
        self.assertEqual(sorted((r["cat_id"], r["label"], r["file_count"]) for r in res),
                         [("1", "DICOM", "2"), ("2", "DICOM", "3"), ("3", "DICOM", "4")])

    def test_ignore_unparsable_and_partial_entries(self):
        """DicomZipImporter: Ignore-Unparsable is off unless the client sends it (or
        action=commit); the first unreadable entry is a 400 naming it, the entries before it stay
        in a RECEIVING prearchive session with no document yet."""
        study, _, files = make_study()
        names = ["a.dcm", "b.dcm", "README.txt", "c.dcm"]
        z = make_zip(files[:2] + [(None, b"not a DICOM file\n")] + files[2:], names=names)
        st, reason, _, body = self.c.import_zip(z)
        self.assertEqual((st, reason), (400, ""))
        self.assertIn(b"<h3>unable to read DICOM object README.txt</h3>", body)
        pre = self.c.rows("/data/prearchive/projects/P1?format=json")
        self.assertEqual([(p["status"], p["tag"]) for p in pre], [("RECEIVING", study)])
        url = "/data" + pre[0]["url"]
        st, text = self.c.text(url + "?format=xml")
        self.assertEqual(st, 404)
        self.assertIn("its XNAT session document is not available", text)
        self.assertEqual(self.c.text(url + "/resources?format=json")[0], 404)
        state = json.loads(self.c.admin("GET", "state")[3])
        self.assertEqual(state["prearchive"][0]["files"], 2)
        # Ignore-Unparsable=true: the stray entry is skipped; the RECEIVING entry is reused
        st, _, _, body = self.c.import_zip(z, extra="&Ignore-Unparsable=true")
        self.assertEqual(st, 200)
        self.assertEqual(len(self.c.rows("/data/projects/P1/experiments/SESS1/scans/ALL/files"
                                         "?format=json")), 3)
        self.assertEqual(self.c.rows("/data/prearchive/projects/P1?format=json"), [])
        # action=commit from the client turns it on too (and builds the session)
        z2 = make_zip(make_study()[2] + [(None, b"junk")], names=["x", "y", "z", "junk.txt"])
        st, _, _, body = self.c.import_zip(z2, session="C2", dest=None, extra="&action=commit")
        self.assertEqual(st, 200)
        self.assertEqual(self.c.rows(body.decode().strip() + "?format=json")[0]["status"],
                         "READY")
        # only unreadable entries: with Ignore-Unparsable the last error is thrown
        st, _, _, body = self.c.import_zip(make_zip([(None, b"x")], names=["only.txt"]),
                                           extra="&Ignore-Unparsable=true")
        self.assertEqual(st, 400)
        self.assertIn(b"unable to read DICOM object only.txt", body)
        # no SOP Class UID, a DICOMDIR among them
        _, noclass = make_dicom(study, generate_uid(), 4, 1, sop_class=None)
        st, _, _, body = self.c.import_zip(make_zip([(None, noclass)], names=["DICOMDIR"]),
                                           session="S3")
        self.assertEqual(st, 400)
        self.assertIn(b"object DICOMDIR contains no SOP Class UID", body)

    def test_prearchive_entry_reuse_and_build(self):
        """PrearcDatabase.eitherGetOrCreateSession: the same project, StudyInstanceUID and name
        reuse the entry, whatever its status; another study or name makes a new one. A session
        is READY only once built; RECEIVING ones are built (and auto-archived by the project's
        code) when idle (SessionXMLRebuilder)."""
        study, (s1, s2), files = make_study()
        st, _, _, b1 = self.c.import_zip(make_zip(files[:2]), dest="/prearchive")
        st, _, _, b2 = self.c.import_zip(make_zip(files[2:], names=["IM0002"]),
                                         dest="/prearchive")
        self.assertEqual(b1, b2)
        pre = self.c.rows("/data/prearchive/projects/P1?format=json")
        self.assertEqual([(p["status"], p["autoarchive"]) for p in pre], [("READY", "AutoArchive")])
        res = self.c.rows(b1.decode().strip() + "/resources?format=json")
        self.assertEqual(sorted((r["cat_id"], r["file_count"]) for r in res),
                         [("1", "2"), ("2", "1")])
        _, _, b3 = self.c.import_zip(make_zip(files), session="OTHER", dest="/prearchive")[::1][:3]
        self.assertNotEqual(b3, b1)
        _, _, _, b4 = self.c.import_zip(make_zip(make_study()[2]), dest="/prearchive")
        self.assertNotEqual(b4, b1)
        self.assertEqual(len(self.c.rows("/data/prearchive/projects/P1?format=json")), 3)
        # no dest and no action=commit: filed, not built (RECEIVING) until the rebuilder runs
        study2, _, f2 = make_study()
        st, _, _, body = self.c.import_zip(make_zip(f2), session="IDLE", dest=None)
        self.assertEqual(st, 200)
        url = body.decode().strip()
        self.assertEqual(self.c.rows(url + "?format=json")[0]["status"], "RECEIVING")
        self.assertEqual(self.c.text(url + "?format=xml")[0], 404)
        self.c.admin("POST", "rebuild?older_than=0")
        # built and, prearchive code 4, archived
        self.assertEqual(self.c.text(url + "?format=json")[0], 404)
        self.assertEqual(len(self.c.rows("/data/projects/P1/experiments?format=json"
                                         "&label=IDLE")), 1)
        self.c.admin("POST", "prearchive_code?project=P1&code=0")
        _, _, f3 = make_study()
        body = self.c.import_zip(make_zip(f3), session="KEEP", dest=None)[3]
        self.c.admin("POST", "rebuild?older_than=0")
        self.assertEqual(self.c.rows(body.decode().strip() + "?format=json")[0]["status"],
                         "READY")

    def test_duplicate_sop_in_one_scan_fails_validation(self):
        """PrearcSessionArchiver.validateDicomFiles: one SOP Instance UID twice in a scan's
        catalog (sent under two names) fails the archive (ERROR) unless overwrite=delete."""
        study, ser = generate_uid(), generate_uid()
        sop, data = make_dicom(study, ser, 1, 1)
        z = make_zip([(sop, data), (sop, data)], names=["one.dcm", "two.dcm"])
        self.assertEqual(self.c.import_zip(z)[0], 400)
        pre = self.c.rows("/data/prearchive/projects/P1?format=json")[0]
        self.assertEqual((pre["status"], self.c.text("/data" + pre["url"] + "/logs/last")[1]),
                         ("ERROR", "Scan 1 DICOM catalog contains duplicated SOP instance UIDs: "
                                   + sop))
        self.assertEqual(self.c.import_zip(z, extra="&overwrite=delete")[0], 200)

    def test_uri_list_and_error_page(self):
        """Importer.represent: text/uri-list with CRLF by default, text/plain for format=txt
        or Accept: text/plain; errors are Restlet status pages, no reason phrase (Tomcat)."""
        _, _, files = make_study()
        st, reason, r, body = self.c.import_zip(make_zip(files))
        self.assertEqual((st, reason), (200, ""))
        self.assertTrue(r.getheader("Content-Type").startswith("text/uri-list"))
        self.assertEqual(body, b"/data/archive/projects/P1/subjects/SUBJ1/experiments/SESS1\r\n")
        _, _, f2 = make_study()
        st, _, r, body = self.c.import_zip(make_zip(f2), session="TXT",
                                           headers={"Accept": "text/plain"})
        self.assertTrue(r.getheader("Content-Type").startswith("text/plain"))
        self.assertEqual(body, b"/data/archive/projects/P1/subjects/SUBJ1/experiments/TXT")
        st, reason, r, body = self.c.req("GET", "/data/projects/NOPE?format=json")
        self.assertEqual((st, reason), (404, ""))
        self.assertTrue(r.getheader("Content-Type").startswith("text/html"))
        self.assertIn(b"<title>Status page</title>", body)

    def test_sop_classes_xnat_takes_over_rest(self):
        """GradualDicomImporter only needs a SOP Class UID: private and non-image classes are
        filed (as secondary); there is no REST refusal by SOP class."""
        study = generate_uid()
        ser = generate_uid()
        files = [make_dicom(study, ser, 5, 1, modality="MR", sop_class=SIEMENS_CSA),
                 make_dicom(study, ser, 5, 2, modality="MR", sop_class=PRIVATE_SOP)]
        self.assertEqual(self.c.import_zip(make_zip(files))[0], 200)
        res = self.c.rows("/data/projects/P1/experiments/SESS1/scans/ALL/resources?format=json")
        self.assertEqual([(r["cat_id"], r["label"], r["file_count"]) for r in res],
                         [("5", "secondary", "2")])

    def test_jsession(self):
        st, _, r, sid = self.c.req("POST", "/data/JSESSION")
        self.assertEqual(st, 200)
        sid = sid.decode()
        self.assertIn("JSESSIONID=%s" % sid, r.getheader("Set-Cookie"))
        cookie = {"Cookie": "JSESSIONID=" + sid}
        self.assertEqual(self.c.req("GET", "/data/projects?format=json", headers=cookie,
                                    auth=None)[0], 200)
        self.c.admin("POST", "expire_sessions")
        self.assertEqual(self.c.req("GET", "/data/projects?format=json", headers=cookie,
                                    auth=None)[0], 401)
        sid = self.c.req("POST", "/data/JSESSION")[3].decode()
        cookie = {"Cookie": "JSESSIONID=" + sid}
        self.assertEqual(self.c.req("DELETE", "/data/JSESSION", headers=cookie, auth=None)[0],
                         200)
        self.assertEqual(self.c.req("GET", "/data/projects?format=json", headers=cookie,
                                    auth=None)[0], 401)
        tok = self.c.json("/data/services/tokens/issue")
        tauth = "Basic " + base64.b64encode(
            ("%s:%s" % (tok["alias"], tok["secret"])).encode()).decode()
        self.assertEqual(self.c.req("GET", "/data/projects?format=json", auth=tauth)[0], 200)

    def test_runtime_project_and_persistence_file(self):
        self.assertEqual(self.c.req("GET", "/data/projects/NEW?format=json")[0], 404)
        self.c.admin("POST", "project?id=NEW")
        self.assertEqual(self.c.req("GET", "/data/projects/NEW?format=json")[0], 200)
        self.assertTrue(os.path.exists(os.path.join(self.tmp, "data", "standin-state.json")))


def _series_of(data):
    import pydicom
    return pydicom.dcmread(io.BytesIO(data)).SeriesInstanceUID


SCU_PROFILE = """[[TransferSyntaxes]]
[TS]
TransferSyntax1 = 1.2.840.10008.1.2.1
TransferSyntax2 = 1.2.840.10008.1.2

[[PresentationContexts]]
[PCs]
PresentationContext1 = %s\\TS
PresentationContext2 = %s\\TS
PresentationContext3 = %s\\TS
PresentationContext4 = %s\\TS

[[Profiles]]
[P]
PresentationContexts = PCs
""" % (MR_STORAGE, CT_STORAGE, SIEMENS_CSA, PRIVATE_SOP)


def free_port():
    """A free port below the kernel's ephemeral range, at random: outgoing connections of tests
    running in parallel take ports from that range (bind(0) too), never from below it."""
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low = int(f.read().split()[0])
    for _ in range(200):
        port = random.randrange(10000, low)
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


class ReceiverTest(unittest.TestCase):
    """The DICOM receiver (XNAT's CStoreService, GradualDicomImporter, SessionXMLRebuilder):
    storescu with a profile that proposes any SOP class, as the daemon's SCU does."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="standin-dicom-")
        cls.dport = free_port()
        cls.proc, cls.port, cls.log = start_standin(
            cls.tmp, ["--dicom-port", str(cls.dport), "--dicom-idle", "0.5"])
        cls.profile = os.path.join(cls.tmp, "scu.cfg")
        with open(cls.profile, "w") as f:
            f.write(SCU_PROFILE)

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()
        cls.proc.wait(5)
        cls.proc.stdout.close()
        cls.log.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.c = Client(self.port)
        self.assertEqual(self.c.admin("POST", "reset")[0], 200)
        self.addCleanup(self.c.close)

    def send(self, files):
        d = tempfile.mkdtemp(dir=self.tmp)
        paths = []
        for i, (_, data) in enumerate(files):
            paths.append(os.path.join(d, "f%d.dcm" % i))
            with open(paths[-1], "wb") as f:
                f.write(data)
        r = subprocess.run(["/usr/bin/storescu", "-xf", self.profile, "P", "-aec", "XNAT",
                            "127.0.0.1", str(self.dport)] + paths,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30)
        return r.returncode, r.stdout

    def wait_built(self, n, timeout=20):
        """Waits (with a deadline) until n sessions from the receiver have been built."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            ups = [u for u in json.loads(self.c.admin("GET", "uploads")[3])["uploads"]
                   if u["status"] == "dicom"]
            if len(ups) >= n:
                return ups
            time.sleep(0.1)
        self.fail("no %d receiver sessions built within %d s" % (n, timeout))

    def archived_files(self, label="E1"):
        return len(self.c.rows("/data/projects/P1/experiments/%s/scans/ALL/files?format=json"
                               % label))

    def test_later_burst_merges_conflicts_or_overwrites(self):
        route = "Project: P1 Subject: S1 Session: E1"
        study, ser = generate_uid(), generate_uid()
        a, b, c, d = (make_dicom(study, ser, 1, i, comments=route) for i in range(1, 5))
        self.assertEqual(self.send([a, b])[0], 0)
        ups = self.wait_built(1)
        self.assertNotIn("error", ups[0])
        self.assertEqual(self.archived_files(), 2)
        # a later burst with only new instances merges (code 4: append)
        self.assertEqual(self.send([c])[0], 0)
        self.assertNotIn("error", self.wait_built(2)[1])
        self.assertEqual(self.archived_files(), 3)
        # one XNAT already holds: the whole burst stays in the prearchive as CONFLICT
        self.assertEqual(self.send([a, d])[0], 0)
        ups = self.wait_built(3)
        self.assertEqual((ups[2]["error"], ups[2]["prearchive_status"]), (HAS_FILES, "CONFLICT"))
        pre = self.c.rows("/data/prearchive/projects/P1?format=json")
        self.assertEqual([(p["status"], p["name"]) for p in pre], [("CONFLICT", "E1")])
        self.assertEqual(self.c.text("/data" + pre[0]["url"] + "/logs/last")[1], HAS_FILES)
        self.assertEqual(self.archived_files(), 3)
        # code 5: the next burst reuses the CONFLICT session and overwrites
        self.c.admin("POST", "prearchive_code?project=P1&code=5")
        self.assertEqual(self.send([b])[0], 0)
        self.assertNotIn("error", self.wait_built(4)[3])
        self.assertEqual(self.c.rows("/data/prearchive/projects/P1?format=json"), [])
        self.assertEqual(self.archived_files(), 4)
        # code 0: built, READY in the prearchive, never archived
        self.c.admin("POST", "prearchive_code?project=P1&code=0")
        other = make_dicom(generate_uid(), generate_uid(), 2, 1,
                           comments="Project: P1 Subject: S2 Session: E2")
        self.assertEqual(self.send([other])[0], 0)
        self.wait_built(5)
        pre = self.c.rows("/data/prearchive/projects/P1?format=json")
        self.assertEqual([(p["status"], p["name"]) for p in pre], [("READY", "E2")])

    def test_sop_classes_the_receiver_refuses(self):
        route = "Project: P1 Subject: S1 Session: E1"
        study, ser = generate_uid(), generate_uid()
        csa = make_dicom(study, ser, 3, 1, sop_class=SIEMENS_CSA, comments=route)
        rc, out = self.send([csa])
        self.assertEqual(rc, 0, out)
        self.wait_built(1)
        res = self.c.rows("/data/projects/P1/experiments/E1/scans/ALL/resources?format=json")
        self.assertEqual([(r["cat_id"], r["label"]) for r in res], [("3", "secondary")])
        priv = make_dicom(study, ser, 3, 2, sop_class=PRIVATE_SOP, comments=route)
        rc, out = self.send([priv])
        self.assertNotEqual(rc, 0)
        self.assertIn("No presentation context for: (unknown SOP class) " + PRIVATE_SOP, out)
        st, _, _, body = self.c.admin("POST", "receiver_refuse_sop?uid=" + CT_STORAGE)
        self.assertEqual(st, 200, body)
        ct = make_dicom(study, generate_uid(), 4, 1, sop_class=CT_STORAGE, modality="CT",
                        comments=route)
        rc, out = self.send([ct])
        self.assertNotEqual(rc, 0)
        self.assertIn("No presentation context", out)
        self.c.admin("POST", "receiver_refuse_sop?on=0&uid=" + CT_STORAGE)
        self.assertEqual(self.send([ct])[0], 0)


class HttpsAndTimeoutTest(unittest.TestCase):
    def test_https_and_idle_expiry(self):
        tmp = tempfile.mkdtemp(prefix="standin-https-")
        try:
            certs = os.path.join(tmp, "certs")
            proc, port, log = start_standin(tmp, ["--https", "--cert-dir", certs,
                                                  "--session-timeout", "0.5"])
            try:
                for n in ("ca.pem", "server.pem", "server.key"):
                    self.assertTrue(os.path.exists(os.path.join(certs, n)))
                ctx = ssl.create_default_context(cafile=os.path.join(certs, "ca.pem"))
                for host in ("127.0.0.1", "localhost"):
                    c = Client(port, ctx, host)
                    self.assertEqual(c.req("GET", "/data/projects?format=json")[0], 200)
                    c.close()
                # an untrusting client fails verification
                with self.assertRaises(ssl.SSLError):
                    Client(port, ssl.create_default_context()).req("GET", "/data/projects")
                c = Client(port, ctx)
                self.addCleanup(c.close)
                sid = c.req("POST", "/data/JSESSION")[3].decode()
                cookie = {"Cookie": "JSESSIONID=" + sid}
                self.assertEqual(c.req("GET", "/data/projects", headers=cookie, auth=None)[0],
                                 200)
                time.sleep(0.8)
                self.assertEqual(c.req("GET", "/data/projects", headers=cookie, auth=None)[0],
                                 401)
            finally:
                proc.terminate()
                proc.wait(5)
                proc.stdout.close()
                log.close()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


class NagleTest(unittest.TestCase):
    """--nagle: each answer's headers and body leave in two writes with Nagle on, so the body
    waits for the client's ACK of the headers (Python's http.server as it ships); by default
    both leave in one write."""

    def split_answers(self, extra, n=6):
        """Sends n keep-alive requests on one connection whose ACKs the kernel delays
        (TCP_QUICKACK 0 before each); returns how many answers' first read ended right after
        the headers. Every answer is checked whole."""
        tmp = tempfile.mkdtemp(prefix="standin-nagle-")
        proc, port, log = start_standin(tmp, extra)
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        try:
            splits = 0
            for _ in range(n):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 0)
                s.sendall(b"GET /_admin/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                first = s.recv(65536)
                while b"\r\n\r\n" not in first:
                    first += s.recv(65536)
                head, _, body = first.partition(b"\r\n\r\n")
                length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
                if not body:
                    splits += 1
                while len(body) < length:
                    body += s.recv(65536)
                self.assertEqual(len(body), length)
                self.assertTrue(json.loads(body)["ok"])
            return splits
        finally:
            s.close()
            proc.terminate()
            proc.wait(5)
            proc.stdout.close()
            log.close()
            shutil.rmtree(tmp, ignore_errors=True)

    def test_nagle_writes_headers_and_body_apart(self):
        self.assertEqual(self.split_answers([]), 0)
        # The body waits for a delayed ACK (~40 ms): the client's first read sees the headers
        # alone, unless it was not scheduled for that long (hence not all six).
        self.assertGreaterEqual(self.split_answers(["--nagle"]), 3)


class RestartTest(unittest.TestCase):
    def test_state_survives_restart(self):
        tmp = tempfile.mkdtemp(prefix="standin-restart-")
        self.addCleanup(shutil.rmtree, tmp, True)
        _, _, files = make_study()
        for round_ in range(2):
            proc, port, log = start_standin(tmp)
            try:
                c = Client(port)
                if round_ == 0:
                    self.assertEqual(c.import_zip(make_zip(files))[0], 200)
                    c.admin("POST", "project?id=LATER")
                fl = c.rows("/data/projects/P1/experiments/SESS1/scans/ALL/files?format=json")
                self.assertEqual(len(fl), 3)
                self.assertEqual(c.req("GET", fl[0]["URI"])[0], 200)
                self.assertEqual(c.req("GET", "/data/projects/LATER?format=json")[0], 200)
                c.close()
            finally:
                proc.terminate()
                self.assertEqual(proc.wait(5), 0)
                proc.stdout.close()
                log.close()


if __name__ == "__main__":
    unittest.main()
