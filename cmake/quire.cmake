# Helpers shared by tests/, bench/ and fuzz/.

# quire_test(NAME SOURCES a.c [b.c] LABELS unit [slow] [LIBS x] [TIMEOUT s])
# One executable per test file, registered with ctest. Labels: unit,
# integration, crash, fuzz-replay, slow, tsan (also worth running under TSan).
function(quire_test name)
  cmake_parse_arguments(T "" "TIMEOUT" "SOURCES;LABELS;LIBS;ARGS" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE quire quire_testlib ${T_LIBS})
  add_test(NAME ${name} COMMAND ${name} ${T_ARGS})
  set_tests_properties(${name} PROPERTIES LABELS "${T_LABELS}" TIMEOUT ${T_TIMEOUT}
    ENVIRONMENT "QUIRE_TEST_TMP=${CMAKE_BINARY_DIR}/test-tmp;QUIRE_SOURCE_DIR=${CMAKE_SOURCE_DIR};QUIRE_BIN=$<TARGET_FILE:quire_cli>")
endfunction()

# quire_fuzzer(NAME SOURCES h.c CORPUS dir)
# The harness defines LLVMFuzzerTestOneInput. It is always linked with a
# replay driver and its corpus replayed in ctest (label fuzz-replay); with
# -DQUIRE_FUZZ=ON (clang) a real libFuzzer binary is built too.
function(quire_fuzzer name)
  cmake_parse_arguments(F "" "CORPUS" "SOURCES;LIBS" ${ARGN})
  add_executable(${name}_replay ${F_SOURCES} ${CMAKE_SOURCE_DIR}/fuzz/replay_main.c)
  target_link_libraries(${name}_replay PRIVATE quire ${F_LIBS})
  add_test(NAME ${name}_replay COMMAND ${name}_replay ${F_CORPUS})
  set_tests_properties(${name}_replay PROPERTIES LABELS "fuzz-replay" TIMEOUT 300)
  if(QUIRE_FUZZ)
    add_executable(${name} ${F_SOURCES})
    target_compile_options(${name} PRIVATE -fsanitize=fuzzer)
    target_link_options(${name} PRIVATE -fsanitize=fuzzer)
    target_link_libraries(${name} PRIVATE quire ${F_LIBS})
    set_property(GLOBAL APPEND PROPERTY QUIRE_FUZZERS "${name}|${F_CORPUS}")
  endif()
endfunction()
