/*
 * Out-of-line copies of DPDK's static-inline functions used by the Rust bindings: see shim.h.
 * Nothing here adds behaviour; each function forwards to the DPDK function it is named after.
 */
#include "shim.h"

int esprit_rte_errno(void) { return rte_errno; }
unsigned int esprit_rte_lcore_id(void) { return rte_lcore_id(); }

uint16_t esprit_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **rx_pkts,
                                 uint16_t nb_pkts)
{
        return rte_eth_rx_burst(port_id, queue_id, rx_pkts, nb_pkts);
}

uint16_t esprit_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **tx_pkts,
                                 uint16_t nb_pkts)
{
        return rte_eth_tx_burst(port_id, queue_id, tx_pkts, nb_pkts);
}

struct rte_mbuf *esprit_rte_pktmbuf_alloc(struct rte_mempool *mp) { return rte_pktmbuf_alloc(mp); }

int esprit_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs,
                                  unsigned int count)
{
        return rte_pktmbuf_alloc_bulk(mp, mbufs, count);
}

void esprit_rte_pktmbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }
void esprit_rte_pktmbuf_reset(struct rte_mbuf *m) { rte_pktmbuf_reset(m); }

char *esprit_rte_pktmbuf_mtod(struct rte_mbuf *m) { return rte_pktmbuf_mtod(m, char *); }
uint16_t esprit_rte_pktmbuf_headroom(const struct rte_mbuf *m) { return rte_pktmbuf_headroom(m); }
uint16_t esprit_rte_pktmbuf_tailroom(const struct rte_mbuf *m) { return rte_pktmbuf_tailroom(m); }
uint16_t esprit_rte_pktmbuf_data_len(const struct rte_mbuf *m) { return rte_pktmbuf_data_len(m); }
uint32_t esprit_rte_pktmbuf_pkt_len(const struct rte_mbuf *m) { return rte_pktmbuf_pkt_len(m); }
uint16_t esprit_rte_pktmbuf_nb_segs(const struct rte_mbuf *m) { return m->nb_segs; }

char *esprit_rte_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len)
{
        return rte_pktmbuf_prepend(m, len);
}

char *esprit_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len)
{
        return rte_pktmbuf_append(m, len);
}

char *esprit_rte_pktmbuf_adj(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_adj(m, len); }
int esprit_rte_pktmbuf_trim(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_trim(m, len); }

int esprit_rte_pktmbuf_chain(struct rte_mbuf *head, struct rte_mbuf *tail)
{
        return rte_pktmbuf_chain(head, tail);
}

uint64_t esprit_rte_mbuf_ol_flags(const struct rte_mbuf *m) { return m->ol_flags; }
uint32_t esprit_rte_mbuf_rss_hash(const struct rte_mbuf *m) { return m->hash.rss; }
struct rte_mempool *esprit_rte_mbuf_pool(const struct rte_mbuf *m) { return m->pool; }

uint16_t esprit_rte_pktmbuf_data_room_size(struct rte_mempool *mp)
{
        return rte_pktmbuf_data_room_size(mp);
}

uint16_t esprit_rte_pktmbuf_priv_size(struct rte_mempool *mp) { return rte_pktmbuf_priv_size(mp); }
uint32_t esprit_rte_mempool_size(const struct rte_mempool *mp) { return mp->size; }

unsigned int esprit_rte_mempool_common_count(const struct rte_mempool *mp)
{
        return rte_mempool_get_ops(mp->ops_index)->get_count(mp);
}

void esprit_rte_mempool_flush_local_cache(struct rte_mempool *mp)
{
        struct rte_mempool_cache *cache = rte_mempool_default_cache(mp, rte_lcore_id());

        if (cache != NULL)
                rte_mempool_cache_flush(cache, mp);
}
