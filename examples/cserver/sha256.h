/* SHA-256 (FIPS 180-4), incremental. */
#ifndef CSERVER_SHA256_H
#define CSERVER_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_SIZE 32

struct sha256 {
	uint32_t h[8];
	uint64_t len;           /* bytes hashed so far */
	uint8_t block[64];      /* a partial block */
	size_t fill;            /* bytes in block */
};

void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *data, size_t n);
void sha256_final(struct sha256 *s, uint8_t out[SHA256_SIZE]);

/* sha256_zeros hashes n zero bytes, feeding them in blocks from a static
 * zero buffer (the /work endpoint). */
void sha256_zeros(size_t n, uint8_t out[SHA256_SIZE]);

/* sha256_hex writes the 64 lower-case hex digits of a digest and a NUL. */
void sha256_hex(const uint8_t sum[SHA256_SIZE], char out[2 * SHA256_SIZE + 1]);

#endif
