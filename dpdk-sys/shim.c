/* Real symbols for DPDK's static-inline fast-path functions; see shim.h. */
#include <rte_config.h>
#include <rte_branch_prediction.h>
#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_prefetch.h>
#include <rte_ring.h>

#include "shim.h"

uint16_t fl_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id,
                             struct rte_mbuf **rx_pkts, uint16_t nb_pkts) {
    return rte_eth_rx_burst(port_id, queue_id, rx_pkts, nb_pkts);
}

uint16_t fl_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id,
                             struct rte_mbuf **tx_pkts, uint16_t nb_pkts) {
    return rte_eth_tx_burst(port_id, queue_id, tx_pkts, nb_pkts);
}

void fl_rte_pktmbuf_set_port(struct rte_mbuf *m, uint16_t port) { m->port = port; }
uint32_t fl_rte_pktmbuf_rss_hash(const struct rte_mbuf *m) { return m->hash.rss; }
struct rte_mbuf *fl_rte_pktmbuf_alloc(struct rte_mempool *mp) { return rte_pktmbuf_alloc(mp); }

int fl_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs,
                              unsigned int count) {
    return rte_pktmbuf_alloc_bulk(mp, mbufs, count);
}

char *fl_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_append(m, len); }
void fl_rte_pktmbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }

void fl_rte_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned int count) {
    rte_pktmbuf_free_bulk(mbufs, count);
}

unsigned int fl_rte_lcore_id(void) { return rte_lcore_id(); }
uint64_t fl_rte_rdtsc(void) { return rte_rdtsc(); }
uint64_t fl_rte_get_tsc_hz(void) { return rte_get_tsc_hz(); }
int fl_rte_errno(void) { return rte_errno; }

unsigned int fl_rte_ring_enqueue_burst(struct rte_ring *r, void *const *objs,
                                       unsigned int n) {
    return rte_ring_enqueue_burst(r, objs, n, NULL);
}

unsigned int fl_rte_ring_dequeue_burst(struct rte_ring *r, void **objs,
                                       unsigned int n) {
    return rte_ring_dequeue_burst(r, objs, n, NULL);
}

unsigned int fl_rte_ring_count(const struct rte_ring *r) { return rte_ring_count(r); }



void fl_rte_mbuf_offsets(uint64_t out[7]) {
    out[0] = offsetof(struct rte_mbuf, buf_addr);
    out[1] = offsetof(struct rte_mbuf, data_off);
    out[2] = offsetof(struct rte_mbuf, port);
    out[3] = offsetof(struct rte_mbuf, ol_flags);
    out[4] = offsetof(struct rte_mbuf, pkt_len);
    out[5] = offsetof(struct rte_mbuf, data_len);
    out[6] = sizeof(struct rte_mbuf);
}
