# Compiles SOURCE with -DCASE_${CASE}; passes only if compilation fails with exactly one error
# that is make_pipeline's static_assert, and the diagnostic names the stage (deny_at_night).
execute_process(
  COMMAND ${CXX} -std=c++20 -fsyntax-only -I${INCLUDE} -DASIO_STANDALONE -DCASE_${CASE} ${SOURCE}
  RESULT_VARIABLE rc ERROR_VARIABLE err OUTPUT_VARIABLE out)
set(diag "${out}${err}")
if(rc EQUAL 0)
  message(FATAL_ERROR "case ${CASE}: the bad stage compiled")
endif()
string(REGEX MATCHALL "error:" errors "${diag}")
list(LENGTH errors n)
if(NOT diag MATCHES "static assert[^\n]*rproxy::make_pipeline: [^\n]*")
  message(FATAL_ERROR "case ${CASE}: no make_pipeline static_assert in:\n${diag}")
endif()
string(REGEX MATCH "rproxy::make_pipeline: [^\n\"]*" msg "${diag}")
if(NOT diag MATCHES "stage_contract<deny_at_night")
  message(FATAL_ERROR "case ${CASE}: the diagnostic does not name the stage:\n${diag}")
endif()
if(NOT n EQUAL 1)
  message(FATAL_ERROR "case ${CASE}: expected one error, got ${n}:\n${diag}")
endif()
message(STATUS "case ${CASE}: one error: ${msg}")
