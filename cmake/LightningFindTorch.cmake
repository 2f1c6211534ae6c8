# Finds LibTorch for lightning-cpp (the project and its installed package both use this).
#
# Where LibTorch comes from, first match wins:
#   - CMAKE_PREFIX_PATH: a pytorch.org archive (/opt/libtorch) or a wheel's
#     torch.utils.cmake_prefix_path (.../site-packages/torch/share/cmake);
#   - LIGHTNING_TORCH_PYTHON: a Python whose `torch` package is asked for that path
#     (the default preset names the project's .venv);
#   - the system (Debian's libtorch-dev 1.13).
#
# Defines the `torch` target, LIGHTNING_TORCH_VERSION and LIGHTNING_TORCH_CUDA (whether
# the CUDA libraries of LibTorch are linked, i.e. CUDA code can be compiled).
#
# Two pitfalls handled here:
#   - LibTorch's config looks for its libraries on the system paths before its own prefix,
#     so a wheel's config on a machine with Debian's libtorch-dev would link 1.13's
#     libraries under 2.x headers. Each .../share/cmake entry's prefix is searched first.
#   - The config of a CUDA build stops without a CUDA toolkit (it calls enable_language(CUDA)),
#     although its CPU libraries run without one. Without nvcc the CPU libraries are
#     imported directly (torch_cpu, c10), and CUDA is off.
include_guard(GLOBAL)
include(CheckLanguage)

set(LIGHTNING_TORCH_PYTHON "" CACHE FILEPATH
    "A Python whose torch package provides LibTorch (torch.utils.cmake_prefix_path)")

function(_lightning_torch_prefixes out)
  set(prefixes)
  if(LIGHTNING_TORCH_PYTHON)
    execute_process(
      COMMAND "${LIGHTNING_TORCH_PYTHON}" -c
              "import torch.utils; print(torch.utils.cmake_prefix_path, end='')"
      OUTPUT_VARIABLE path ERROR_VARIABLE error RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "lightning: LIGHTNING_TORCH_PYTHON=${LIGHTNING_TORCH_PYTHON} cannot "
                          "import torch (${error}); run `bash scripts/setup.sh deps`, or point "
                          "CMAKE_PREFIX_PATH at a LibTorch and set LIGHTNING_TORCH_PYTHON to \"\"")
    endif()
    list(APPEND prefixes "${path}")
  endif()
  set(${out} "${prefixes}" PARENT_SCOPE)
endfunction()

macro(lightning_find_torch)
  if(NOT TARGET torch)
    _lightning_torch_prefixes(_lightning_python_prefixes)
    list(APPEND CMAKE_PREFIX_PATH ${_lightning_python_prefixes})
    set(_lightning_prefixes)
    foreach(_entry IN LISTS CMAKE_PREFIX_PATH)
      if(_entry MATCHES "/share/cmake/?$")
        get_filename_component(_root "${_entry}/../.." ABSOLUTE)
        list(APPEND _lightning_prefixes "${_root}")
      endif()
    endforeach()
    list(PREPEND CMAKE_PREFIX_PATH ${_lightning_prefixes})

    # Which TorchConfig.cmake find_package would run, found before running it.
    find_file(_lightning_torch_config TorchConfig.cmake
              PATHS ${Torch_DIR} ${CMAKE_PREFIX_PATH} /usr/local /usr
              PATH_SUFFIXES Torch share/cmake/Torch lib/cmake/Torch
                            lib/${CMAKE_LIBRARY_ARCHITECTURE}/cmake/Torch
              NO_DEFAULT_PATH NO_CACHE)
    if(NOT _lightning_torch_config)
      message(FATAL_ERROR "lightning: no LibTorch found. Run `bash scripts/setup.sh deps` "
                          "(PyPI's torch in .venv), or pass -DCMAKE_PREFIX_PATH=/path/to/libtorch")
    endif()
    get_filename_component(_lightning_torch_config_dir "${_lightning_torch_config}" DIRECTORY)
    get_filename_component(_lightning_torch_root "${_lightning_torch_config_dir}/../../.." ABSOLUTE)
    find_library(_lightning_torch_cuda_lib torch_cuda PATHS "${_lightning_torch_root}/lib"
                 NO_DEFAULT_PATH NO_CACHE)
    # LibTorch's own config works unless it is a CUDA build on a machine without nvcc.
    set(_lightning_use_torch_config TRUE)
    if(_lightning_torch_cuda_lib)
      check_language(CUDA)
      if(NOT CMAKE_CUDA_COMPILER)
        set(_lightning_use_torch_config FALSE)
      endif()
    endif()

    if(_lightning_use_torch_config)
      # Only matters for .cu files; LibTorch's fallback list starts at sm_50, which CUDA 13
      # no longer compiles for.
      if(NOT DEFINED TORCH_CUDA_ARCH_LIST AND NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})
        set(TORCH_CUDA_ARCH_LIST "8.0;9.0")
      endif()
      find_package(Torch REQUIRED CONFIG PATHS "${_lightning_torch_config_dir}" NO_DEFAULT_PATH)
      set(LIGHTNING_TORCH_VERSION "${Torch_VERSION}")
      if(TARGET torch_cuda OR TARGET c10_cuda OR TORCH_LIBRARIES MATCHES "c10_cuda")
        set(LIGHTNING_TORCH_CUDA ON)
      else()
        set(LIGHTNING_TORCH_CUDA OFF)
      endif()
      get_filename_component(_lightning_found_dir "${TORCH_LIBRARY}" DIRECTORY)
      if(_lightning_torch_config_dir MATCHES "/share/cmake/Torch$"
         AND NOT _lightning_found_dir STREQUAL "${_lightning_torch_root}/lib")
        message(FATAL_ERROR "lightning: the LibTorch config in ${_lightning_torch_config_dir} "
                            "found the library ${TORCH_LIBRARY} of another LibTorch; put "
                            "${_lightning_torch_root} first in CMAKE_PREFIX_PATH")
      endif()
    else()
      include("${_lightning_torch_config_dir}/TorchConfigVersion.cmake")
      set(LIGHTNING_TORCH_VERSION "${PACKAGE_VERSION}")
      set(LIGHTNING_TORCH_CUDA OFF)
      message(STATUS "lightning: LibTorch ${LIGHTNING_TORCH_VERSION} in ${_lightning_torch_root} "
                     "is a CUDA build, and its CMake config needs a CUDA toolkit (nvcc), which "
                     "this machine lacks: using its CPU libraries (torch_cpu, c10) directly; "
                     "CUDA code is off")
      add_library(torch INTERFACE IMPORTED)
      set_target_properties(torch PROPERTIES
        INTERFACE_INCLUDE_DIRECTORIES
          "${_lightning_torch_root}/include;${_lightning_torch_root}/include/torch/csrc/api/include"
        INTERFACE_LINK_LIBRARIES
          "${_lightning_torch_root}/lib/libtorch_cpu.so;${_lightning_torch_root}/lib/libc10.so"
        INTERFACE_COMPILE_DEFINITIONS "_GLIBCXX_USE_CXX11_ABI=1")
      set(TORCH_LIBRARIES torch)
      set(Torch_FOUND TRUE)
    endif()
    message(STATUS "lightning: LibTorch ${LIGHTNING_TORCH_VERSION} from ${_lightning_torch_root}"
                   " (CUDA: ${LIGHTNING_TORCH_CUDA})")
  endif()
endmacro()
