// pacs2xnatd: the import daemon. All logic lives in lib/service (run_daemon).
// Exit codes: 0 stopped cleanly (or --check-config passed), 1 a failure a restart may cure,
// 2 a bad command line, configuration, credentials file or directory (the unit's
// RestartPreventExitStatus: restarting cannot help).
#include <CLI/CLI.hpp>

#include "service/daemon.hpp"

int main(int argc, char** argv) {
  p2x::service::DaemonOptions opt;
  CLI::App app{"pacs2xnatd - imports DICOM studies from a PACS into XNAT (see pacs2xnat --help)"};
  app.add_option("-c,--config", opt.config_path, "JSON configuration file")->required();
  app.add_option("--state-dir", opt.state_dir, "override paths.state_dir (store and spool)");
  app.add_option("--socket", opt.socket_path, "override paths.socket (CLI socket)");
  app.add_flag("--check-config", opt.check_only,
               "check the configuration, the credentials file and that the state, spool and "
               "socket directories can be created and written; then exit");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);  // prints the help or the error
    return code == 0 ? 0 : 2;
  }
  return p2x::service::run_daemon(opt);
}
