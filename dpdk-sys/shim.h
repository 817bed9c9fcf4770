/*
 * DPDK's fast path is made of `static inline` functions that have no symbol
 * in the shared libraries, so Rust cannot call them directly. Each one we use
 * gets a real function here, marked with the `fl_` prefix. Plain mbuf field
 * reads (data pointer, lengths, port, ol_flags, dynamic fields) are done in
 * Rust instead (dpdk-sys/src/lib.rs), so that they inline.
 */
#ifndef FL_DPDK_SHIM_H
#define FL_DPDK_SHIM_H

#include <stdint.h>
#include <rte_mbuf.h>

uint16_t fl_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id,
                             struct rte_mbuf **rx_pkts, uint16_t nb_pkts);
uint16_t fl_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id,
                             struct rte_mbuf **tx_pkts, uint16_t nb_pkts);
void fl_rte_pktmbuf_set_port(struct rte_mbuf *m, uint16_t port);
uint32_t fl_rte_pktmbuf_rss_hash(const struct rte_mbuf *m);
struct rte_mbuf *fl_rte_pktmbuf_alloc(struct rte_mempool *mp);
int fl_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs,
                              unsigned int count);
char *fl_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
void fl_rte_pktmbuf_free(struct rte_mbuf *m);
void fl_rte_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned int count);
unsigned int fl_rte_lcore_id(void);
uint64_t fl_rte_rdtsc(void);
uint64_t fl_rte_get_tsc_hz(void);
int fl_rte_errno(void);
unsigned int fl_rte_ring_enqueue_burst(struct rte_ring *r, void *const *objs,
                                       unsigned int n);
unsigned int fl_rte_ring_dequeue_burst(struct rte_ring *r, void **objs,
                                       unsigned int n);
unsigned int fl_rte_ring_count(const struct rte_ring *r);
/* Offsets of buf_addr, data_off, port, ol_flags, pkt_len, data_len and the size
   of struct rte_mbuf, for the test of the Rust field reads. */
void fl_rte_mbuf_offsets(uint64_t out[7]);

#endif
