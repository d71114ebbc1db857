// pacs2xnat: the command line. All logic lives in lib/client (run_cli).
#include <iostream>

#include "client/cli.hpp"

int main(int argc, char** argv) {
  return p2x::client::run_cli(argc, argv, std::cout, std::cerr);
}
