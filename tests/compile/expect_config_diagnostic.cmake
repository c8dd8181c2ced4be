# Compiles SOURCE with -DCASE_${CASE}; passes only if compilation fails with exactly one error,
# the static_assert of config/field.hpp whose message contains EXPECT, naming the struct.
execute_process(
  COMMAND ${CXX} -std=c++20 -fsyntax-only -I${INCLUDE} -DCASE_${CASE} ${SOURCE}
  RESULT_VARIABLE rc ERROR_VARIABLE err OUTPUT_VARIABLE out)
set(diag "${out}${err}")
if(rc EQUAL 0)
  message(FATAL_ERROR "case ${CASE}: the bad config compiled")
endif()
string(REGEX MATCHALL "error:" errors "${diag}")
list(LENGTH errors n)
if(NOT diag MATCHES "static.assert[^\n]*rproxy::config: describe\\(\\) ${EXPECT}")
  message(FATAL_ERROR "case ${CASE}: no static_assert 'describe() ${EXPECT}' in:\n${diag}")
endif()
if(NOT diag MATCHES "opening_hours")
  message(FATAL_ERROR "case ${CASE}: the diagnostic does not name the struct:\n${diag}")
endif()
if(NOT n EQUAL 1)
  message(FATAL_ERROR "case ${CASE}: expected one error, got ${n}:\n${diag}")
endif()
message(STATUS "case ${CASE}: one error: describe() ${EXPECT}")
