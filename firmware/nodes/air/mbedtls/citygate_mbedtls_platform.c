/* What the node's Mbed TLS configuration asks of the platform (citygate_mbedtls_config.h). */
#include "citygate_mbedtls_config.h"

/* The buffer allocator found its heap damaged: nothing sensible is left to do. */
void citygate_mbedtls_exit(int status) {
  (void)status;
  __builtin_trap();
}
