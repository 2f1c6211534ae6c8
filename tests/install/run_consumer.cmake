# Installs the build tree into a fresh prefix, then configures, builds and runs a
# separate project that finds it with find_package(lightning).
file(REMOVE_RECURSE "${WORK_DIR}")
function(step)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "install test step failed (${rc}): ${ARGN}")
  endif()
endfunction()
step(${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${WORK_DIR}/prefix")
if(NOT EXISTS "${WORK_DIR}/prefix/include/lightning/lightning.hpp")
  message(FATAL_ERROR "install did not put lightning.hpp under include/lightning")
endif()
# No build type (no optimization): what is tested is that the package is found, compiles
# and links; optimizing the consumer's one heavy translation unit would double its time.
step(${CMAKE_COMMAND} -S "${CONSUMER_SOURCE}" -B "${WORK_DIR}/build" -G Ninja
     -DCMAKE_BUILD_TYPE= "-DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix;${PREFIX_PATH}"
     "-DLIGHTNING_TORCH_PYTHON=${TORCH_PYTHON}")
step(${CMAKE_COMMAND} --build "${WORK_DIR}/build")
step("${WORK_DIR}/build/consumer")
