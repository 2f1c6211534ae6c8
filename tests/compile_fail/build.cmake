# Compiles every compile-fail case in one run (see tests/CMakeLists.txt) and keeps what
# the compiler said in LOG for the per-case checks. The build must fail.
execute_process(COMMAND ${CMAKE_COMMAND} --build ${BUILD_DIR} --target ${TARGET}
                OUTPUT_VARIABLE out ERROR_VARIABLE out RESULT_VARIABLE rc)
file(WRITE ${LOG} "${out}")
if(rc EQUAL 0)
  message(FATAL_ERROR "the compile-fail cases compiled: each of them must fail to compile")
endif()
string(REGEX MATCHALL "error: " errors "${out}")
list(LENGTH errors count)
message("the compile-fail cases failed to compile with ${count} errors (log: ${LOG})")
