// pipeline/archives: the XNAT seam as the daemon configures it — the REST import service, or
// XNAT's DICOM receiver (C-STORE through pacs/, verification through the REST API).
#pragma once

#include <memory>

#include "config/config.hpp"
#include "xnat/archive.hpp"

namespace p2x::pipeline {

// xnat.push = "rest": xnat::RestArchive; "cstore": C-STORE to xnat.dicom_ae@dicom_host:dicom_port
// with the routing comment "Project: P Subject: S Session: E".
std::unique_ptr<xnat::IArchive> make_archive(const config::Config& cfg, xnat::Client& client);

}  // namespace p2x::pipeline
