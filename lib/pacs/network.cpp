// Process set-up for DCMTK networking (TCP_NODELAY, no reverse DNS, dictionary check,
// oflog -> spdlog) and the PacsError type.
#include "pacs/pacs.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdict.h>
#include <dcmtk/dcmnet/dul.h>
#include <dcmtk/oflog/appender.h>
#include <dcmtk/oflog/logger.h>
#include <dcmtk/oflog/spi/logevent.h>

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <mutex>

namespace p2x::pacs {

namespace {

namespace l4 = dcmtk::log4cplus;

// Forwards DCMTK log events to spdlog ("dcmtk <logger>: message").
class SpdlogAppender : public l4::Appender {
 public:
  SpdlogAppender() { setName("p2x-spdlog"); }
  ~SpdlogAppender() override { destructorImpl(); }
  void close() override { closed = true; }

 protected:
  void append(const l4::spi::InternalLoggingEvent& event) override {
    const auto level = event.getLogLevel();
    spdlog::level::level_enum lvl = spdlog::level::trace;
    if (level >= l4::FATAL_LOG_LEVEL) {
      lvl = spdlog::level::critical;
    } else if (level >= l4::ERROR_LOG_LEVEL) {
      lvl = spdlog::level::err;
    } else if (level >= l4::WARN_LOG_LEVEL) {
      lvl = spdlog::level::warn;
    } else if (level >= l4::INFO_LOG_LEVEL) {
      lvl = spdlog::level::info;
    } else if (level >= l4::DEBUG_LOG_LEVEL) {
      lvl = spdlog::level::debug;
    }
    spdlog::log(lvl, "dcmtk {}: {}", event.getLoggerName().c_str(), event.getMessage().c_str());
  }
};

std::mutex g_init_mutex;
bool g_initialised = false;

}  // namespace

void init_network() {
  std::lock_guard<std::mutex> lock(g_init_mutex);
  if (g_initialised) return;
  // DCMTK 3.6.7 leaves Nagle on unless TCP_NODELAY is set; overwrite whatever the
  // environment says: every association of this process must have it.
  ::setenv("TCP_NODELAY", "1", 1);
  // Peers are named by their IP address: no reverse DNS lookup (which can take seconds)
  // while the Storage SCP builds an association.
  dcmDisableGethostbyaddr.set(OFTrue);

  if (!dcmDataDict.isDictionaryLoaded()) {
    throw std::runtime_error(
        "DICOM data dictionary not loaded: install DCMTK's dicom.dic (Debian: "
        "/usr/share/libdcmtk17/dicom.dic) or point the DCMDICTPATH environment variable "
        "at it");
  }

  l4::Logger root = l4::Logger::getRoot();
  root.removeAllAppenders();
  root.addAppender(l4::SharedAppenderPtr(new SpdlogAppender()));
  root.setLogLevel(l4::WARN_LOG_LEVEL);
  g_initialised = true;
}

const char* to_string(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::Connect:
      return "connect";
    case ErrorKind::Rejected:
      return "rejected";
    case ErrorKind::Timeout:
      return "timeout";
    case ErrorKind::Protocol:
      return "protocol";
    case ErrorKind::Failed:
      return "failed";
    case ErrorKind::Aborted:
      return "aborted";
    case ErrorKind::ReceiverBusy:
      return "receiver_busy";
  }
  return "unknown";
}

PacsError::PacsError(ErrorKind kind, const std::string& what, bool transient)
    : std::runtime_error(what), kind_(kind), transient_(transient) {}

}  // namespace p2x::pacs
