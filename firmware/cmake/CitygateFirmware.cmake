# The firmware's build functions (firmware/README.md, "Ports"). One set of calls builds for the
# host (CMAKE_SYSTEM_NAME Linux: the node is a process, a test is a host program) and for the
# Cortex-M (CMAKE_SYSTEM_NAME Generic, toolchains/arm-none-eabi.cmake: an ELF, a test runs under
# qemu-system-arm with semihosting).
#
#   citygate_fw_test(NAME SOURCES src... [LIBS lib...] [ARGS arg...] [STDIN file] [EXPECT_EXIT n])
#       A FW_TEST binary (core/check.hpp) and its ctest "firmware: NAME", label firmware. Host:
#       bin/fw_test_NAME; Cortex-M: bin/fw_test_NAME.elf under qemu (timeout 60 s). ARGS: a
#       name filter. EXPECT_EXIT: the test passes only when the exit status is exactly n (and the
#       output names a failed check): the proof that a failing FW_CHECK fails the run. STDIN: a
#       file (relative to the calling directory) on the test's stdin (qemu: UART0's input).
#   citygate_fw_node(NAME [SOURCES src...] [LIBS lib...])
#       A node's program from the port's NAME_main.cpp: host ports/host/NAME_main.cpp ->
#       bin/citygate-NAME-node, Cortex-M ports/cortexm/NAME_main.cpp -> bin/NAME-node.elf. Skipped
#       (with a message) when the port has no NAME_main.cpp yet.
#   citygate_cortexm_executable(NAME SOURCES src... [LIBS lib...])   (Cortex-M builds only)
#       bin/NAME.elf linked with the start-up code and ports/cortexm/mps2-an385.ld; prints its
#       flash and RAM after each link.

set(CITYGATE_FW_DIR ${CMAKE_CURRENT_LIST_DIR}/..)
set(CITYGATE_FW_QEMU_TIMEOUT 60)

function(citygate_cortexm_executable name)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "" "SOURCES;LIBS")
  add_executable(${name} ${arg_SOURCES})
  # The C driver: g++ would add -lstdc++ (toolchains/arm-none-eabi.cmake).
  set_target_properties(${name} PROPERTIES SUFFIX .elf LINKER_LANGUAGE C)
  target_link_libraries(${name} PRIVATE citygate_fw_cortexm_startup citygate_fw_cortexm ${arg_LIBS}
                                        citygate_fw_options citygate_warnings)
  set(script ${CITYGATE_FW_DIR}/ports/cortexm/mps2-an385.ld)
  target_link_options(${name} PRIVATE -T${script} -Wl,-Map=$<TARGET_FILE:${name}>.map)
  set_property(TARGET ${name} APPEND PROPERTY LINK_DEPENDS ${script})
  add_custom_command(TARGET ${name} POST_BUILD
    COMMAND ${CMAKE_COMMAND} -DSIZE=${CITYGATE_SIZE} -DELF=$<TARGET_FILE:${name}>
            -P ${CITYGATE_FW_DIR}/cmake/print_size.cmake
    VERBATIM)
endfunction()

function(citygate_fw_test name)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "EXPECT_EXIT;STDIN" "SOURCES;LIBS;ARGS")
  set(target fw_test_${name})
  if(CITYGATE_FW_TARGET_IS_MCU)
    citygate_cortexm_executable(${target} SOURCES ${arg_SOURCES} LIBS citygate_fw_test_main ${arg_LIBS})
    # Semihosting's command line is the kernel's name and -append: the runner reads its filter
    # there (ports/cortexm/check_cortexm.cpp).
    set(append)
    if(arg_ARGS)
      list(JOIN arg_ARGS " " joined)
      set(append -append ${joined})
    endif()
    set(command ${CITYGATE_QEMU} -M mps2-an385 -nographic -monitor none
                -semihosting-config enable=on,target=native -kernel $<TARGET_FILE:${target}> ${append})
  else()
    add_executable(${target} ${arg_SOURCES})
    target_link_libraries(${target} PRIVATE citygate_fw_test_main ${arg_LIBS} citygate_fw_options citygate_warnings)
    set(command $<TARGET_FILE:${target}> ${arg_ARGS})
  endif()
  if(NOT CITYGATE_TESTS)
    return()
  endif()
  if(DEFINED arg_EXPECT_EXIT OR DEFINED arg_STDIN)
    list(JOIN command "|" joined)
    set(input)
    if(DEFINED arg_STDIN)
      set(input -DINPUT=${CMAKE_CURRENT_SOURCE_DIR}/${arg_STDIN})
    endif()
    add_test(NAME "firmware: ${name}"
             COMMAND ${CMAKE_COMMAND} "-DCOMMAND=${joined}" "-DEXPECT=${arg_EXPECT_EXIT}" ${input}
                     -P ${CITYGATE_FW_DIR}/cmake/run_test.cmake)
  else()
    add_test(NAME "firmware: ${name}" COMMAND ${command})
  endif()
  set_tests_properties("firmware: ${name}" PROPERTIES LABELS firmware TIMEOUT ${CITYGATE_FW_QEMU_TIMEOUT})
endfunction()

function(citygate_fw_node name)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "FLASH_BUDGET;RAM_BUDGET" "SOURCES;LIBS")
  if(CITYGATE_FW_TARGET_IS_MCU)
    set(main ${CITYGATE_FW_DIR}/ports/cortexm/${name}_main.cpp)
    if(NOT EXISTS ${main})
      message(STATUS "firmware: no ports/cortexm/${name}_main.cpp, ${name}-node.elf not built")
      return()
    endif()
    citygate_cortexm_executable(${name}-node SOURCES ${main} ${arg_SOURCES} LIBS ${arg_LIBS})
    # The budget on the part, a test (ctest "firmware: NAME_node_size"): RAM counts the stack the
    # linker script reserves (__stack_size, 4 KB).
    if(arg_FLASH_BUDGET AND CITYGATE_TESTS)
      add_test(NAME "firmware: ${name}_node_size"
               COMMAND ${CMAKE_COMMAND} -DSIZE=${CITYGATE_SIZE} -DELF=$<TARGET_FILE:${name}-node> -DNAME=${name}
                       -DFLASH_MAX=${arg_FLASH_BUDGET} -DRAM_MAX=${arg_RAM_BUDGET} -DSTACK=4096
                       -P ${CITYGATE_FW_DIR}/cmake/check_size.cmake)
      set_tests_properties("firmware: ${name}_node_size" PROPERTIES LABELS firmware)
    endif()
  else()
    set(main ${CITYGATE_FW_DIR}/ports/host/${name}_main.cpp)
    if(NOT EXISTS ${main})
      message(STATUS "firmware: no ports/host/${name}_main.cpp, citygate-${name}-node not built")
      return()
    endif()
    add_executable(citygate-${name}-node ${main} ${arg_SOURCES})
    target_link_libraries(citygate-${name}-node PRIVATE citygate_fw_host ${arg_LIBS} citygate_fw_options
                                                        citygate_warnings)
  endif()
endfunction()
