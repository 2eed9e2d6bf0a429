# Dependencies, all from Debian 12 packages: libopenblas-dev, libxsimd-dev, catch2,
# libbenchmark-dev. xsimd 8.1's exported target is not usable as shipped, so theta wraps the
# header directory itself in theta::xsimd.

find_package(OpenBLAS CONFIG QUIET)
if(OpenBLAS_FOUND)
  set(THETA_OPENBLAS_INCLUDE ${OpenBLAS_INCLUDE_DIRS})
  set(THETA_OPENBLAS_LIBRARY ${OpenBLAS_LIBRARIES})
else()
  find_path(THETA_OPENBLAS_INCLUDE cblas.h PATH_SUFFIXES openblas-pthread openblas)
  find_library(THETA_OPENBLAS_LIBRARY NAMES openblas)
endif()
if(NOT THETA_OPENBLAS_INCLUDE OR NOT THETA_OPENBLAS_LIBRARY)
  message(FATAL_ERROR "OpenBLAS not found: apt-get install libopenblas-dev")
endif()
if(NOT TARGET theta::openblas)
  add_library(theta::openblas INTERFACE IMPORTED)
  set_target_properties(theta::openblas PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${THETA_OPENBLAS_INCLUDE}"
    INTERFACE_LINK_LIBRARIES "${THETA_OPENBLAS_LIBRARY}")
endif()

find_path(THETA_XSIMD_INCLUDE xsimd/xsimd.hpp)
if(NOT THETA_XSIMD_INCLUDE)
  message(FATAL_ERROR "xsimd not found: apt-get install libxsimd-dev")
endif()
if(NOT TARGET theta::xsimd)
  add_library(theta::xsimd INTERFACE IMPORTED)
  set_target_properties(theta::xsimd PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${THETA_XSIMD_INCLUDE}")
endif()

find_package(Threads REQUIRED)
find_package(ZLIB REQUIRED)
