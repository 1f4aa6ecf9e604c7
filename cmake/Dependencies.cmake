# Third-party libraries: Debian packages here and in CI; on the GPU machine the same files are
# carried in MTL_DEPS_PREFIX (scripts/gpu_check.sh). Each becomes an imported target.

# cuDNN ships no CMake config: look beside the toolkit, then in a pip wheel's layout.
find_path(CUDNN_INCLUDE_DIR cudnn.h
  HINTS ${CUDNN_ROOT} $ENV{CUDNN_ROOT} ${CUDAToolkit_INCLUDE_DIRS} /usr/local/include
  PATH_SUFFIXES include)
find_library(CUDNN_LIBRARY cudnn
  HINTS ${CUDNN_ROOT} $ENV{CUDNN_ROOT} ${CUDAToolkit_LIBRARY_DIR}
  PATH_SUFFIXES lib lib64)
if(NOT CUDNN_INCLUDE_DIR OR NOT CUDNN_LIBRARY)
  message(FATAL_ERROR "cuDNN not found: set CUDNN_ROOT to the folder holding include/cudnn.h and lib/libcudnn.so")
endif()
add_library(mtl::cudnn INTERFACE IMPORTED)
target_include_directories(mtl::cudnn INTERFACE ${CUDNN_INCLUDE_DIR})
target_link_libraries(mtl::cudnn INTERFACE ${CUDNN_LIBRARY})

find_path(OPENBLAS_INCLUDE_DIR cblas.h PATH_SUFFIXES openblas openblas-pthread x86_64-linux-gnu/openblas-pthread)
find_library(OPENBLAS_LIBRARY NAMES openblas openblas64)
if(NOT OPENBLAS_INCLUDE_DIR OR NOT OPENBLAS_LIBRARY)
  message(FATAL_ERROR "OpenBLAS not found (Debian: libopenblas-dev)")
endif()
add_library(mtl::blas INTERFACE IMPORTED)
target_include_directories(mtl::blas INTERFACE ${OPENBLAS_INCLUDE_DIR})
target_link_libraries(mtl::blas INTERFACE ${OPENBLAS_LIBRARY})

find_path(STB_INCLUDE_DIR stb_image.h PATH_SUFFIXES stb)
add_library(mtl::stb INTERFACE IMPORTED)
if(STB_INCLUDE_DIR)
  target_include_directories(mtl::stb INTERFACE ${STB_INCLUDE_DIR})
endif()
