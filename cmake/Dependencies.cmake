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

# The CUDA runtime, cuBLAS and cuDNN: headers for every consumer, libraries for every one except
# an executable with the MTL_SIMT property, where the CPU execution layer (tests/simt) defines the
# same functions on the host.
add_library(mtl::cuda INTERFACE IMPORTED)
target_include_directories(mtl::cuda INTERFACE ${CUDAToolkit_INCLUDE_DIRS} ${CUDNN_INCLUDE_DIR})
target_link_libraries(mtl::cuda INTERFACE
  "$<$<NOT:$<BOOL:$<TARGET_PROPERTY:MTL_SIMT>>>:CUDA::cudart;CUDA::cublas;mtl::cudnn>")

# OpenBLAS does the CPU GEMMs. The GPU machine has no OpenBLAS and its 36 MB library is too large
# to carry there, so it builds with MTL_USE_OPENBLAS=OFF: a plain blocked GEMM, good enough for
# the CPU side of CUDA parity tests.
option(MTL_USE_OPENBLAS "CPU GEMM through OpenBLAS (off: built-in blocked loops)" ON)
add_library(mtl::blas INTERFACE IMPORTED)
if(MTL_USE_OPENBLAS)
  find_path(OPENBLAS_INCLUDE_DIR cblas.h PATH_SUFFIXES openblas openblas-pthread x86_64-linux-gnu/openblas-pthread)
  find_library(OPENBLAS_LIBRARY NAMES openblas openblas64)
  if(NOT OPENBLAS_INCLUDE_DIR OR NOT OPENBLAS_LIBRARY)
    message(FATAL_ERROR "OpenBLAS not found (Debian: libopenblas-dev); or configure with -DMTL_USE_OPENBLAS=OFF")
  endif()
  target_include_directories(mtl::blas INTERFACE ${OPENBLAS_INCLUDE_DIR})
  target_link_libraries(mtl::blas INTERFACE ${OPENBLAS_LIBRARY})
  target_compile_definitions(mtl::blas INTERFACE MTL_USE_OPENBLAS=1)
endif()

find_path(STB_INCLUDE_DIR stb_image.h PATH_SUFFIXES stb)
add_library(mtl::stb INTERFACE IMPORTED)
if(STB_INCLUDE_DIR)
  target_include_directories(mtl::stb INTERFACE ${STB_INCLUDE_DIR})
endif()

# MPI moves CPU tensors between the processes of a data-parallel run (train/dist) and starts them
# (mpirun). Optional: the GPU machine has no Debian packages; without it a run under mpirun fails
# with an error naming the missing backend.
# Its C API, called from C++ (the project enables no C compiler; no C++ bindings needed).
set(MPI_CXX_SKIP_MPICXX ON)
find_package(MPI COMPONENTS CXX QUIET)
if(MPI_CXX_FOUND)
  message(STATUS "MPI: ${MPI_CXX_LIBRARIES} (mpirun: ${MPIEXEC_EXECUTABLE})")
endif()

# NCCL moves CUDA tensors. Only its header is needed to build: the library is opened at run time
# (dlopen), so that CPU machines, the CPU execution layer's tests and machines that hold NCCL only
# as the nvidia-nccl-cu13 wheel (found through LD_LIBRARY_PATH, scripts/gpu_check.sh) all link the
# same way. NCCL_LIBRARY, when found, is the fallback path tried after the loader's search.
find_path(NCCL_INCLUDE_DIR nccl.h HINTS ${NCCL_ROOT} $ENV{NCCL_ROOT} ${CUDAToolkit_INCLUDE_DIRS} PATH_SUFFIXES include)
find_library(NCCL_LIBRARY NAMES nccl libnccl.so.2 HINTS ${NCCL_ROOT} $ENV{NCCL_ROOT} ${CUDAToolkit_LIBRARY_DIR}
             PATH_SUFFIXES lib lib64)
if(NCCL_INCLUDE_DIR)
  message(STATUS "NCCL: ${NCCL_INCLUDE_DIR}/nccl.h (library at run time: libnccl.so.2, then ${NCCL_LIBRARY})")
endif()
