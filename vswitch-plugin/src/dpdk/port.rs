//! Ethernet ports: configure with N RX and TX queues, start, burst, stop.

use super::{check, Burst, DpdkError, Mempool, BURST_SIZE};
use std::ffi::{c_char, CStr, CString};

/// `RTE_ETH_RX_OFFLOAD_TIMESTAMP` (`RTE_BIT64(14)`, a macro bindgen cannot
/// evaluate).
const RX_OFFLOAD_TIMESTAMP: u64 = 1 << 14;

/// The RSS hash types [`PortConfig::rss`] asks for (the `RTE_ETH_RSS_*`
/// macros bindgen cannot evaluate): IPv4 (2), fragmented IPv4 (3), IPv4 TCP
/// (4), IPv4 UDP (5), other IPv4 (7), IPv6 (8), fragmented IPv6 (9), IPv6
/// TCP (10), IPv6 UDP (11), other IPv6 (13). Masked with what the port offers.
const RSS_HF: u64 = (1 << 2)
    | (1 << 3)
    | (1 << 4)
    | (1 << 5)
    | (1 << 7)
    | (1 << 8)
    | (1 << 9)
    | (1 << 10)
    | (1 << 11)
    | (1 << 13);

/// A symmetric Toeplitz key: `0x6d, 0x5a` repeated. Its 16-bit period makes
/// the hash of (src, dst, sport, dport) equal that of (dst, src, dport,
/// sport), for IPv4 and IPv6 alike, so both directions of a connection land
/// on one RX queue.
const SYMMETRIC_RSS_KEY_LEN: usize = 52;

fn symmetric_rss_key() -> [u8; SYMMETRIC_RSS_KEY_LEN] {
    let mut k = [0u8; SYMMETRIC_RSS_KEY_LEN];
    for (i, b) in k.iter_mut().enumerate() {
        *b = if i % 2 == 0 { 0x6d } else { 0x5a };
    }
    k
}

/// What a port's driver can do (from `rte_eth_dev_info_get`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortInfo {
    /// The driver's name (`net_pcap`, `net_ring`, `net_ice`, ...).
    pub driver: String,
    /// Most RX queues the port can be configured with.
    pub max_rx_queues: u16,
    /// Most TX queues the port can be configured with.
    pub max_tx_queues: u16,
    /// RSS hash types the port supports (0: no RSS).
    pub rss_offloads: u64,
    /// RSS key length in bytes (0: the driver does not say; 40 is assumed).
    pub hash_key_size: u8,
}

impl PortInfo {
    /// Whether the port can spread packets over RX queues by RSS.
    pub fn has_rss(&self) -> bool {
        self.rss_offloads & RSS_HF != 0
    }
}

/// A DPDK port id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(pub u16);

/// An RX or TX queue id of a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueId(pub u16);

/// How to set a port up.
#[derive(Clone, Copy, Debug)]
pub struct PortConfig {
    /// RX queues (one per worker that polls the port).
    pub rx_queues: u16,
    /// TX queues (one per worker that sends on the port).
    pub tx_queues: u16,
    /// Descriptors per RX queue.
    pub rx_desc: u16,
    /// Descriptors per TX queue.
    pub tx_desc: u16,
    /// Enable promiscuous mode (a vSwitch port receives for many MACs).
    pub promiscuous: bool,
    /// Ask for RX timestamps where the driver offers them (`net_pcap` gives
    /// each packet its capture time): see [`super::RxTimestamp`].
    pub rx_timestamp: bool,
    /// With more than one RX queue, spread packets over them by RSS with a
    /// symmetric key (both directions of a connection on one queue), where
    /// the port supports RSS (see [`Port::info`]).
    pub rss: bool,
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: 1024,
            tx_desc: 1024,
            promiscuous: true,
            rx_timestamp: false,
            rss: false,
        }
    }
}

/// Port counters as DPDK keeps them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Packets received.
    pub ipackets: u64,
    /// Packets sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Packets the NIC dropped for lack of RX descriptors.
    pub imissed: u64,
    /// Receive errors.
    pub ierrors: u64,
    /// Transmit errors.
    pub oerrors: u64,
}

/// A configured, started port. Stopped (and closed) on drop. The mempool
/// its RX queues fill from must outlive it, which the borrow enforces.
#[derive(Debug)]
pub struct Port<'p> {
    id: PortId,
    rx_queues: u16,
    tx_queues: u16,
    _pool: &'p Mempool,
}

impl<'p> Port<'p> {
    /// Finds a port by its device name (`net_ring0`, `net_pcap1`, a PCI address).
    pub fn id_by_name(name: &str) -> Result<PortId, DpdkError> {
        let c = CString::new(name).map_err(|_| DpdkError::msg("port name", "contains NUL"))?;
        let mut id = 0u16;
        // SAFETY: `c` is a valid C string and `id` a valid out-pointer.
        let rc = unsafe { dpdk_sys::rte_eth_dev_get_port_by_name(c.as_ptr(), &mut id) };
        check(&format!("rte_eth_dev_get_port_by_name({name})"), rc)?;
        Ok(PortId(id))
    }

    /// The device name of a port.
    pub fn name(id: PortId) -> Result<String, DpdkError> {
        let mut buf = [0 as c_char; 64];
        // SAFETY: buf is 64 bytes, RTE_ETH_NAME_MAX_LEN; DPDK NUL-terminates.
        let rc = unsafe { dpdk_sys::rte_eth_dev_get_name_by_port(id.0, buf.as_mut_ptr()) };
        check("rte_eth_dev_get_name_by_port", rc)?;
        // SAFETY: DPDK wrote a NUL-terminated string into buf.
        Ok(unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned())
    }

    /// What the port's driver can do: queue limits and RSS support.
    pub fn info(id: PortId) -> Result<PortInfo, DpdkError> {
        let mut info = dpdk_sys::rte_eth_dev_info::default();
        // SAFETY: `info` is a valid out-pointer for the call.
        let rc = unsafe { dpdk_sys::rte_eth_dev_info_get(id.0, &mut info) };
        check(&format!("rte_eth_dev_info_get(port {})", id.0), rc)?;
        let driver = if info.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: a non-NULL driver_name is the driver's static
            // NUL-terminated name; we copy it at once.
            unsafe { CStr::from_ptr(info.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        Ok(PortInfo {
            driver,
            max_rx_queues: info.max_rx_queues,
            max_tx_queues: info.max_tx_queues,
            rss_offloads: info.flow_type_rss_offloads,
            hash_key_size: info.hash_key_size,
        })
    }

    /// The most (RX, TX) queues the port can be configured with.
    pub fn max_queues(id: PortId) -> Result<(u16, u16), DpdkError> {
        let i = Port::info(id)?;
        Ok((i.max_rx_queues, i.max_tx_queues))
    }

    /// Configures `id` with `cfg`, sets up its queues over `pool`, and starts it.
    pub fn start(id: PortId, cfg: &PortConfig, pool: &'p Mempool) -> Result<Port<'p>, DpdkError> {
        let op = |what: &str| format!("{what}(port {})", id.0);
        // SAFETY: plain value; returns 0 for a valid port.
        if unsafe { dpdk_sys::rte_eth_dev_is_valid_port(id.0) } == 0 {
            return Err(DpdkError::msg(
                op("rte_eth_dev_is_valid_port"),
                "no such port",
            ));
        }
        let mut conf = dpdk_sys::rte_eth_conf::default();
        let mut info = dpdk_sys::rte_eth_dev_info::default();
        // SAFETY: `info` is a valid out-pointer for the call.
        let info_rc = unsafe { dpdk_sys::rte_eth_dev_info_get(id.0, &mut info) };
        if cfg.rx_timestamp && info_rc == 0 && info.rx_offload_capa & RX_OFFLOAD_TIMESTAMP != 0 {
            conf.rxmode.offloads |= RX_OFFLOAD_TIMESTAMP;
        }
        // Lives until after rte_eth_dev_configure, which copies the key.
        let mut key = symmetric_rss_key();
        let hf = info.flow_type_rss_offloads & RSS_HF;
        if cfg.rss && cfg.rx_queues > 1 && info_rc == 0 && hf != 0 {
            let len = match usize::from(info.hash_key_size) {
                0 => 40,
                n => n.min(SYMMETRIC_RSS_KEY_LEN),
            };
            conf.rxmode.mq_mode = dpdk_sys::RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_key = key.as_mut_ptr();
            conf.rx_adv_conf.rss_conf.rss_key_len = len as u8;
            conf.rx_adv_conf.rss_conf.rss_hf = hf;
        }
        // SAFETY: conf is a fully initialised rte_eth_conf (zeroed, then set
        // above), which DPDK reads during the call only; its RSS key pointer,
        // if set, points to `key`, alive for the call.
        let rc =
            unsafe { dpdk_sys::rte_eth_dev_configure(id.0, cfg.rx_queues, cfg.tx_queues, &conf) };
        check(&op("rte_eth_dev_configure"), rc)?;
        // SAFETY: plain value; -1 (any socket) for virtual devices.
        let socket = unsafe { dpdk_sys::rte_eth_dev_socket_id(id.0) };
        let socket = u32::try_from(socket).unwrap_or(dpdk_sys::SOCKET_ID_ANY as u32);
        for q in 0..cfg.rx_queues {
            // SAFETY: the port is configured with rx_queues queues; NULL
            // rx_conf means the driver's defaults; the pool outlives the port
            // (lifetime 'p).
            let rc = unsafe {
                dpdk_sys::rte_eth_rx_queue_setup(
                    id.0,
                    q,
                    cfg.rx_desc,
                    socket,
                    std::ptr::null(),
                    pool.as_ptr(),
                )
            };
            check(&op("rte_eth_rx_queue_setup"), rc)?;
        }
        for q in 0..cfg.tx_queues {
            // SAFETY: as above, NULL tx_conf means defaults.
            let rc = unsafe {
                dpdk_sys::rte_eth_tx_queue_setup(id.0, q, cfg.tx_desc, socket, std::ptr::null())
            };
            check(&op("rte_eth_tx_queue_setup"), rc)?;
        }
        // SAFETY: the port is configured with its queues set up.
        check(&op("rte_eth_dev_start"), unsafe {
            dpdk_sys::rte_eth_dev_start(id.0)
        })?;
        if cfg.promiscuous {
            // SAFETY: the port is started; failure (unsupported) is harmless.
            let _ = unsafe { dpdk_sys::rte_eth_promiscuous_enable(id.0) };
        }
        Ok(Port {
            id,
            rx_queues: cfg.rx_queues,
            tx_queues: cfg.tx_queues,
            _pool: pool,
        })
    }

    /// Whether the port delivers RX timestamps.
    pub fn rx_timestamps(&self) -> bool {
        let mut conf = dpdk_sys::rte_eth_conf::default();
        // SAFETY: `conf` is a valid out-pointer for the call.
        let rc = unsafe { dpdk_sys::rte_eth_dev_conf_get(self.id.0, &mut conf) };
        rc == 0 && conf.rxmode.offloads & RX_OFFLOAD_TIMESTAMP != 0
    }

    /// This port's id.
    pub fn id(&self) -> PortId {
        self.id
    }

    /// The port's MAC address.
    pub fn mac(&self) -> Result<[u8; 6], DpdkError> {
        let mut a = dpdk_sys::rte_ether_addr::default();
        // SAFETY: `a` is a valid out-pointer for the call.
        check("rte_eth_macaddr_get", unsafe {
            dpdk_sys::rte_eth_macaddr_get(self.id.0, &mut a)
        })?;
        Ok(a.addr_bytes)
    }

    /// Receives up to [`BURST_SIZE`] packets from queue `q` into `burst`,
    /// which must be empty (its packets would be overwritten). Returns the count.
    #[inline]
    pub fn rx_burst(&self, q: QueueId, burst: &mut Burst) -> usize {
        assert!(
            q.0 < self.rx_queues,
            "RX queue {} of {}",
            q.0,
            self.rx_queues
        );
        assert!(burst.is_empty(), "rx_burst into a non-empty burst");
        // SAFETY: the port is started with queue q (asserted); the burst's
        // array has BURST_SIZE slots and holds no mbuf (asserted empty).
        let n = unsafe {
            dpdk_sys::rte_eth_rx_burst(self.id.0, q.0, burst.raw_mut(), BURST_SIZE as u16)
        };
        burst.set_len(usize::from(n));
        usize::from(n)
    }

    /// Sends the packets of `burst` on queue `q`. Packets the driver took leave
    /// the burst; the ones it refused stay (at the front) for the caller to
    /// retry or drop. Returns the number sent.
    #[inline]
    pub fn tx_burst(&self, q: QueueId, burst: &mut Burst) -> usize {
        assert!(
            q.0 < self.tx_queues,
            "TX queue {} of {}",
            q.0,
            self.tx_queues
        );
        if burst.is_empty() {
            return 0;
        }
        let len = burst.len() as u16;
        // SAFETY: the port is started with queue q; the first `len` pointers
        // are mbufs we own; the driver takes ownership of the first n.
        let n = unsafe { dpdk_sys::rte_eth_tx_burst(self.id.0, q.0, burst.raw_mut(), len) };
        burst.consume_front(usize::from(n));
        usize::from(n)
    }

    /// DPDK's counters for the port.
    pub fn stats(&self) -> Result<PortStats, DpdkError> {
        let mut s = dpdk_sys::rte_eth_stats::default();
        // SAFETY: `s` is a valid out-pointer.
        check("rte_eth_stats_get", unsafe {
            dpdk_sys::rte_eth_stats_get(self.id.0, &mut s)
        })?;
        Ok(PortStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
        })
    }
}

impl Drop for Port<'_> {
    fn drop(&mut self) {
        // SAFETY: the port was started by `start`; stop then close release its
        // queues (and their mbufs) before the pool can be freed ('p).
        unsafe {
            let rc = dpdk_sys::rte_eth_dev_stop(self.id.0);
            if rc < 0 {
                tracing::warn!("{}", DpdkError::from_errno("rte_eth_dev_stop", rc));
            }
            let _ = dpdk_sys::rte_eth_dev_close(self.id.0);
        }
    }
}
