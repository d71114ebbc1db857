// Runs the CLI in-process (client::run_cli) with arguments as typed after `pacs2xnat`, and
// keeps its exit code and output: for the client tests.
#pragma once

#include <sstream>
#include <string>
#include <vector>

#include "client/cli.hpp"

namespace p2x::test {

struct CliRun {
  int code = -1;
  std::string out, err;
};

inline CliRun run(std::vector<std::string> args) {
  args.insert(args.begin(), "pacs2xnat");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  std::ostringstream out, err;
  CliRun r;
  r.code = client::run_cli(static_cast<int>(argv.size()), argv.data(), out, err);
  r.out = out.str();
  r.err = err.str();
  return r;
}

}  // namespace p2x::test
