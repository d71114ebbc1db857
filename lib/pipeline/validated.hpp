// pipeline/validated: the files validation accepted for a study, kept beside them in the spool.
//
// Validation reads every byte of a study once (dicomfile): the files it accepts, with each
// file's size and CRC-32, series, SOP instance and SOP class, are written to
// <spool>/<item>/.p2x-validated.json (a temp file renamed into place). The push sends exactly
// these files — never a directory listing, so a crash leftover (".p2x-*.part") or a stray file
// can never reach XNAT — and checks every file's size and CRC as it streams it (a file changed
// since validation aborts the request before its last byte: the item goes back to validation).
// A new retrieval into the folder removes the list first, so it always describes the files as
// they were validated. Like the rest of the spool it is not fsynced (see spool.hpp).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "validate/validate.hpp"

namespace p2x::pipeline {

// Writes the list for the study folder `dir` (replacing any earlier one).
// Throws std::runtime_error naming the file on failure.
void write_validated(const std::string& dir, const std::vector<validate::ValidFile>& files);

// The list of `dir`; nullopt when there is none (never validated, or retrieved again since).
// Throws std::runtime_error naming the file when it exists but cannot be read or parsed.
std::optional<std::vector<validate::ValidFile>> read_validated(const std::string& dir);

// Removes the list (before new files arrive in `dir`). Never throws.
void forget_validated(const std::string& dir) noexcept;

}  // namespace p2x::pipeline
