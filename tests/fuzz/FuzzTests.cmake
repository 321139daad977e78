# The ctest entries that run each libFuzzer target for a while (label "fuzz"):
# included by tests/fuzz/CMakeLists.txt (make fuzz's build-fuzz) and by
# tests/CMakeLists.txt (make test, which builds the targets with clang beside the
# ASan build). A crash fails the entry; the input is kept under fuzz-work/artifacts.
set(RG_FUZZ_TARGETS fuzz_request_framer fuzz_reply_framer fuzz_info fuzz_config)

function(rg_add_fuzz_tests bindir seconds)
  foreach(t ${RG_FUZZ_TARGETS})
    add_test(NAME fuzz.${t}
             COMMAND ${CMAKE_CURRENT_FUNCTION_LIST_DIR}/run.sh ${bindir}/${t} ${seconds}
                     ${CMAKE_BINARY_DIR}/fuzz-work)
    # One fuzzer at a time: each keeps a core busy, and the integration tests are timed.
    set_tests_properties(fuzz.${t} PROPERTIES LABELS fuzz RESOURCE_LOCK fuzz TIMEOUT 600)
  endforeach()
endfunction()
