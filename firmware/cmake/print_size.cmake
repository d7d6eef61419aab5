# After each Cortex-M link: arm-none-eabi-size's table, then what the part needs of its memories.
# Flash = text + data (the initial values of .data are stored in flash and copied at start-up),
# RAM = data + bss (the stack comes on top: ports/cortexm/mps2-an385.ld reserves it).
#   cmake -DSIZE=arm-none-eabi-size -DELF=x.elf -P print_size.cmake
execute_process(COMMAND ${SIZE} ${ELF} OUTPUT_VARIABLE table RESULT_VARIABLE status)
if(NOT status EQUAL 0)
  message(FATAL_ERROR "print_size: ${SIZE} ${ELF} failed")
endif()
string(STRIP "${table}" table)
message("${table}")
string(REGEX MATCH "\n *([0-9]+)[ \t]+([0-9]+)[ \t]+([0-9]+)" row "${table}")
math(EXPR flash "${CMAKE_MATCH_1} + ${CMAKE_MATCH_2}")
math(EXPR ram "${CMAKE_MATCH_2} + ${CMAKE_MATCH_3}")
get_filename_component(name ${ELF} NAME)
message("${name}: flash ${flash} B (text ${CMAKE_MATCH_1} + data ${CMAKE_MATCH_2}), RAM ${ram} B (data ${CMAKE_MATCH_2} + bss ${CMAKE_MATCH_3})")
