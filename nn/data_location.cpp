#include "nn/data_location.hpp"

#if !defined(THETA_CONFIGURED_DATA_DIR) || !defined(THETA_CONFIGURED_DATA_DIR_KIND)
#error "THETA_CONFIGURED_DATA_DIR and THETA_CONFIGURED_DATA_DIR_KIND must be defined (nn/CMakeLists.txt)"
#endif

namespace theta::nn::detail {

const char* configured_data_dir() { return THETA_CONFIGURED_DATA_DIR; }
const char* configured_data_dir_kind() { return THETA_CONFIGURED_DATA_DIR_KIND; }

}  // namespace theta::nn::detail
