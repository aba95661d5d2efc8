/* The DPDK headers the bindings cover, and the shim over DPDK's `static inline` functions.
 * Each dp_* function is a plain call to the inline function of the same name; nothing else. */
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

/* rings of pointers */
unsigned dp_ring_enqueue_burst(struct rte_ring *r, void *const *objs, unsigned n);
unsigned dp_ring_dequeue_burst(struct rte_ring *r, void **objs, unsigned n);
unsigned dp_ring_count(const struct rte_ring *r);

/* per-lcore and CPU helpers */
int dp_errno(void);
unsigned dp_lcore_id(void);
uint64_t dp_rdtsc(void);
void dp_pause(void);
void dp_prefetch0(const void *p);

#endif
