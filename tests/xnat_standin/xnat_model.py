"""XNAT's prearchive and archive as XNAT 1.8's source has them, for the stand-in.

Every path a DICOM object takes into the stand-in goes through here, as it does in XNAT:

- file_object(): one object into a prearchive session (GradualDicomImporter.call), reusing an
  existing session of the same project, StudyInstanceUID and name in any state
  (PrearcDatabase.eitherGetOrCreateSession);
- build_entry(): the session document and its scan resources (PrearchiveRebuildHandler.rebuild,
  dicom-xnat's CatalogBuilder: "DICOM" for primary imaging SOP classes, "secondary" otherwise);
- archive_entry(): the prearchive session into the archive, merged into a session XNAT already
  holds when allowed (PrearcSessionArchiver.call / checkForConflicts, MergeSessionsA.
  checkForConflict, SessionOverwriteCheck, MergeCatCatalog), CONFLICT or ERROR when refused
  (PrearcDatabase.LockAndSync.run), with XNAT's message in the session's log;
- zip_import(): the DICOM-zip import handler (DicomZipImporter.call / xmlBuild /
  archiveSession);
- build_idle_sessions(): the session XML rebuilder that builds RECEIVING sessions once idle and
  auto-archives them (SessionXMLRebuilder, PrearchiveRebuildHandler.execute,
  PrearchiveArchiveHandler).

The caller holds state.lock. Files live under state.data_dir; the data shapes are described at
make_document() and _new_experiment().
"""

import datetime
import gzip
import hashlib
import io
import os
import re
import shutil
import tarfile
import time
import zipfile

import receiver
import sop_classes

CONCURRENT_SEND = "Concurrent file sends of the same data is not supported."
# DicomZipImporter.xmlBuild wraps every failure to build or archive a session in this.
ARCHIVE_WRAP = "unable to archive for the Prearchive session"
# PrearcSessionArchiver constants.
PRE_EXISTS = "Session already exists, retry with overwrite enabled"
SUBJECT_MOD = "Invalid modification of session subject via archive process."
LABEL_MOD = "Invalid modification of session label via archive process."
UID_MOD = "Invalid modification of session UID via archive process."
MODALITY_MOD = ("Invalid modification of session modality via archive process.  Data may require "
                "a manual merge.")
# MergeSessionsA constants.
CAT_ENTRY_MATCH = "Session already exists with the same resources."
HAS_FILES = "Session already exists with matching files."
# MergeCatCatalog.throwForDicomUidConflict.
NAME_UID_CONFLICT = ("A DICOM file with the same name but different UID already exists. There is "
                     "no way to override this conflict, you will need to fix your data.")
# PrearcSessionResource.represent / PrearcSessionResourceA.retrieveSessionBean.
NO_DOCUMENT = ("The named session exists, but its XNAT session document is not available. The "
               "session is likely invalid or incomplete.")
NO_PREARC_RESOURCE = "Unable to locate prearc resource."

MANUAL, AUTO_ARCHIVE, AUTO_ARCHIVE_OVERWRITE = 0, 4, 5   # PrearchiveCode
UNASSIGNED = "Unassigned"
# Characters XnatExperimentdata.cleanValue turns into '_' (BaseXnatExperimentdata, read from a
# public copy; the class is generated outside the monorepo).
CLEANED_CHARS = set(" `~@#$%^&*()+=[]{}|\\/?:;\"',.<>")
LABEL_RE = re.compile(r"^[A-Za-z0-9_-]+$")
UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")
FILE_NAME_RE = re.compile(r"^[A-Za-z0-9_+-][A-Za-z0-9._+-]*$")

SESSION_XSI = {
    "MR": "xnat:mrSessionData", "CT": "xnat:ctSessionData", "PT": "xnat:petSessionData",
    "CR": "xnat:crSessionData", "DX": "xnat:dxSessionData", "US": "xnat:usSessionData",
    "MG": "xnat:mgSessionData", "NM": "xnat:nmSessionData", "XA": "xnat:xaSessionData",
    "RF": "xnat:rfSessionData", "OP": "xnat:opSessionData", "SR": "xnat:srSessionData",
}
SESSION_MODALITY_PRIORITY = ["PT", "MR", "CT", "NM", "XA", "US", "MG", "DX", "CR", "RF", "OP"]


class XnatFailure(Exception):
    """A ClientException (4xx) or ServerException (5xx) with XNAT's message."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


def now_iso():
    return datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def clean_value(v):
    """XnatExperimentdata.cleanValue: XNAT's label cleaning at archive time."""
    return "".join("_" if c in CLEANED_CHARS else c for c in v)


# ----------------------------------------------------------------------------------------------
# Scans and resources (shared by archive sessions and prearchive session documents)
# ----------------------------------------------------------------------------------------------

def scan_number(info):
    """The scan ID for a new series: its SeriesNumber, or (without one) a number derived from
    the SeriesInstanceUID (here: its last component), or NA. Restructurer.determineScanSubdir
    and dicom-xnat's builder are not in the monorepo; this is XNAT-API.md's account."""
    v = info.get("series_number")
    try:
        return str(int(float(v)))
    except (TypeError, ValueError):
        pass
    last = (info.get("series_uid") or "").split(".")[-1]
    return last if last.isdigit() else "NA"


def scan_key(sid):
    try:
        return (0, int(sid), sid)
    except ValueError:
        return (1, 0, sid)


def sorted_scans(holder):
    return sorted(holder.get("scans", {}).items(), key=lambda kv: scan_key(kv[0]))


def scan_xsi(modality):
    return SESSION_XSI.get(modality, "xnat:otherDicomSession").replace(
        "SessionData", "ScanData").replace("otherDicomSession", "otherDicomScanData")


def session_type(modalities):
    mod = next((m for m in SESSION_MODALITY_PRIORITY if m in modalities),
               sorted(modalities)[0] if modalities else "OT")
    return mod, SESSION_XSI.get(mod, "xnat:otherDicomSessionData")


def modality_code(xsi):
    """PrearcSessionArchiver.correctScanID: the code used in renamed scan IDs (3-MR1)."""
    code = xsi[5:7].upper() if xsi.startswith("xnat:") else ""
    return "PT" if code == "PE" else code


def resource_files(scan):
    """All files of a scan, over its resources: [(label, finfo)]."""
    return [(label, f) for label, r in scan.get("resources", {}).items()
            for f in r["files"].values()]


def dicom_file_count(holder):
    return sum(1 for _, s in holder.get("scans", {}).items() for label, _ in resource_files(s)
               if label in (sop_classes.RESOURCE_DICOM, sop_classes.RESOURCE_SECONDARY))


def new_resource(st, label, fmt="DICOM", content=None):
    st.counters["resource"] += 1
    return {"xnat_abstractresource_id": str(st.counters["resource"]), "label": label,
            "format": fmt, "content": content or sop_classes.resource_content(label), "files": {}}


def _file_info(name, data, path, st, info=None):
    info = info or {}
    return {"name": name, "size": len(data), "digest": hashlib.md5(data).hexdigest(),
            "path": os.path.relpath(path, st.data_dir), "sop_uid": info.get("sop_uid", ""),
            "sop_class": info.get("sop_class", ""),
            "instance_number": info.get("instance_number", "")}


# ----------------------------------------------------------------------------------------------
# Prearchive: filing one object (GradualDicomImporter.call)
# ----------------------------------------------------------------------------------------------

def make_timestamp(st):
    """PrearcUtils.makeTimestamp (yyyyMMdd_HHmmssSSS), unique among the stand-in's entries."""
    ts = datetime.datetime.now().strftime("%Y%m%d_%H%M%S%f")[:-3]
    used = set(e["timestamp"] for e in st.prearchive)
    while ts in used:
        ts = ts[:-3] + "%03d" % ((int(ts[-3:]) + 1) % 1000)
    return ts


def resolve_project(st, params, info):
    """GradualDicomImporter.getProject: the PROJECT_ID parameter if it names a project the user
    can read (UserProjectCache.get), else the DICOM object identifier (routing text in the
    comments), else None (the Unassigned prearchive)."""
    alias = params.get("PROJECT_ID")
    if alias and alias in st.projects:
        return alias
    routed = receiver.routing(info)[0]
    return routed if routed in st.projects else None


def series_filtered(st, project, info):
    """GradualDicomImporter.shouldIncludeDicomObject (site, then project filter): True when a
    series import filter drops the object without a word."""
    pats = [x for x in (st.site.get("series_filter", ""),
                        st.projects.get(project, {}).get("series_filter", "") if project else "")
            if x]
    return any(re.search(p, info.get("series_description") or "", re.I) for p in pats)


def _labels(params, info):
    """Session label and subject as GradualDicomImporter takes them: EXPT_LABEL / SUBJECT_ID,
    else the object identifier (routing text, then Patient ID / Patient Name), else
    "dicom_upload". Not cleaned: XNAT cleans at archive time."""
    _, r_subject, r_session = receiver.routing(info)
    label = params.get("EXPT_LABEL") or r_session or info.get("patient_id") or "dicom_upload"
    subject = params.get("SUBJECT_ID") or r_subject or info.get("patient_name") or ""
    return label, subject


def _requests_auto_archive(info):
    """DicomObjectIdentifier.requestsAutoarchive: "AA:true" in the routing text."""
    for text in (info.get("patient_comments", ""), info.get("study_comments", "")):
        m = re.search(r"\bAA:\s*(true|false)", text or "", re.I)
        if m:
            return m.group(1).lower() == "true"
    return None


def entry_autoarchive(st, project, info):
    """GradualDicomImporter.shouldAutoArchive: the object's AA request, else the project's
    prearchive code; None for the Unassigned prearchive."""
    if project is None:
        return None
    aa = _requests_auto_archive(info)
    if aa is not None:
        return AUTO_ARCHIVE if aa else MANUAL
    return st.projects[project].get("prearchive_code", AUTO_ARCHIVE)


def get_or_create_entry(st, project, tag, name, subject, autoarchive, origin):
    """PrearcDatabase.eitherGetOrCreateSession: the first session with this project, tag
    (StudyInstanceUID) and name is reused whatever its status (every PrearcStatus is
    interruptable: its no-argument constructor passes true); BUILDING becomes
    RECEIVING_INTERRUPT, RECEIVING stays, anything else becomes RECEIVING. Else a new RECEIVING
    session with a new timestamp."""
    pkey = project or UNASSIGNED
    for en in st.prearchive:
        if en["project"] == pkey and en["tag"] == tag and en["name"] == name:
            if en["status"] == "BUILDING":
                en["status"] = "RECEIVING_INTERRUPT"
            elif en["status"] not in ("RECEIVING", "RECEIVING_INTERRUPT"):
                en["status"] = "RECEIVING"
            return en
    ts = make_timestamp(st)
    now = now_iso()
    en = {"project": pkey, "timestamp": ts, "folderName": name, "name": name,
          "subject": subject or "", "tag": tag, "status": "RECEIVING", "scan_date": "",
          "scan_time": "", "uploaded": now, "lastmod": now, "received_at": time.time(),
          "url": "/prearchive/projects/%s/%s/%s" % (pkey, ts, name),
          "autoarchive": autoarchive, "prevent_anon": "false", "prevent_auto_commit": "false",
          "source": "", "visit": "", "protocol": "", "timeZone": "", "origin": origin,
          "dir": os.path.join("prearchive", pkey, ts, name), "files": {}, "document": None,
          "logs": []}
    st.prearchive.append(en)
    return en


def _requested_name(name):
    base = os.path.basename(name.replace("\\", "/"))
    return base if FILE_NAME_RE.match(base or "") else None


def _namer_name(info):
    """The name XNAT's DicomFileNamer gives when the uploaded name cannot be used (its template
    is site configuration; the stand-in uses the SOP Instance UID)."""
    return info["sop_uid"] + ".dcm"


def _safe_name(en, scan_dir, name, info, force_rename):
    """GradualDicomImporter.getSafeFile: the uploaded file's own name unless renaming is asked
    for or it is unusable; a name already taken in the scan by another object (other SOP
    Instance or Class UID) gives way to the namer's name; the same object is overwritten."""
    safe = _namer_name(info)
    if force_rename:
        return safe
    wanted = _requested_name(name)
    if wanted is None:
        return safe
    have = en["files"].get("%s/%s" % (scan_dir, wanted))
    if have is None or (have["sop_uid"] == info["sop_uid"] and
                        have["sop_class"] == info["sop_class"]):
        return wanted
    return safe


def file_object(st, params, name, info, data, origin="rest"):
    """GradualDicomImporter.call for one parsed object (info None: unreadable). Returns the
    prearchive session URL, or None when a series import filter dropped the object. Raises
    XnatFailure(400, ...) with XNAT's text for an unusable object."""
    if info is None:
        raise XnatFailure(400, "unable to read DICOM object " + os.path.basename(name))
    project = resolve_project(st, params, info)
    if series_filtered(st, project, info):
        return None
    base = os.path.basename(name)
    if not info.get("sop_class"):
        raise XnatFailure(400, "object %s contains no SOP Class UID" % base)
    if not info.get("sop_uid"):
        raise XnatFailure(400, "object %s contains no SOP Instance UID" % base)
    label, subject = _labels(params, info)
    en = get_or_create_entry(st, project, info.get("study_uid", ""), label, subject,
                             entry_autoarchive(st, project, info), origin)
    scan_dir = scan_number(info)
    fname = _safe_name(en, scan_dir, name, info,
                       str(params.get("rename", "")).lower() == "true")
    path = os.path.join(st.data_dir, en["dir"], "SCANS", scan_dir, fname)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    rec = _file_info(fname, data, path, st, info)
    rec.update(scan_dir=scan_dir, **{k: info.get(k, "") for k in (
        "series_uid", "series_number", "series_description", "modality", "study_date",
        "patient_name")})
    en["files"]["%s/%s" % (scan_dir, fname)] = rec
    en["lastmod"] = now_iso()
    en["received_at"] = time.time()
    if not en.get("scan_date") and info.get("study_date"):
        en["scan_date"] = info["study_date"]
    return en["url"]


# ----------------------------------------------------------------------------------------------
# Building a prearchive session (PrearchiveRebuildHandler.rebuild, CatalogBuilder.call)
# ----------------------------------------------------------------------------------------------

def make_document(st, en):
    """The session document of a prearchive session: {"label", "subject", "UID", "xsiType",
    "modality", "scans": {ID: scan}}; a scan is {"ID", "UID", "type", "series_description",
    "modality", "xsiType", "resources": {label: resource}}, a resource {"xnat_abstractresource_id",
    "label", "format", "content", "files": {name: file}}. Scans are the series; IDs as
    scan_number() with a clash renamed <n>-<MOD><k>; each file goes to "DICOM" or "secondary"
    by its SOP class (sop_classes.resource_label, preference separateSecondaryDicomOnArchive)."""
    separate = st.site.get("separate_secondary", True)
    by_series = {}
    for f in en["files"].values():
        by_series.setdefault(f["series_uid"], []).append(f)
    scans = {}
    order = sorted(by_series, key=lambda u: (scan_key(scan_number(by_series[u][0])), u))
    for uid in order:
        first = by_series[uid][0]
        num = scan_number(first)
        modality = first.get("modality") or "OT"
        sid, n = num, 0
        while sid in scans:
            n += 1
            sid = "%s-%s%d" % (num, modality_code(scan_xsi(modality)) or "OT", n)
        scan = {"ID": sid, "UID": uid, "type": first.get("series_description", ""),
                "series_description": first.get("series_description", ""),
                "modality": modality, "xsiType": scan_xsi(modality), "resources": {}}
        for f in by_series[uid]:
            label = sop_classes.resource_label(f["sop_class"], separate)
            res = scan["resources"].get(label) or new_resource(st, label)
            scan["resources"][label] = res
            res["files"][f["name"]] = {k: f[k] for k in (
                "name", "size", "digest", "path", "sop_uid", "sop_class", "instance_number")}
        scans[sid] = scan
    mod, xsi = session_type(set(s["modality"] for s in scans.values()))
    subject = en.get("subject") or next(
        (f.get("patient_name", "") for f in en["files"].values()), "")
    return {"label": en["name"], "subject": subject, "UID": en["tag"], "modality": mod,
            "xsiType": xsi, "study_date": next(
                (f.get("study_date", "") for f in en["files"].values()), ""), "scans": scans}


def build_entry(st, en):
    """Builds the session document; the session becomes READY (PrearcUtils.resetStatus)."""
    en["status"] = "BUILDING"
    en["document"] = make_document(st, en)
    en["status"] = "READY"
    en["lastmod"] = now_iso()


def log_entry(en, text):
    """PrearcUtils.log: one log file per message in the session's logs folder."""
    en.setdefault("logs", []).append({"id": str(int(time.time() * 1000)), "time": now_iso(),
                                      "text": text})


# ----------------------------------------------------------------------------------------------
# Archiving (PrearcSessionArchiver.call, MergePrearcToArchiveSession)
# ----------------------------------------------------------------------------------------------

def is_overwrite_files(st, en, params):
    """PrearcSession.isOverwriteFiles: overwrite_files=true, or the session's or project's
    prearchive code 5 (AutoArchiveOverwrite)."""
    if en["project"] == UNASSIGNED:
        return False
    if str(params.get("overwrite_files", "")).lower() == "true":
        return True
    if en.get("autoarchive") == AUTO_ARCHIVE_OVERWRITE:
        return True
    return st.projects.get(en["project"], {}).get("prearchive_code") == AUTO_ARCHIVE_OVERWRITE


def is_auto_archive(st, en):
    """PrearcSession.isAutoArchive() as PrearchiveRebuildHandler.postBuild asks it."""
    if en["project"] == UNASSIGNED:
        return False
    if en.get("autoarchive") in (AUTO_ARCHIVE, AUTO_ARCHIVE_OVERWRITE):
        return True
    return st.projects.get(en["project"], {}).get("prearchive_code", AUTO_ARCHIVE) >= 4


def appends(en):
    """DicomZipImporter.archiveSession / PrearchiveArchiveHandler: without an explicit merge
    parameter a session whose auto-archive setting is not Manual merges."""
    return en.get("autoarchive") is not None and en.get("autoarchive") != MANUAL


def archive_entry(st, en, override, merge, overwrite_files, params=None):
    """Archives a built prearchive session; returns "/archive/projects/P/subjects/S/experiments/
    L". On refusal the session stays in the prearchive as CONFLICT (a 409 in XNAT) or ERROR
    (anything else), XNAT's message is its last log (PrearcDatabase.LockAndSync.run), and
    XnatFailure carries the status and message."""
    params = params or {}
    en["status"] = "ARCHIVING"
    try:
        uri = _archive(st, en, override, merge, overwrite_files, params)
    except XnatFailure as e:
        en["status"] = "CONFLICT" if e.status == 409 else "ERROR"
        log_entry(en, e.message)
        raise
    st.prearchive.remove(en)
    shutil.rmtree(os.path.join(st.data_dir, en["dir"]), ignore_errors=True)
    return uri


def _archive(st, en, override, merge, overwrite_files, params):
    doc = en.get("document")
    if doc is None:
        raise XnatFailure(500, NO_DOCUMENT)
    project = params.get("project") or en["project"]
    if project == UNASSIGNED or project not in st.projects:
        # Inferred, not run: XNAT's archiver cannot create a subject or session in a project
        # that does not exist (fixSubject / getArcSessionDir fail), a server error.
        raise XnatFailure(500, "Unable to identify project for:" + project)
    if st.projects[project].get("readonly"):
        # Inferred: UserProjectCache files into a project the user can read; saving needs create
        # rights (SaveItemHelper.authorizedSave), a server error.
        raise XnatFailure(500, "User has no create access to project " + project)
    raw_label = params.get("session") or params.get("label") or doc["label"]
    raw_subject = params.get("subject") or doc["subject"] or ""
    if not raw_subject:
        raise XnatFailure(400, "Unable to identify subject.")
    label, subject_label = clean_value(raw_label), clean_value(raw_subject)
    _check_label_policy(st, "session", raw_label, label)
    _check_label_policy(st, "subject", raw_subject, subject_label)
    existing = st.find_experiment(project, label)
    subj = st.find_subject(project, subject_label) or create_subject(st, project, subject_label)
    scans = {sid: s for sid, s in doc["scans"].items()}
    if existing is not None:
        _check_for_conflicts(existing, doc, label, subj, override, merge)
    if not override:
        _validate_dicom_files(scans)
    if existing is not None:
        scans = _correct_scan_ids(existing, scans)
        _check_for_conflict(existing, scans, merge, override or overwrite_files)
    else:
        existing = _new_experiment(st, project, label, subj, doc)
    _merge(st, existing, scans, override or overwrite_files)
    return "/archive/projects/%s/subjects/%s/experiments/%s" % (project, subj["label"],
                                                               existing["label"])


def _check_label_policy(st, what, raw, cleaned):
    """Not XNAT as read: a stand-in knob (label_policy) that refuses labels outside [A-Za-z0-9_-]
    after cleaning (policy clean, the default) or before it (policy reject). Unconfirmed in
    source (XNAT's schema validation of labels was not read); a failure here is not a 409, so
    the session goes to ERROR."""
    if not LABEL_RE.match(raw if st.label_policy == "reject" else cleaned):
        raise XnatFailure(400, "Invalid %s label: %s" % (what, raw))


def create_subject(st, project, label):
    sid = st.next_id("subject")
    s = {"ID": sid, "label": label, "project": project, "insert_date": now_iso()}
    st.subjects[sid] = s
    return s


def _new_experiment(st, project, label, subj, doc):
    eid = st.next_id("experiment")
    e = {"ID": eid, "label": label, "project": project, "subject_ID": subj["ID"],
         "UID": doc["UID"], "date": doc.get("study_date", ""), "insert_date": now_iso(),
         "xsiType": doc["xsiType"], "modality": doc["modality"],
         "dir": os.path.join("archive", project, "arc001", label), "scans": {}}
    st.experiments[eid] = e
    return e


def _check_for_conflicts(existing, doc, label, subj, override, merge):
    """PrearcSessionArchiver.checkForConflicts, in its order."""
    if not merge:
        raise XnatFailure(409, PRE_EXISTS)
    if label != existing["label"]:
        raise XnatFailure(409, LABEL_MOD)
    if existing.get("xsiType") != doc["xsiType"]:   # preventCrossModalityMerge, default true
        raise XnatFailure(409, MODALITY_MOD)
    if existing["subject_ID"] != subj["ID"]:
        raise XnatFailure(409, SUBJECT_MOD + ": " + existing["label"] +
                          " Already Exists for another Subject")
    if not override and existing.get("UID") and doc["UID"] and existing["UID"] != doc["UID"]:
        raise XnatFailure(409, UID_MOD)
    for sid, scan in doc["scans"].items():
        match = existing["scans"].get(sid)
        by_uid = next((s for s in existing["scans"].values() if s["UID"] == scan["UID"]), None)
        if by_uid is not None and match is None and not override:
            raise XnatFailure(409, "Session already contains a scan with the same UID, but a "
                                   "different number (%s)." % by_uid["ID"])


def _validate_dicom_files(scans):
    """PrearcSessionArchiver.validateDicomFiles (skipped with overwrite=delete): a catalog with
    the same SOP Instance UID twice fails the archive (warn throws a ClientException)."""
    for sid, scan in sorted(scans.items(), key=lambda kv: scan_key(kv[0])):
        for label, res in scan["resources"].items():
            seen, dups = set(), []
            for f in res["files"].values():
                if f["sop_uid"] in seen and f["sop_uid"] not in dups:
                    dups.append(f["sop_uid"])
                seen.add(f["sop_uid"])
            if dups:
                raise XnatFailure(400, "Scan %s %s catalog contains duplicated SOP instance "
                                       "UIDs: %s" % (sid, label, ", ".join(dups)))


def _correct_scan_ids(existing, scans):
    """PrearcSessionArchiver.correctScanID: a scan XNAT already holds (same SeriesInstanceUID)
    takes that scan's ID; a new scan whose ID is taken gets <ID>-<MOD><n>."""
    used = list(existing["scans"].keys())
    out = {}
    pending = []
    for sid, scan in sorted(scans.items(), key=lambda kv: scan_key(kv[0])):
        have = next((s for s in existing["scans"].values() if s["UID"] == scan["UID"]), None)
        if have is not None:
            pending.append((have["ID"], scan))
            continue
        code = modality_code(scan["xsiType"])
        stub = sid[:sid.rindex("-")] if re.search(r".-%s[0-9]+$" % re.escape(code), sid) else None
        new_id, count = sid, 1
        while new_id in used or new_id in out:
            new_id = "%s-%s%d" % (stub or sid, code, count)
            count += 1
        used.append(new_id)
        out[new_id] = dict(scan, ID=new_id)
    for sid, scan in pending:
        out[sid] = dict(scan, ID=sid)
    return out


def _check_for_conflict(existing, scans, merge, overwrite):
    """MergeSessionsA.checkForConflict: without overwrite, an incoming entry with a SOP Instance
    UID or a name the matching scan's matching resource already has is CAT_ENTRY_MATCH
    (SessionOverwriteCheck); a file at a path the archived session already has is HAS_FILES,
    which wins when both apply."""
    if not merge:
        raise XnatFailure(409, HAS_FILES)
    if overwrite:
        return
    same_entry = same_path = False
    for sid, scan in scans.items():
        dest = existing["scans"].get(sid)
        if dest is None:
            continue
        for label, res in scan["resources"].items():
            dres = dest["resources"].get(label)
            if dres is None:
                continue
            uids = set(f["sop_uid"] for f in dres["files"].values() if f["sop_uid"])
            for name, f in res["files"].items():
                if name in dres["files"]:
                    same_path = same_entry = True
                elif f["sop_uid"] and f["sop_uid"] in uids:
                    same_entry = True
    if same_path:
        raise XnatFailure(409, HAS_FILES)
    if same_entry:
        raise XnatFailure(409, CAT_ENTRY_MATCH)


def _merge(st, e, scans, overwrite):
    """MergePrearcToArchiveSession / MergeCatCatalog: new scans and resources are added; an entry
    XNAT already has (found by SOP Instance UID, else by name) is replaced when overwriting."""
    for sid, scan in scans.items():
        dest = e["scans"].get(sid)
        if dest is None:
            st.counters["scan"] = st.counters.get("scan", 0) + 1
            dest = {k: scan[k] for k in ("ID", "UID", "type", "series_description", "modality",
                                          "xsiType")}
            dest["ID"] = sid
            dest["xnat_imagescandata_id"] = str(st.counters["scan"])
            dest["resources"] = {}
            e["scans"][sid] = dest
        for label, res in scan["resources"].items():
            dres = dest["resources"].get(label)
            if dres is None:
                dres = new_resource(st, label, res["format"], res["content"])
                dest["resources"][label] = dres
            _merge_catalog(st, e, sid, dres, res, overwrite)
    mods = set(s["modality"] for s in e["scans"].values())
    if not e.get("xsiType"):
        e["modality"], e["xsiType"] = session_type(mods)


def _merge_catalog(st, e, sid, dres, res, overwrite):
    for name, f in res["files"].items():
        old = next((x for x in dres["files"].values()
                    if f["sop_uid"] and x["sop_uid"] == f["sop_uid"]), None)
        if old is None:
            old = dres["files"].get(name)
        if old is not None and not overwrite:
            raise XnatFailure(500, "Duplicate DICOM file uploaded.")
        if old is not None:
            other = dres["files"].get(name)
            if other is not None and other["sop_uid"] != f["sop_uid"]:
                raise XnatFailure(500, NAME_UID_CONFLICT)
            dres["files"].pop(old["name"], None)
            try:
                os.remove(os.path.join(st.data_dir, old["path"]))
            except OSError:
                pass
        target = os.path.join(st.data_dir, e["dir"], "SCANS", sid, dres["label"], name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.move(os.path.join(st.data_dir, f["path"]), target)
        dres["files"][name] = dict(f, path=os.path.relpath(target, st.data_dir))


# ----------------------------------------------------------------------------------------------
# The DICOM-zip import handler (DicomZipImporter)
# ----------------------------------------------------------------------------------------------

def archive_format(name):
    """org.nrg.xft.utils.fileExtraction.Format.getFormat (case-sensitive suffixes)."""
    if re.match(r"^.*\.[tx]ar$", name):
        return "TAR"
    if re.match(r"^.*\.t(ar\.)?gz$", name):
        return "TGZ"
    if re.match(r"^.*\.z(ip|ar)$", name):
        return "ZIP"
    if re.match(r"^.*\.gz$", name):
        return "GZ"
    return "UNKNOWN"


def unpack(name, data):
    """DicomZipImporter.importCompressedFile: [(entry name, bytes)] in archive order, nested
    archives (an entry whose name is a known format) unpacked in place. A body that is not a
    zip yields no entries (ZipInputStream finds no entry), as in XNAT."""
    fmt = archive_format(name)
    if fmt == "ZIP":
        entries = _zip_entries(data)
    elif fmt in ("TAR", "TGZ"):
        try:
            mode = "r:" if fmt == "TAR" else "r:gz"
            with tarfile.open(fileobj=io.BytesIO(data), mode=mode) as tf:
                entries = [(m.name, tf.extractfile(m).read()) for m in tf.getmembers()
                           if m.isfile()]
        except (tarfile.TarError, OSError, EOFError, gzip.BadGzipFile):
            raise XnatFailure(400, "unable to read data from file")
    else:
        raise XnatFailure(400, "Unsupported format " + fmt)
    out = []
    for ename, edata in entries:
        if archive_format(ename) != "UNKNOWN":
            out.extend(unpack(ename, edata))
        else:
            out.append((ename, edata))
    return out


def _zip_entries(data):
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return [(i.filename, zf.read(i)) for i in zf.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        return []


def parse_destination(dest):
    """DicomZipImporter.determiningDestination: (archive?, props) or XnatFailure."""
    m = re.match(r"^/(archive|prearchive)(?:/projects/([^/]+)(?:/subjects/([^/]+)"
                 r"(?:/experiments/([^/]+))?)?)?/?$", dest or "")
    if not m:
        raise XnatFailure(400, "Parameter dest format error")
    props = {}
    if m.group(2):
        props["PROJECT_ID"] = m.group(2)
    if m.group(1) == "archive":
        if m.group(3):
            props["SUBJECT_ID"] = m.group(3)
        if m.group(4):
            props["EXPT_LABEL"] = m.group(4)
    return m.group(1) == "archive", props


def override_value(overwrite):
    """Importer.parseOverrideValue: (overrideExceptions, allowSessionMerge)."""
    if overwrite is None:
        return False, False
    v = overwrite.lower()
    if v == "append":
        return False, True
    if v in ("delete", "override"):
        return True, True
    return False, True


def commit_sessions(st, uris, auto_archive, override, merge_param, params):
    """DicomZipImporter.xmlBuild: builds each session, then archives it when the upload asked for
    the archive; any failure is XnatFailure(400, ARCHIVE_WRAP) and stops the loop."""
    archived = []
    for uri in uris:
        en = next((x for x in st.prearchive if x["url"] == uri), None)
        if en is None:
            continue
        try:
            build_entry(st, en)
            if auto_archive:
                merge = merge_param or appends(en)
                archived.append(archive_entry(st, en, override, merge,
                                              is_overwrite_files(st, en, params)))
        except XnatFailure as e:
            raise XnatFailure(400, ARCHIVE_WRAP) from e
    return archived if auto_archive else list(uris)


def build_idle_sessions(st, now, idle_s, on_result=None):
    """SessionXMLRebuilder: a RECEIVING session idle for the interval is built; if it is to be
    auto-archived (PrearchiveRebuildHandler.postBuild) it is archived as PrearchiveArchiveHandler
    does (merge unless the session's setting is Manual, overwrite per isOverwriteFiles)."""
    for en in list(st.prearchive):
        if en["status"] != "RECEIVING" or now - en.get("received_at", now) < idle_s:
            continue
        build_entry(st, en)
        result = {"uri": "/data" + en["url"]}
        if is_auto_archive(st, en):
            try:
                result["uri"] = "/data" + archive_entry(st, en, False, appends(en),
                                                        is_overwrite_files(st, en, {}))
            except XnatFailure as e:
                result = {"error": e.message, "status": en["status"], "uri": "/data" + en["url"]}
        if on_result:
            on_result(en, result)
