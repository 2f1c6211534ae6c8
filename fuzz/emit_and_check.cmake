# fuzz.log_files_python: runs fuzz_log_writers once on every seed with LIGHTNING_FUZZ_EMIT
# set, then fuzz/check_log_files.py on what the loggers wrote.
file(REMOVE_RECURSE ${EMIT})
file(MAKE_DIRECTORY ${EMIT})
file(GLOB seeds ${CORPUS}/*)
list(SORT seeds)
execute_process(COMMAND ${CMAKE_COMMAND} -E env LIGHTNING_FUZZ_EMIT=${EMIT}
                        ASAN_OPTIONS=detect_leaks=0 ${FUZZER} ${seeds}
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "fuzz_log_writers failed on the seeds (${rc})")
endif()
execute_process(COMMAND ${PYTHON} ${CHECK} ${EMIT} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "a file the loggers wrote does not read back in Python (${rc})")
endif()
