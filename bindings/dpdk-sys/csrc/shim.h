/*
 * Declarations of the C wrappers in shim.c, and the header bindgen reads.
 *
 * DPDK implements its fast path (bursts, mbuf alloc/free and data-offset arithmetic, rte_errno,
 * rte_lcore_id) as static-inline functions or per-lcore TLS variables, which have no symbol to
 * link against. Each esprit_rte_<name> below is a one-line out-of-line copy of rte_<name>,
 * with the same arguments and result.
 */
#ifndef ESPRIT_DPDK_SHIM_H
#define ESPRIT_DPDK_SHIM_H

#include <stdint.h>

#include <rte_common.h>
#include <rte_dev.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>

/* rte_errno: a per-lcore (thread-local) variable. */
int esprit_rte_errno(void);
/* rte_lcore_id: the calling thread's lcore id, or LCORE_ID_ANY for a non-EAL thread. */
unsigned int esprit_rte_lcore_id(void);

/* Bursts. */
uint16_t esprit_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **rx_pkts,
                                 uint16_t nb_pkts);
uint16_t esprit_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **tx_pkts,
                                 uint16_t nb_pkts);

/* Mbuf allocation. */
struct rte_mbuf *esprit_rte_pktmbuf_alloc(struct rte_mempool *mp);
int esprit_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs,
                                  unsigned int count);
void esprit_rte_pktmbuf_free(struct rte_mbuf *m);
void esprit_rte_pktmbuf_reset(struct rte_mbuf *m);

/* Mbuf data region. */
char *esprit_rte_pktmbuf_mtod(struct rte_mbuf *m);
uint16_t esprit_rte_pktmbuf_headroom(const struct rte_mbuf *m);
uint16_t esprit_rte_pktmbuf_tailroom(const struct rte_mbuf *m);
uint16_t esprit_rte_pktmbuf_data_len(const struct rte_mbuf *m);
uint32_t esprit_rte_pktmbuf_pkt_len(const struct rte_mbuf *m);
uint16_t esprit_rte_pktmbuf_nb_segs(const struct rte_mbuf *m);
char *esprit_rte_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
char *esprit_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
char *esprit_rte_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
int esprit_rte_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
int esprit_rte_pktmbuf_chain(struct rte_mbuf *head, struct rte_mbuf *tail);

/* Mbuf metadata. */
uint64_t esprit_rte_mbuf_ol_flags(const struct rte_mbuf *m);
/* mbuf->hash.rss; meaningful only when ol_flags has RTE_MBUF_F_RX_RSS_HASH. */
uint32_t esprit_rte_mbuf_rss_hash(const struct rte_mbuf *m);
struct rte_mempool *esprit_rte_mbuf_pool(const struct rte_mbuf *m);

/* Mempool. */
uint16_t esprit_rte_pktmbuf_data_room_size(struct rte_mempool *mp);
uint16_t esprit_rte_pktmbuf_priv_size(struct rte_mempool *mp);
/* mp->size: the number of objects the pool was created with. */
uint32_t esprit_rte_mempool_size(const struct rte_mempool *mp);
/*
 * The number of objects in the pool's common store (its ring), not counting the per-lcore
 * caches: rte_mempool_ops_get_count, which DPDK 22.11 does not export.
 */
unsigned int esprit_rte_mempool_common_count(const struct rte_mempool *mp);
/* Flushes the calling lcore's cache of `mp` into the common store; no-op off an EAL lcore. */
void esprit_rte_mempool_flush_local_cache(struct rte_mempool *mp);

#endif /* ESPRIT_DPDK_SHIM_H */
