//! Ethernet ports: configure with N RX and TX queues, start, burst, stop.

use super::{check, Burst, DpdkError, Mempool, BURST_SIZE};
use std::ffi::{c_char, CStr, CString};

/// `RTE_ETH_RX_OFFLOAD_TIMESTAMP` (`RTE_BIT64(14)`, a macro bindgen cannot
/// evaluate).
const RX_OFFLOAD_TIMESTAMP: u64 = 1 << 14;

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
        if cfg.rx_timestamp {
            let mut info = dpdk_sys::rte_eth_dev_info::default();
            // SAFETY: `info` is a valid out-pointer for the call.
            let rc = unsafe { dpdk_sys::rte_eth_dev_info_get(id.0, &mut info) };
            if rc == 0 && info.rx_offload_capa & RX_OFFLOAD_TIMESTAMP != 0 {
                conf.rxmode.offloads |= RX_OFFLOAD_TIMESTAMP;
            }
        }
        // SAFETY: conf is a fully initialised (zeroed) rte_eth_conf, which
        // DPDK reads during the call only.
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
