/*
 * The reference host of the flow-log plugin ABI (include/flowlog.h): a
 * small DPDK vSwitch in plain C that dlopens libflowlog.so and calls it for
 * every RX burst, as a third-party vSwitch would.
 *
 *   host [--workers N] [--flows N] [--conns N] PLUGIN.so CONFIG.json OUT_DIR
 *        [EAL arguments...]
 *
 * Every port gets one RX and one TX queue with RX timestamps where the
 * driver offers them (net_pcap gives each packet its capture time, so the
 * log store equals `flowlogd replay`'s for the same capture). Per burst the
 * packets go to the plugin (attributed by MAC, timed by their RX
 * timestamp); what it rejects is freed, the rest leaves on the uplink,
 * port 0. The host stops once every port has been idle for 0.5 s (or on
 * SIGINT/SIGTERM), destroys the plugin (which flushes the open windows),
 * and prints one JSON line: its counts and the plugin's stats.
 *
 * Exit status: 0 done, 1 a DPDK or plugin failure, 2 bad usage or an ABI
 * version mismatch.
 *
 * Build (the tests do): cc -O2 host.c -I include $(pkg-config --cflags
 * libdpdk) $(pkg-config --libs libdpdk) -ldl -o host
 */
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>

#include "flowlog.h"

/* The ABI version this host asks for; the tests build it once with another
 * value to see a mismatch refused. */
#ifndef HOST_ABI_VERSION
#define HOST_ABI_VERSION FLOWLOG_ABI_VERSION
#endif

#define BURST 32
#define IDLE_NS 500000000ull
#define TICK_NS 100000000ull
#define UPLINK 0

/* The plugin's entry points, typed from the header's declarations. */
static struct {
    __typeof__(flowlog_abi_version) *abi_version;
    __typeof__(flowlog_create) *create;
    __typeof__(flowlog_process_burst) *process_burst;
    __typeof__(flowlog_tick) *tick;
    __typeof__(flowlog_control) *control;
    __typeof__(flowlog_destroy) *destroy;
} fl;

static volatile sig_atomic_t stop;

static void on_signal(int sig) {
    (void)sig;
    stop = 1;
}

static uint64_t mono_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static uint64_t wall_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static void usage(void) {
    fprintf(stderr, "usage: host [--workers N] [--flows N] [--conns N] PLUGIN.so CONFIG.json "
                    "OUT_DIR [EAL arguments...]\n");
    exit(2);
}

static void *sym(void *lib, const char *name, const char *path) {
    void *p = dlsym(lib, name);
    if (p == NULL) {
        fprintf(stderr, "host: %s: no symbol %s: %s\n", path, name, dlerror());
        exit(1);
    }
    return p;
}

static void load_plugin(const char *path) {
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        fprintf(stderr, "host: dlopen %s: %s\n", path, dlerror());
        exit(1);
    }
    *(void **)&fl.abi_version = sym(lib, "flowlog_abi_version", path);
    *(void **)&fl.create = sym(lib, "flowlog_create", path);
    *(void **)&fl.process_burst = sym(lib, "flowlog_process_burst", path);
    *(void **)&fl.tick = sym(lib, "flowlog_tick", path);
    *(void **)&fl.control = sym(lib, "flowlog_control", path);
    *(void **)&fl.destroy = sym(lib, "flowlog_destroy", path);
    uint32_t v = fl.abi_version();
    if (v != HOST_ABI_VERSION) {
        fprintf(stderr,
                "host: %s implements flowlog ABI version %" PRIu32 ", this host was built for "
                "version %u; rebuild the host against the plugin's flowlog.h\n",
                path, v, (unsigned)HOST_ABI_VERSION);
        exit(2);
    }
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "host: %s: %s\n", path, strerror(errno));
        exit(2);
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (buf == NULL) {
            fprintf(stderr, "host: out of memory reading %s\n", path);
            exit(1);
        }
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        cap *= 2;
        buf = realloc(buf, cap);
    }
    if (ferror(f)) {
        fprintf(stderr, "host: reading %s failed\n", path);
        exit(2);
    }
    fclose(f);
    *len = n;
    return buf;
}

static uint32_t number(const char *opt, const char *v) {
    char *end;
    unsigned long n = strtoul(v, &end, 10);
    if (*v == '\0' || *end != '\0' || n > UINT32_MAX) {
        fprintf(stderr, "host: %s %s: not a number\n", opt, v);
        exit(2);
    }
    return (uint32_t)n;
}

static void start_port(uint16_t port, struct rte_mempool *pool) {
    struct rte_eth_conf conf;
    struct rte_eth_dev_info info;
    memset(&conf, 0, sizeof conf);
    if (rte_eth_dev_info_get(port, &info) == 0 &&
        (info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_TIMESTAMP))
        conf.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_TIMESTAMP;
    int rc = rte_eth_dev_configure(port, 1, 1, &conf);
    int socket = rte_eth_dev_socket_id(port);
    if (socket < 0)
        socket = SOCKET_ID_ANY;
    if (rc == 0)
        rc = rte_eth_rx_queue_setup(port, 0, 1024, (unsigned)socket, NULL, pool);
    if (rc == 0)
        rc = rte_eth_tx_queue_setup(port, 0, 1024, (unsigned)socket, NULL);
    if (rc == 0)
        rc = rte_eth_dev_start(port);
    if (rc != 0) {
        fprintf(stderr, "host: port %u: %s\n", port, rte_strerror(-rc));
        exit(1);
    }
    rte_eth_promiscuous_enable(port);
}

int main(int argc, char **argv) {
    flowlog_options opts;
    memset(&opts, 0, sizeof opts);
    int a = 1;
    for (; a < argc && strncmp(argv[a], "--", 2) == 0; a += 2) {
        if (a + 1 >= argc)
            usage();
        if (strcmp(argv[a], "--workers") == 0)
            opts.workers = number(argv[a], argv[a + 1]);
        else if (strcmp(argv[a], "--flows") == 0)
            opts.flows_per_core = number(argv[a], argv[a + 1]);
        else if (strcmp(argv[a], "--conns") == 0)
            opts.conns_per_core = number(argv[a], argv[a + 1]);
        else
            usage();
    }
    if (argc - a < 3)
        usage();
    const char *plugin_path = argv[a], *config_path = argv[a + 1];
    opts.log_store_root = argv[a + 2];

    /* The plugin first: a mismatch is refused before DPDK starts. */
    load_plugin(plugin_path);

    /* EAL takes the rest, with our name in front. */
    int eal_argc = argc - (a + 2);
    char **eal_argv = argv + a + 2;
    eal_argv[0] = argv[0];
    if (rte_eal_init(eal_argc, eal_argv) < 0) {
        fprintf(stderr, "host: rte_eal_init: %s\n", rte_strerror(rte_errno));
        return 1;
    }
    uint16_t nports = rte_eth_dev_count_avail();
    if (nports == 0) {
        fprintf(stderr, "host: EAL found no port; give --vdev=net_pcap0,rx_pcap=IN,tx_pcap=OUT\n");
        return 2;
    }
    struct rte_mempool *pool = rte_pktmbuf_pool_create(
        "host_pool", 16383, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, (int)rte_socket_id());
    if (pool == NULL) {
        fprintf(stderr, "host: rte_pktmbuf_pool_create: %s\n", rte_strerror(rte_errno));
        return 1;
    }
    for (uint16_t p = 0; p < nports; p++)
        start_port(p, pool);
    int ts_off = -1;
    uint64_t ts_flag = 0;
    if (rte_mbuf_dyn_rx_timestamp_register(&ts_off, &ts_flag) < 0)
        ts_off = -1;

    size_t config_len;
    char *config = read_file(config_path, &config_len);
    flowlog_plugin *plugin = NULL;
    char err[1024];
    flowlog_status st = fl.create(HOST_ABI_VERSION, config, config_len, &opts, &plugin, err,
                                  sizeof err);
    free(config);
    if (st != FLOWLOG_OK) {
        fprintf(stderr, "host: flowlog_create failed (status %u): %s\n", (unsigned)st, err);
        return st == FLOWLOG_ERR_VERSION || st == FLOWLOG_ERR_CONFIG ? 2 : 1;
    }

    uint32_t workers = opts.workers != 0 ? opts.workers : 1;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    struct rte_mbuf *pkts[BURST], *out[BURST];
    flowlog_pkt_info info[BURST];
    uint8_t verdicts[BURST];
    uint64_t received = 0, forwarded = 0, dropped = 0, tx_failed = 0, failed_calls = 0;
    uint64_t now_ns = 0, last_rx = mono_ns(), last_tick = last_rx;
    int packet_clock = 0;
    while (!stop) {
        unsigned got = 0;
        for (uint16_t port = 0; port < nports; port++) {
            uint16_t n = rte_eth_rx_burst(port, 0, pkts, BURST);
            if (n == 0)
                continue;
            got += n;
            received += n;
            uint64_t wall = wall_ns();
            for (uint16_t i = 0; i < n; i++) {
                uint64_t t = wall;
                if (ts_off >= 0 && (pkts[i]->ol_flags & ts_flag)) {
                    t = *RTE_MBUF_DYNFIELD(pkts[i], ts_off, rte_mbuf_timestamp_t *) * 1000;
                    packet_clock = 1;
                }
                if (t > now_ns)
                    now_ns = t;
                info[i].eni = FLOWLOG_ENI_BY_MAC;
                info[i].direction = 0;
                info[i].host_verdict = FLOWLOG_VERDICT_NONE;
                info[i].time_ns = t;
            }
            st = fl.process_burst(plugin, 0, pkts, info, n, now_ns, verdicts);
            if (st != FLOWLOG_OK) {
                /* Forward as if no policy ran, and count the failure. */
                failed_calls++;
                memset(verdicts, FLOWLOG_VERDICT_NONE, n);
            }
            uint16_t k = 0;
            for (uint16_t i = 0; i < n; i++) {
                if (verdicts[i] == FLOWLOG_VERDICT_REJECT) {
                    rte_pktmbuf_free(pkts[i]);
                    dropped++;
                } else {
                    out[k++] = pkts[i];
                }
            }
            uint16_t sent = rte_eth_tx_burst(UPLINK, 0, out, k);
            forwarded += sent;
            for (uint16_t i = sent; i < k; i++) {
                rte_pktmbuf_free(out[i]);
                tx_failed++;
            }
        }
        if (got > 0) {
            last_rx = mono_ns();
        } else {
            /* Idle: the worker's windows still close on time. Without RX
             * timestamps the clock is the wall clock. */
            uint64_t mono = mono_ns();
            if (mono - last_tick >= TICK_NS) {
                last_tick = mono;
                if (!packet_clock && now_ns != 0)
                    now_ns = wall_ns();
                /* Every worker: this host feeds only worker 0, but one
                 * that never ticks would hold every window open. */
                for (uint32_t w = 0; now_ns != 0 && w < workers; w++)
                    if (fl.tick(plugin, w, now_ns) != FLOWLOG_OK)
                        failed_calls++;
            }
            if (mono - last_rx >= IDLE_NS)
                break;
        }
    }

    /* The plugin's counters, through the control call, before it goes. */
    static const char req[] = "{\"id\":1,\"version\":1,\"cmd\":\"stats\"}";
    static char reply[1 << 16];
    size_t reply_len = 0;
    st = fl.control(plugin, req, sizeof req - 1, reply, sizeof reply, &reply_len);
    if (st != FLOWLOG_OK) {
        fprintf(stderr, "host: flowlog_control failed (status %u)\n", (unsigned)st);
        strcpy(reply, "null");
    }
    st = fl.destroy(plugin);
    if (st != FLOWLOG_OK) {
        fprintf(stderr, "host: flowlog_destroy failed (status %u)\n", (unsigned)st);
        failed_calls++;
    }
    for (uint16_t p = 0; p < nports; p++) {
        rte_eth_dev_stop(p);
        rte_eth_dev_close(p);
    }
    rte_mempool_free(pool);
    rte_eal_cleanup();
    printf("{\"received\":%" PRIu64 ",\"forwarded\":%" PRIu64 ",\"dropped\":%" PRIu64
           ",\"tx_failed\":%" PRIu64 ",\"failed_calls\":%" PRIu64
           ",\"packet_clock\":%s,\"plugin\":%s}\n",
           received, forwarded, dropped, tx_failed, failed_calls,
           packet_clock ? "true" : "false", reply);
    return failed_calls == 0 ? 0 : 1;
}
