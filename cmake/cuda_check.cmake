# What a CUDA build (MTAD_CUDA=ON) needs before anything is compiled: nvcc, a PyTorch built
# with CUDA, and the two on the same CUDA major.minor. Any of them missing fails the
# configuration with a message that says which and what to do: never a silent CPU-only
# module that fails later at `--device cuda`.
#
# Included by CMakeLists.txt (mtad_require_cuda()), and runnable on its own with faked inputs
# (tests/build/test_cuda_refusal.py):
#   cmake -DMTAD_NVCC=/usr/local/bin/nvcc -DMTAD_NVCC_VERSION=13.0 -DMTAD_TORCH_CUDA=None \
#         -P cmake/cuda_check.cmake
# prints "mtad: CUDA check passed ..." or stops with the refusal.

# mtad_cuda_refusal(<out> <nvcc> <nvcc_version> <torch_cuda>): sets <out> to why a CUDA build
# cannot go on, or to "" if it can. <nvcc> is a path or empty/NOTFOUND; <torch_cuda> is
# torch.version.cuda as Python prints it ("None" for a CPU build).
function(mtad_cuda_refusal out nvcc nvcc_version torch_cuda)
  set(reason "")
  if(NOT nvcc OR nvcc MATCHES "NOTFOUND$")
    set(reason "MTAD_CUDA is on but nvcc was not found: install the CUDA toolkit and put nvcc on PATH (or set CUDACXX), or build without CUDA (MTAD_CUDA=0)")
  elseif(NOT nvcc_version MATCHES "^[0-9]+\\.[0-9]+")
    set(reason "MTAD_CUDA is on but the CUDA version of ${nvcc} could not be read (got '${nvcc_version}')")
  elseif(torch_cuda STREQUAL "" OR torch_cuda STREQUAL "None")
    set(reason "MTAD_CUDA is on but this PyTorch has no CUDA (torch.version.cuda is None): install a CUDA build of torch whose CUDA is ${nvcc_version} (nvcc's), e.g. in its own virtual environment, and build with --no-build-isolation; or build without CUDA (MTAD_CUDA=0)")
  else()
    string(REGEX MATCH "^[0-9]+\\.[0-9]+" nvcc_mm "${nvcc_version}")
    string(REGEX MATCH "^[0-9]+\\.[0-9]+" torch_mm "${torch_cuda}")
    if(NOT nvcc_mm STREQUAL torch_mm)
      set(reason "MTAD_CUDA is on but nvcc (${nvcc}) is CUDA ${nvcc_version} and PyTorch was built with CUDA ${torch_cuda}: use the nvcc of CUDA ${torch_cuda} (CUDACXX=/path/to/nvcc) or a torch built for CUDA ${nvcc_version}")
    endif()
  endif()
  set(${out} "${reason}" PARENT_SCOPE)
endfunction()

# mtad_nvcc_version(<out> <nvcc>): "13.0" from `nvcc --version`, or "" if it cannot be run.
function(mtad_nvcc_version out nvcc)
  set(version "")
  if(nvcc AND NOT nvcc MATCHES "NOTFOUND$")
    execute_process(COMMAND "${nvcc}" --version OUTPUT_VARIABLE text ERROR_QUIET RESULT_VARIABLE rc)
    if(rc EQUAL 0 AND text MATCHES "release ([0-9]+\\.[0-9]+)")
      set(version "${CMAKE_MATCH_1}")
    endif()
  endif()
  set(${out} "${version}" PARENT_SCOPE)
endfunction()

# mtad_require_cuda(): finds nvcc (CMAKE_CUDA_COMPILER, $CUDACXX, PATH, /usr/local/cuda) and
# torch's CUDA version (MTAD_TORCH_CUDA, which setup.py passes, else asked of Python), sets
# CMAKE_CUDA_COMPILER, and stops the configuration if they do not make a CUDA build.
function(mtad_require_cuda)
  set(nvcc "${CMAKE_CUDA_COMPILER}")
  if(NOT nvcc AND DEFINED ENV{CUDACXX})
    set(nvcc "$ENV{CUDACXX}")
  endif()
  if(NOT nvcc)
    find_program(MTAD_NVCC_PROGRAM nvcc HINTS /usr/local/cuda/bin)
    set(nvcc "${MTAD_NVCC_PROGRAM}")
  endif()
  mtad_nvcc_version(nvcc_version "${nvcc}")
  set(torch_cuda "${MTAD_TORCH_CUDA}")
  if(torch_cuda STREQUAL "")
    set(python "${Python_EXECUTABLE}")
    if(NOT python)
      find_program(python NAMES python3 python)
    endif()
    execute_process(COMMAND "${python}" -c "import torch; print(torch.version.cuda)"
                    OUTPUT_VARIABLE torch_cuda OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  endif()
  mtad_cuda_refusal(reason "${nvcc}" "${nvcc_version}" "${torch_cuda}")
  if(reason)
    message(FATAL_ERROR "mtad: ${reason}")
  endif()
  # nvcc may be a wrapper script (/usr/local/bin/nvcc -> exec /usr/local/cuda-13.0/bin/nvcc):
  # the toolkit is where nvcc itself says it is (TOP), which torch's CUDA lookup needs too.
  execute_process(COMMAND "${nvcc}" --dryrun -x cu -c /dev/null -o /dev/null
                  OUTPUT_VARIABLE dry ERROR_VARIABLE dry_err)
  if("${dry}${dry_err}" MATCHES "TOP=([^\n]*)")
    get_filename_component(root "${CMAKE_MATCH_1}" REALPATH)
    if(EXISTS "${root}/bin/nvcc")
      set(nvcc "${root}/bin/nvcc")
      set(CUDAToolkit_ROOT "${root}" CACHE PATH "CUDA toolkit" FORCE)
      set(CUDA_TOOLKIT_ROOT_DIR "${root}" CACHE PATH "CUDA toolkit" FORCE)
    endif()
  endif()
  # Torch links nvrtc; a pip CUDA torch carries it in site-packages/nvidia/cu<major>/lib as
  # libnvrtc.so.<major> only, where a toolkit without it (a compiler-only install) is not.
  if(NOT CUDA_nvrtc_LIBRARY)
    string(REGEX MATCH "^[0-9]+" major "${nvcc_version}")
    set(hints "${root}/lib64" "${root}/lib")
    foreach(p IN LISTS CMAKE_PREFIX_PATH)
      list(APPEND hints "${p}/../../../nvidia/cu${major}/lib" "${p}/../../../nvidia/cuda_nvrtc/lib")
    endforeach()
    find_library(CUDA_nvrtc_LIBRARY NAMES nvrtc libnvrtc.so.${major} HINTS ${hints})
  endif()
  message(STATUS "mtad: CUDA build with ${nvcc} (CUDA ${nvcc_version}), PyTorch CUDA ${torch_cuda}")
  set(CMAKE_CUDA_COMPILER "${nvcc}" CACHE FILEPATH "CUDA compiler" FORCE)
endfunction()

if(CMAKE_SCRIPT_MODE_FILE STREQUAL CMAKE_CURRENT_LIST_FILE)
  if(NOT DEFINED MTAD_NVCC_VERSION)
    mtad_nvcc_version(MTAD_NVCC_VERSION "${MTAD_NVCC}")
  endif()
  mtad_cuda_refusal(reason "${MTAD_NVCC}" "${MTAD_NVCC_VERSION}" "${MTAD_TORCH_CUDA}")
  if(reason)
    message(FATAL_ERROR "mtad: ${reason}")
  endif()
  message("mtad: CUDA check passed: nvcc CUDA ${MTAD_NVCC_VERSION}, PyTorch CUDA ${MTAD_TORCH_CUDA}")
endif()
