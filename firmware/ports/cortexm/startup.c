/* Start-up of the Cortex-M port (mps2-an385.ld): the vector table, and the reset handler that
 * copies .data from flash, zeroes .bss, runs the static constructors (FW_TEST registrars rely on
 * them) and calls main(). What main() returns ends the run through semihosting (the test runners'
 * failure count becomes qemu's exit status). In C: C++ may not call main(). */
#include <stdint.h>
#include <string.h>

extern uint32_t __stack_top;
extern uint32_t __data_start, __data_end, __data_load, __bss_start, __bss_end;
typedef void (*Handler)(void);
extern Handler __preinit_array_start[], __preinit_array_end[], __init_array_start[], __init_array_end[];

int main(void);
void citygate_cortexm_exit(int status) __attribute__((noreturn));
void citygate_cortexm_fault(void) __attribute__((noreturn));

void Reset_Handler(void) __attribute__((noreturn));
void Reset_Handler(void) {
  memcpy(&__data_start, &__data_load, (size_t)((char*)&__data_end - (char*)&__data_start));
  memset(&__bss_start, 0, (size_t)((char*)&__bss_end - (char*)&__bss_start));
  for (Handler* f = __preinit_array_start; f != __preinit_array_end; ++f) (*f)();
  for (Handler* f = __init_array_start; f != __init_array_end; ++f) (*f)();
  citygate_cortexm_exit(main());
}

/* Every exception the port does not handle: a report and a non-zero exit (semihosting.cpp). */
void Default_Handler(void) { citygate_cortexm_fault(); }

#define WEAK_HANDLER(name) void name(void) __attribute__((weak, alias("Default_Handler")))
WEAK_HANDLER(NMI_Handler);
WEAK_HANDLER(HardFault_Handler);
WEAK_HANDLER(MemManage_Handler);
WEAK_HANDLER(BusFault_Handler);
WEAK_HANDLER(UsageFault_Handler);
WEAK_HANDLER(SVC_Handler);
WEAK_HANDLER(DebugMon_Handler);
WEAK_HANDLER(PendSV_Handler);
WEAK_HANDLER(SysTick_Handler);
/* mps2-an385's CMSDK UARTs: RX and TX interrupts (0/1, 2/3, 4/5, 18/19, 20/21). */
WEAK_HANDLER(UART0RX_Handler);
WEAK_HANDLER(UART0TX_Handler);
WEAK_HANDLER(UART1RX_Handler);
WEAK_HANDLER(UART1TX_Handler);
WEAK_HANDLER(UART2RX_Handler);
WEAK_HANDLER(UART2TX_Handler);
WEAK_HANDLER(UART3RX_Handler);
WEAK_HANDLER(UART3TX_Handler);
WEAK_HANDLER(UART4RX_Handler);
WEAK_HANDLER(UART4TX_Handler);

/* 16 system exceptions, 32 interrupts (AN385). */
__attribute__((section(".isr_vector"), used)) const Handler citygate_vectors[48] = {
    (Handler)&__stack_top, Reset_Handler, NMI_Handler, HardFault_Handler, MemManage_Handler, BusFault_Handler,
    UsageFault_Handler, 0, 0, 0, 0, SVC_Handler, DebugMon_Handler, 0, PendSV_Handler, SysTick_Handler,
    /* IRQ 0.. */
    UART0RX_Handler, UART0TX_Handler, UART1RX_Handler, UART1TX_Handler, UART2RX_Handler, UART2TX_Handler,
    Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    UART3RX_Handler, UART3TX_Handler, UART4RX_Handler, UART4TX_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler};
