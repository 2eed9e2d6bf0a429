# cmake --install: headers under include/theta, the static libraries, and thetaConfig.cmake so
# that an outside project can find_package(theta CONFIG REQUIRED) and link theta::theta.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

install(TARGETS theta theta_tensor theta_autograd theta_nn theta_theory
        EXPORT thetaTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/theta)
foreach(dir tensor autograd nn theory)
  install(DIRECTORY ${dir}/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/theta/${dir}
          FILES_MATCHING PATTERN "*.hpp" PATTERN "demos" EXCLUDE)
endforeach()
install(EXPORT thetaTargets NAMESPACE theta:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/theta)
configure_package_config_file(cmake/thetaConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/thetaConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/theta)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/thetaConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/thetaConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/thetaConfigVersion.cmake
              cmake/ThetaDependencies.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/theta)
