# A node's budget on its part: flash (text + data) <= FLASH_MAX and RAM (data + bss + the stack
# the linker script reserves) <= RAM_MAX, by arm-none-eabi-size (ctest "firmware: NAME_node_size",
# Cortex-M builds; citygate_fw_node's FLASH_BUDGET and RAM_BUDGET).
#   cmake -DSIZE=arm-none-eabi-size -DELF=air-node.elf -DNAME=air -DFLASH_MAX=98304 -DRAM_MAX=20480 -DSTACK=4096 -P check_size.cmake
execute_process(COMMAND ${SIZE} ${ELF} OUTPUT_VARIABLE table RESULT_VARIABLE status)
if(NOT status EQUAL 0)
  message(FATAL_ERROR "check_size: ${SIZE} ${ELF} failed")
endif()
string(REGEX MATCH "\n *([0-9]+)[ \t]+([0-9]+)[ \t]+([0-9]+)" row "${table}")
math(EXPR flash "${CMAKE_MATCH_1} + ${CMAKE_MATCH_2}")
math(EXPR ram "${CMAKE_MATCH_2} + ${CMAKE_MATCH_3} + ${STACK}")
message("${NAME} node: flash ${flash} B of ${FLASH_MAX}, RAM ${ram} B of ${RAM_MAX} (data ${CMAKE_MATCH_2} + bss ${CMAKE_MATCH_3} + stack ${STACK})")
if(flash GREATER FLASH_MAX OR ram GREATER RAM_MAX)
  message(FATAL_ERROR "the ${NAME} node is over its budget")
endif()
