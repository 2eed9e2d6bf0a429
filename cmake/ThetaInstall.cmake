# cmake --install: headers under include/theta, the static libraries, the data sets under
# share/theta, and the package files (thetaConfig.cmake, thetaConfigVersion.cmake,
# thetaTargets.cmake) under lib/cmake/theta, so that an outside project can
# find_package(theta CONFIG REQUIRED) and link theta::theta.
# Included from the root CMakeLists.txt when THETA_INSTALL is ON (the default at top level).
include(CMakePackageConfigHelpers)

set(THETA_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/theta)

install(TARGETS theta theta_tensor theta_autograd theta_nn theta_nn_data theta_theory
        EXPORT thetaTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# Every public header keeps its path below the repository root, so `#include "tensor/tensor.hpp"`
# works the same against the source tree and against include/theta.
foreach(dir tensor autograd nn theory)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/${dir}/
          DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/theta/${dir}
          FILES_MATCHING PATTERN "*.hpp"
          PATTERN "demos" EXCLUDE)
endforeach()
# The umbrella header theta/theta.hpp, at the same path below include/theta as below the
# source root.
install(FILES ${PROJECT_SOURCE_DIR}/theta/theta.hpp DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/theta/theta)

# The data sets with their attribution (data/README.md), where the installed library looks for
# them (Note [Data directory] in nn/data_dir.cpp). That path is fixed when theta is configured, so
# installing under another prefix gets a warning: the library there would look in the wrong place.
install(DIRECTORY ${PROJECT_SOURCE_DIR}/data/ DESTINATION ${CMAKE_INSTALL_DATADIR}/theta)
if(NOT IS_ABSOLUTE "${CMAKE_INSTALL_DATADIR}")
  install(CODE "
    if(NOT CMAKE_INSTALL_PREFIX STREQUAL \"${CMAKE_INSTALL_PREFIX}\")
      message(WARNING \"theta was configured with CMAKE_INSTALL_PREFIX=${CMAKE_INSTALL_PREFIX}: its \"
        \"library looks for the data sets in ${CMAKE_INSTALL_FULL_DATADIR}/theta, not under \"
        \"\${CMAKE_INSTALL_PREFIX}. Configure theta with -DCMAKE_INSTALL_PREFIX=\${CMAKE_INSTALL_PREFIX} \"
        \"before installing there, or set THETA_DATA_DIR=\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_DATADIR}/theta \"
        \"when running programs.\")
    endif()")
endif()
install(EXPORT thetaTargets NAMESPACE theta:: DESTINATION ${THETA_INSTALL_CMAKEDIR})

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/thetaConfig.cmake.in
  ${PROJECT_BINARY_DIR}/thetaConfig.cmake
  INSTALL_DESTINATION ${THETA_INSTALL_CMAKEDIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/thetaConfigVersion.cmake
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/thetaConfig.cmake
              ${PROJECT_BINARY_DIR}/thetaConfigVersion.cmake
              ${PROJECT_SOURCE_DIR}/cmake/ThetaDependencies.cmake
        DESTINATION ${THETA_INSTALL_CMAKEDIR})
