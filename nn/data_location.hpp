#pragma once
// Internal to theta_nn: where the library was told, when it was configured, that the shipped
// data sets live (Note [Data directory] in nn/data_dir.cpp). configured_data_dir() is defined by
// one of two small libraries built from nn/data_location.cpp: the build tree's (the source tree's
// data/) and the installed one (<prefix>/share/theta), so an installed library never refers to a
// source tree.

#include <string>

namespace theta::nn::detail {

/// The configured data directory, an absolute path.
const char* configured_data_dir();
/// What that directory is, for error messages: "the source tree's data folder" or "the installed
/// data directory".
const char* configured_data_dir_kind();

/// The path of the shipped data file `name` (Note [Data directory]); throws FormatError naming
/// `op`, the path it looked for and how to override it when there is no such file.
std::string find_data_file(const std::string& name, const char* op);

}  // namespace theta::nn::detail
