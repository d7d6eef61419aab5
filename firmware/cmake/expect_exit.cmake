# Runs COMMAND ('|'-separated) and passes only when its exit status is EXPECT and its output names
# a failed check: a test of the test runner itself (a failing FW_CHECK must fail the run, on the
# host and under qemu, by the count of failed checks).
#   cmake -DCOMMAND="a|b|c" -DEXPECT=3 -P expect_exit.cmake
string(REPLACE "|" ";" command "${COMMAND}")
execute_process(COMMAND ${command} RESULT_VARIABLE status OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("${out}${err}")
if(NOT status STREQUAL "${EXPECT}")
  message(FATAL_ERROR "expect_exit: exit status ${status}, expected ${EXPECT}")
endif()
if(NOT "${out}${err}" MATCHES "check failed|no test ran")
  message(FATAL_ERROR "expect_exit: neither a failed check nor "no test ran" in the output")
endif()
