/* Out-of-line copies of DPDK's `static inline` fast-path functions, so that Rust can call them.
 * Compiled with exactly the flags of `pkg-config --cflags libdpdk` (see build.rs). */
#include "shim.h"

uint16_t dp_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
	return rte_eth_rx_burst(port, queue, pkts, n);
}

uint16_t dp_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
	return rte_eth_tx_burst(port, queue, pkts, n);
}

struct rte_mbuf *dp_pktmbuf_alloc(struct rte_mempool *mp)
{
	return rte_pktmbuf_alloc(mp);
}

int dp_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned n)
{
	return rte_pktmbuf_alloc_bulk(mp, mbufs, n);
}

void dp_pktmbuf_free(struct rte_mbuf *m)
{
	rte_pktmbuf_free(m);
}

void dp_pktmbuf_reset(struct rte_mbuf *m)
{
	rte_pktmbuf_reset(m);
}

char *dp_pktmbuf_mtod(struct rte_mbuf *m)
{
	return rte_pktmbuf_mtod(m, char *);
}

char *dp_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_prepend(m, len);
}

char *dp_pktmbuf_adj(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_adj(m, len);
}

char *dp_pktmbuf_append(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_append(m, len);
}

int dp_pktmbuf_trim(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_trim(m, len);
}

uint16_t dp_pktmbuf_headroom(const struct rte_mbuf *m)
{
	return rte_pktmbuf_headroom(m);
}

uint16_t dp_pktmbuf_tailroom(const struct rte_mbuf *m)
{
	return rte_pktmbuf_tailroom(m);
}

int dp_pktmbuf_is_contiguous(const struct rte_mbuf *m)
{
	return rte_pktmbuf_is_contiguous(m);
}

uint64_t dp_mbuf_tx_offload(uint64_t l2_len, uint64_t l3_len)
{
	return rte_mbuf_tx_offload(l2_len, l3_len, 0, 0, 0, 0, 0);
}

unsigned dp_ring_enqueue_burst(struct rte_ring *r, void *const *objs, unsigned n)
{
	return rte_ring_enqueue_burst(r, objs, n, NULL);
}

unsigned dp_ring_dequeue_burst(struct rte_ring *r, void **objs, unsigned n)
{
	return rte_ring_dequeue_burst(r, objs, n, NULL);
}

unsigned dp_ring_count(const struct rte_ring *r)
{
	return rte_ring_count(r);
}

uint16_t dp_cryptodev_enqueue_burst(uint8_t dev, uint16_t qp, struct rte_crypto_op **ops, uint16_t n)
{
	return rte_cryptodev_enqueue_burst(dev, qp, ops, n);
}

uint16_t dp_cryptodev_dequeue_burst(uint8_t dev, uint16_t qp, struct rte_crypto_op **ops, uint16_t n)
{
	return rte_cryptodev_dequeue_burst(dev, qp, ops, n);
}

unsigned dp_crypto_op_sym_alloc_bulk(struct rte_mempool *mp, struct rte_crypto_op **ops, uint16_t n)
{
	return rte_crypto_op_bulk_alloc(mp, RTE_CRYPTO_OP_TYPE_SYMMETRIC, ops, n);
}

void dp_crypto_op_free(struct rte_crypto_op *op)
{
	rte_crypto_op_free(op);
}

/* The private area starts right behind the symmetric op, where DPDK's examples put the IV. */
#define DP_CRYPTO_IV_OFFSET (sizeof(struct rte_crypto_op) + sizeof(struct rte_crypto_sym_op))

uint8_t *dp_crypto_op_priv(struct rte_crypto_op *op)
{
	return rte_crypto_op_ctod_offset(op, uint8_t *, DP_CRYPTO_IV_OFFSET);
}

uint8_t dp_crypto_op_status(const struct rte_crypto_op *op)
{
	return op->status;
}

int dp_gcm_supported(uint8_t dev, uint16_t key_len, uint16_t aad_len)
{
	struct rte_cryptodev_sym_capability_idx idx = {
		.type = RTE_CRYPTO_SYM_XFORM_AEAD,
		.algo.aead = RTE_CRYPTO_AEAD_AES_GCM,
	};
	const struct rte_cryptodev_symmetric_capability *cap = rte_cryptodev_sym_capability_get(dev, &idx);
	return cap != NULL && rte_cryptodev_sym_capability_check_aead(cap, key_len, 16, aad_len, 12) == 0;
}

void *dp_gcm_session_create(uint8_t dev, struct rte_mempool *pool, int encrypt, const uint8_t *key,
			    uint16_t key_len, uint16_t aad_len)
{
	struct rte_crypto_sym_xform xform = {
		.next = NULL,
		.type = RTE_CRYPTO_SYM_XFORM_AEAD,
		.aead = {
			.op = encrypt ? RTE_CRYPTO_AEAD_OP_ENCRYPT : RTE_CRYPTO_AEAD_OP_DECRYPT,
			.algo = RTE_CRYPTO_AEAD_AES_GCM,
			.key = { .data = key, .length = key_len },
			.iv = { .offset = DP_CRYPTO_IV_OFFSET, .length = 12 },
			.digest_length = 16,
			.aad_length = aad_len,
		},
	};
	return rte_cryptodev_sym_session_create(dev, &xform, pool);
}

void dp_gcm_op_fill(struct rte_crypto_op *op, void *sess, struct rte_mbuf *m, uint32_t offset, uint32_t len)
{
	struct rte_crypto_sym_op *sym = op->sym;

	op->status = RTE_CRYPTO_OP_STATUS_NOT_PROCESSED;
	rte_crypto_op_attach_sym_session(op, sess);
	sym->m_src = m;
	sym->m_dst = NULL;
	sym->aead.data.offset = offset;
	sym->aead.data.length = len;
	sym->aead.digest.data = rte_pktmbuf_mtod_offset(m, uint8_t *, offset + len);
	sym->aead.digest.phys_addr = rte_pktmbuf_iova_offset(m, offset + len);
	sym->aead.aad.data = rte_crypto_op_ctod_offset(op, uint8_t *, DP_CRYPTO_IV_OFFSET + DP_CRYPTO_AAD_OFF);
	sym->aead.aad.phys_addr = rte_crypto_op_ctophys_offset(op, DP_CRYPTO_IV_OFFSET + DP_CRYPTO_AAD_OFF);
}

int dp_errno(void)
{
	return rte_errno;
}

unsigned dp_lcore_id(void)
{
	return rte_lcore_id();
}

uint64_t dp_rdtsc(void)
{
	return rte_rdtsc();
}

void dp_pause(void)
{
	rte_pause();
}

void dp_prefetch0(const void *p)
{
	rte_prefetch0(p);
}
