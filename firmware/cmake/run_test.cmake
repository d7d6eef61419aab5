# Runs a firmware test's COMMAND ('|'-separated) for ctest when plain add_test() cannot:
#   INPUT=file     the command's stdin (under qemu -nographic: UART0's receive side)
#   EXPECT=n       pass only when the exit status is exactly n and the output names a failed check
#                  (or "no test ran"): the test of the runner itself, a failing FW_CHECK must fail
#                  the run by the count of failed checks, on the host and under qemu
# Without EXPECT, passes when the exit status is 0.
#   cmake -DCOMMAND="a|b|c" [-DINPUT=file] [-DEXPECT=3] -P run_test.cmake
string(REPLACE "|" ";" command "${COMMAND}")
set(input)
if(DEFINED INPUT AND NOT INPUT STREQUAL "")
  set(input INPUT_FILE ${INPUT})
endif()
execute_process(COMMAND ${command} ${input} RESULT_VARIABLE status OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("${out}${err}")
if(NOT DEFINED EXPECT OR EXPECT STREQUAL "")
  if(NOT status STREQUAL "0")
    message(FATAL_ERROR "run_test: exit status ${status}")
  endif()
  return()
endif()
if(NOT status STREQUAL "${EXPECT}")
  message(FATAL_ERROR "run_test: exit status ${status}, expected ${EXPECT}")
endif()
if(NOT "${out}${err}" MATCHES "check failed|no test ran")
  message(FATAL_ERROR "run_test: neither a failed check nor \"no test ran\" in the output")
endif()
