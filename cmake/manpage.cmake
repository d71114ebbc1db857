# manpage.cmake: writes a man page from a template and the program's own --help output, so the
# options in the page are always those of the binary. Run with cmake -P and:
#   P2X_BIN       the built program
#   P2X_TEMPLATE  roff template; @P2X_HELP@ becomes `P2X_BIN --help`, @P2X_COMMANDS@ the
#                 --help of every subcommand listed under "Subcommands:", @P2X_VERSION@
#   P2X_OUT       the page to write
#   P2X_VERSION   the project version
cmake_minimum_required(VERSION 3.25)

# Text as a roff no-fill block: backslashes escaped, no line read as a request.
function(p2x_roff_literal text out)
  string(REPLACE "\\" "\\e" text "${text}")
  string(REGEX REPLACE "(^|\n)([.'])" "\\1\\\\&\\2" text "${text}")
  string(REGEX REPLACE "\n+$" "" text "${text}")
  set(${out} ".nf\n${text}\n.fi" PARENT_SCOPE)
endfunction()

function(p2x_help out)
  execute_process(COMMAND "${P2X_BIN}" ${ARGN} --help
                  OUTPUT_VARIABLE text ERROR_VARIABLE err RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0 OR text STREQUAL "")
    message(FATAL_ERROR "${P2X_BIN} ${ARGN} --help failed (${rc}): ${err}")
  endif()
  # "Usage: /path/to/build/prog": the page names the program, not where it was built.
  get_filename_component(name "${P2X_BIN}" NAME)
  string(REPLACE "${P2X_BIN}" "${name}" text "${text}")
  set(${out} "${text}" PARENT_SCOPE)
endfunction()

p2x_help(help)
p2x_roff_literal("${help}" P2X_HELP)

# CLI11 lists subcommands as "  name   description" lines after "Subcommands:".
set(P2X_COMMANDS "")
string(FIND "${help}" "\nSubcommands:\n" at)
if(NOT at EQUAL -1)
  string(SUBSTRING "${help}" ${at} -1 tail)
  string(REGEX MATCHALL "\n  [a-z][a-z0-9-]*" names "${tail}")
  foreach(name IN LISTS names)
    string(STRIP "${name}" name)
    p2x_help(sub ${name})
    p2x_roff_literal("${sub}" sub)
    string(APPEND P2X_COMMANDS ".SS ${name}\n${sub}\n")
  endforeach()
endif()

configure_file("${P2X_TEMPLATE}" "${P2X_OUT}" @ONLY)
