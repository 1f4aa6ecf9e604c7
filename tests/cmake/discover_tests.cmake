# Run at build time (cmake -P) after a test executable links: lists its doctest cases, those in
# TEST_SUITE("cuda") separately, and writes one ctest test per case to CTEST_FILE. CUDA cases get
# the label `cuda`; every case is SKIPPED when it prints the marker of MTL_REQUIRE_CUDA(). Cases of
# TEST_SUITE("mpi") are left out. With SIMT on (an executable of the CPU execution layer) only the
# cases of the `cuda` and `simt` suites are registered, labelled `simt`: the CPU cases already run
# in the plain executable.
# (doctest's own discovery derives labels from a per-test query that breaks on commas.)
function(list_cases out)
  execute_process(COMMAND "${EXE}" --list-test-cases ${ARGN} OUTPUT_VARIABLE text RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "listing the tests of ${EXE} failed (${rc}):\n${text}")
  endif()
  # A case's name may hold semicolons, which CMake's lists would split it at: they travel as a
  # placeholder until the name is written out.
  string(REPLACE ";" "<semicolon>" text "${text}")
  string(REPLACE "\n" ";" lines "${text}")
  set(names "")
  foreach(line IN LISTS lines)
    if(line STREQUAL "" OR line MATCHES "^\\[doctest\\]" OR line MATCHES "^=+$")
      continue()
    endif()
    list(APPEND names "${line}")
  endforeach()
  set(${out} "${names}" PARENT_SCOPE)
endfunction()

if(SIMT)
  set(kinds simt)
  list_cases(simt_cases --test-suite=cuda,simt)
else()
  set(kinds cpu cuda)
  list_cases(cuda_cases --test-suite=cuda)
  # The `mpi` suite holds what the ranks of a data-parallel test run: started by mpirun from an
  # ordinary case (tests/support/mpi.h), never on its own.
  list_cases(cpu_cases --test-suite-exclude=cuda,mpi)
endif()

set(script "")
foreach(kind ${kinds})
  foreach(listed IN LISTS ${kind}_cases)
    string(REPLACE "<semicolon>" ";" name "${listed}")
    # doctest filters split on commas and treat * and ? as wildcards: escape all three.
    string(REGEX REPLACE "([,*?\\\\])" "\\\\\\1" filter "${name}")
    set(test "${PREFIX}${name}")
    string(APPEND script "add_test([==[${test}]==] [==[${EXE}]==] [==[--test-case=${filter}]==])\n")
    set(labels "")
    if(NOT kind STREQUAL "cpu")
      set(labels "LABELS ${kind}")
    endif()
    string(APPEND script "set_tests_properties([==[${test}]==] PROPERTIES ${labels} "
                         "SKIP_REGULAR_EXPRESSION [==[\\[mtl-skipped\\]]==] TIMEOUT 900 "
                         # OpenMP threads must not spin while ctest runs tests side by side.
                         "ENVIRONMENT OMP_WAIT_POLICY=PASSIVE "
                         "WORKING_DIRECTORY [==[${WORKDIR}]==])\n")
  endforeach()
endforeach()
file(WRITE "${CTEST_FILE}" "${script}")
