# `cmake --install BUILD --prefix P` (docs/deploy.md): the layers' static libraries, the public
# header <mtl/predictor.h>, the tools, and a CMake package: find_package(mtl CONFIG REQUIRED) gives
# mtl::mtl, which links everything. The package config finds the dependencies the libraries need
# (cmake/mtlConfig.cmake.in), so a consumer writes nothing else.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# The library targets of the layers and the executables of apps/, whatever their names, so that a
# new layer or tool is installed without a change here.
set(mtl_libraries "")
set(mtl_tools "")
foreach(dir core kernels ops nn models train apps)
  get_property(targets DIRECTORY ${PROJECT_SOURCE_DIR}/${dir} PROPERTY BUILDSYSTEM_TARGETS)
  foreach(t IN LISTS targets)
    get_target_property(type ${t} TYPE)
    if(type STREQUAL "STATIC_LIBRARY" OR type STREQUAL "INTERFACE_LIBRARY")
      list(APPEND mtl_libraries ${t})
    elseif(type STREQUAL "EXECUTABLE")
      list(APPEND mtl_tools ${t})
    endif()
  endforeach()
endforeach()

add_library(mtl INTERFACE)
target_link_libraries(mtl INTERFACE mtl_train_lib)
add_library(mtl::mtl ALIAS mtl)

install(TARGETS ${mtl_libraries} mtl EXPORT mtlTargets ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(EXPORT mtlTargets NAMESPACE mtl:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/mtl)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/train/export/include/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
# The tools find the CUDA libraries where they were linked from (not a system folder here).
set_target_properties(${mtl_tools} PROPERTIES INSTALL_RPATH_USE_LINK_PATH ON)
install(TARGETS ${mtl_tools} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/mtlConfig.cmake.in ${PROJECT_BINARY_DIR}/mtlConfig.cmake
                              INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/mtl)
install(FILES ${PROJECT_BINARY_DIR}/mtlConfig.cmake DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/mtl)
# The imported targets for cuDNN, the CUDA libraries, OpenBLAS and stb, made by the same file as
# in this build.
install(FILES ${CMAKE_CURRENT_LIST_DIR}/Dependencies.cmake DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/mtl
        RENAME mtlDependencies.cmake)
