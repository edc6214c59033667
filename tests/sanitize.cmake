# tests/sanitize.cmake: labels for the extra builds of tests/sanitize.sh.
#
# Every test of this directory whose program links nh_core (the library
# without the malloc override) gets the label "unit": those are the tests
# the ASan+UBSan and Valgrind stages run (the drop-in, preload, VM and CLI
# tests need the plain shared library or a real machine). The test_stress
# and test_soak programs also get "stress" (the TSan stage). Deferred to the
# end of this directory, so tests other files add later are labelled too.
function(nh_label_unit_tests)
  get_property(_tests DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR} PROPERTY TESTS)
  foreach(_t IN LISTS _tests)
    if(NOT TARGET ${_t})
      continue()
    endif()
    get_target_property(_libs ${_t} LINK_LIBRARIES)
    if("nh_core" IN_LIST _libs)
      set_property(TEST ${_t} APPEND PROPERTY LABELS unit)
    endif()
    if(_t MATCHES "stress|soak|xfer")
      set_property(TEST ${_t} APPEND PROPERTY LABELS stress)
    endif()
  endforeach()
endfunction()
cmake_language(DEFER DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR} CALL nh_label_unit_tests)
