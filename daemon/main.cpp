// pacs2xnatd: the import daemon. All logic lives in lib/service (run_daemon).
#include <CLI/CLI.hpp>

#include "service/daemon.hpp"

int main(int argc, char** argv) {
  p2x::service::DaemonOptions opt;
  CLI::App app{"pacs2xnatd - imports DICOM studies from a PACS into XNAT (see pacs2xnat --help)"};
  app.add_option("-c,--config", opt.config_path, "JSON configuration file")->required();
  app.add_option("--state-dir", opt.state_dir, "override paths.state_dir (store and spool)");
  app.add_option("--socket", opt.socket_path, "override paths.socket (CLI socket)");
  app.add_flag("--check-config", opt.check_only, "validate the configuration and exit");
  CLI11_PARSE(app, argc, argv);
  return p2x::service::run_daemon(opt);
}
