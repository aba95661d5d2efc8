/* The DPDK headers the bindings cover, and the shim over DPDK's `static inline` functions.
 * Each dp_* function is a plain call to the inline function of the same name; nothing else, except the
 * dp_gcm_* helpers, which fill DPDK's union-laden crypto structs for one AES-GCM session or operation. */
#ifndef DP_SHIM_H
#define DP_SHIM_H

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_launch.h>
#include <rte_cycles.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_ethdev.h>
#include <rte_ring.h>
#include <rte_eth_ring.h>
#include <rte_bus_vdev.h>
#include <rte_prefetch.h>
#include <rte_pause.h>
#include <rte_crypto.h>
#include <rte_cryptodev.h>

/* ethdev fast path */
uint16_t dp_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
uint16_t dp_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);

/* mbufs */
struct rte_mbuf *dp_pktmbuf_alloc(struct rte_mempool *mp);
int dp_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned n);
void dp_pktmbuf_free(struct rte_mbuf *m);
void dp_pktmbuf_reset(struct rte_mbuf *m);
char *dp_pktmbuf_mtod(struct rte_mbuf *m);
char *dp_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
char *dp_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
char *dp_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
int dp_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
uint16_t dp_pktmbuf_headroom(const struct rte_mbuf *m);
uint16_t dp_pktmbuf_tailroom(const struct rte_mbuf *m);
int dp_pktmbuf_is_contiguous(const struct rte_mbuf *m);
uint64_t dp_mbuf_tx_offload(uint64_t l2_len, uint64_t l3_len);

/* rings of pointers */
unsigned dp_ring_enqueue_burst(struct rte_ring *r, void *const *objs, unsigned n);
unsigned dp_ring_dequeue_burst(struct rte_ring *r, void **objs, unsigned n);
unsigned dp_ring_count(const struct rte_ring *r);

/* cryptodev fast path */
uint16_t dp_cryptodev_enqueue_burst(uint8_t dev, uint16_t qp, struct rte_crypto_op **ops, uint16_t n);
uint16_t dp_cryptodev_dequeue_burst(uint8_t dev, uint16_t qp, struct rte_crypto_op **ops, uint16_t n);
unsigned dp_crypto_op_sym_alloc_bulk(struct rte_mempool *mp, struct rte_crypto_op **ops, uint16_t n);
void dp_crypto_op_free(struct rte_crypto_op *op);

/* The private area of each crypto op (DP_CRYPTO_PRIV_SIZE bytes behind the symmetric op): the 12-byte
 * GCM nonce (salt || explicit IV) at offset 0, the AAD (8 or 12 bytes, zero-padded to 16) at
 * DP_CRYPTO_AAD_OFF, and 4 bytes for the application at DP_CRYPTO_USER_OFF. */
#define DP_CRYPTO_AAD_OFF 16
#define DP_CRYPTO_USER_OFF 32
#define DP_CRYPTO_PRIV_SIZE 48
uint8_t *dp_crypto_op_priv(struct rte_crypto_op *op);
uint8_t dp_crypto_op_status(const struct rte_crypto_op *op);

/* AES-GCM: does device `dev` do it with this key and AAD length (16-byte tag, 12-byte IV)? 1 if so. */
int dp_gcm_supported(uint8_t dev, uint16_t key_len, uint16_t aad_len);
/* A session for AES-GCM (encrypt != 0: seal, else open) with the IV in the op's private area. NULL on
 * failure (rte_errno says why). */
void *dp_gcm_session_create(uint8_t dev, struct rte_mempool *pool, int encrypt, const uint8_t *key,
			    uint16_t key_len, uint16_t aad_len);
/* Points `op` at `len` bytes of text at `offset` in single-segment mbuf `m`, in place, digest right behind
 * the text, AAD in the private area; attaches `sess` and marks the op not processed. */
void dp_gcm_op_fill(struct rte_crypto_op *op, void *sess, struct rte_mbuf *m, uint32_t offset, uint32_t len);

/* per-lcore and CPU helpers */
int dp_errno(void);
unsigned dp_lcore_id(void);
uint64_t dp_rdtsc(void);
void dp_pause(void);
void dp_prefetch0(const void *p);

#endif
