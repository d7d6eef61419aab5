/* The air node's Mbed TLS configuration (MBEDTLS_CONFIG_FILE): AES-128 and AES-CMAC for LoRaWAN
 * 1.0.x (FRMPayload keystream and MIC), nothing else. The same file for the host and the
 * Cortex-M. The library is Debian's mbedtls 2.28.3 source, fetched at configure time
 * (toolchains/fetch-debian-source.sh): see CMakeLists.txt beside this file.
 *
 * No heap: Mbed TLS's cipher layer allocates its AES context and the CMAC state with
 * mbedtls_calloc. MBEDTLS_PLATFORM_NO_STD_FUNCTIONS leaves calloc/free unlinked (an allocation
 * before set-up returns NULL), and MBEDTLS_MEMORY_BUFFER_ALLOC_C serves the node's two
 * allocations, made once at start-up, from a static buffer (lorawan.cpp). Nothing is allocated
 * per frame (mbedtls_cipher_cmac_reset reuses the state). */
#ifndef CITYGATE_MBEDTLS_CONFIG_H
#define CITYGATE_MBEDTLS_CONFIG_H

/* Ciphers and modes. */
#define MBEDTLS_AES_C
#define MBEDTLS_CIPHER_C
#define MBEDTLS_CMAC_C

/* AES tables: the S-boxes and one round table of each direction (FEWER_TABLES: the other three
 * are rotations computed on the fly), generated into RAM by the first key set-up rather than
 * stored in flash (no MBEDTLS_AES_ROM_TABLES): on the Cortex-M that saves 2.2 KB of the node's
 * flash (air-node.elf 21.8 KB instead of 24.0 KB) for 2.6 KB of RAM (6.1 KB instead of 3.5 KB,
 * both well inside the 20 KB budget with the 4 KB stack). */
#define MBEDTLS_AES_FEWER_TABLES

/* Memory: a static buffer, no libc calloc/free, no printf/exit/time. */
#define MBEDTLS_PLATFORM_C
#define MBEDTLS_PLATFORM_MEMORY
#define MBEDTLS_PLATFORM_NO_STD_FUNCTIONS
#define MBEDTLS_MEMORY_BUFFER_ALLOC_C
/* The buffer allocator stops the program when it finds its heap damaged: not libc's exit() (the
 * node has none) but a trap (citygate_mbedtls_platform.c). */
#ifdef __cplusplus
extern "C" {
#endif
void citygate_mbedtls_exit(int status);
#ifdef __cplusplus
}
#endif
#define MBEDTLS_PLATFORM_EXIT_MACRO citygate_mbedtls_exit

#include "mbedtls/check_config.h"

#endif /* CITYGATE_MBEDTLS_CONFIG_H */
