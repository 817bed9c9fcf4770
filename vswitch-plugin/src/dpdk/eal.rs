//! The Environment Abstraction Layer: init from arguments, cleanup on drop.

use super::{check, DpdkError};
use std::ffi::{c_char, CString};
use std::sync::atomic::{AtomicBool, Ordering};

static INITIALISED: AtomicBool = AtomicBool::new(false);

/// A DPDK logical core id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LcoreId(pub u32);

/// The initialised EAL. Dropping it calls `rte_eal_cleanup`; DPDK cannot be
/// initialised again in the same process afterwards.
#[derive(Debug)]
pub struct Eal {
    // Keeps the argument strings alive: EAL may keep pointers into argv.
    _args: Vec<CString>,
}

impl Eal {
    /// Initialises EAL with `args` (the first is the program name, as argv[0]).
    /// Fails if EAL was initialised before in this process.
    pub fn init<S: AsRef<str>>(args: &[S]) -> Result<Eal, DpdkError> {
        if INITIALISED.swap(true, Ordering::SeqCst) {
            return Err(DpdkError::msg(
                "rte_eal_init",
                "EAL is already initialised in this process (it can be initialised only once)",
            ));
        }
        let mut owned = Vec::with_capacity(args.len().max(1));
        for a in args {
            owned.push(CString::new(a.as_ref()).map_err(|_| {
                DpdkError::msg(
                    "rte_eal_init",
                    format!("argument {:?} contains NUL", a.as_ref()),
                )
            })?);
        }
        if owned.is_empty() {
            owned.push(CString::new("flowlogd").expect("no NUL"));
        }
        let mut argv: Vec<*mut c_char> = owned.iter().map(|s| s.as_ptr() as *mut c_char).collect();
        let argc = i32::try_from(argv.len()).expect("argument count fits in i32");
        // SAFETY: argv holds argc valid NUL-terminated strings that outlive the
        // Eal (kept in `_args`); EAL may permute argv but not the strings.
        let rc = unsafe { dpdk_sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        if rc < 0 {
            return Err(DpdkError::last("rte_eal_init"));
        }
        Ok(Eal { _args: owned })
    }

    /// Number of Ethernet ports that EAL found (vdevs and NICs).
    pub fn port_count(&self) -> u16 {
        // SAFETY: EAL is initialised (we hold `self`).
        unsafe { dpdk_sys::rte_eth_dev_count_avail() }
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        // SAFETY: EAL was initialised by `init`, and every port/mempool handle
        // borrows nothing from it at the type level; callers drop them first
        // (cleanup releases hugepage memory and unmaps devices).
        let rc = unsafe { dpdk_sys::rte_eal_cleanup() };
        if let Err(e) = check("rte_eal_cleanup", rc) {
            tracing::warn!("{e}");
        }
    }
}

/// The calling thread's lcore id (`u32::MAX` for a non-EAL thread).
#[inline]
pub fn lcore_id() -> LcoreId {
    // SAFETY: reads a thread-local; valid on any thread.
    LcoreId(unsafe { dpdk_sys::rte_lcore_id() })
}

/// The calling thread, registered with EAL as an lcore of its own until
/// this is dropped (on the same thread: it is neither `Send` nor `Sync`).
/// A worker started by us rather than by EAL needs it for the mempool's
/// per-lcore cache: unregistered, every mbuf it allocates or frees goes
/// through the pool's shared ring, first in first out, so each one comes
/// back cold.
#[derive(Debug)]
pub struct ThreadRegistration {
    _same_thread: std::marker::PhantomData<*const ()>,
}

/// Registers the calling thread (call after pinning it: EAL records its
/// CPU set). Fails when no lcore id is left, or in a secondary process.
pub fn register_thread() -> Result<ThreadRegistration, DpdkError> {
    // SAFETY: callable from any thread once EAL is initialised (the callers
    // hold an `Eal`); it only assigns the calling thread an lcore id.
    let rc = unsafe { dpdk_sys::rte_thread_register() };
    if rc < 0 {
        return Err(DpdkError::last("rte_thread_register"));
    }
    if lcore_id().0 == u32::MAX {
        return Err(DpdkError::msg(
            "rte_thread_register",
            "no lcore id was given to the thread",
        ));
    }
    Ok(ThreadRegistration {
        _same_thread: std::marker::PhantomData,
    })
}

impl Drop for ThreadRegistration {
    fn drop(&mut self) {
        // SAFETY: this thread registered itself in `register_thread`; the
        // value cannot move to another thread.
        unsafe { dpdk_sys::rte_thread_unregister() };
    }
}

/// The time-stamp counter.
#[inline]
pub fn tsc() -> u64 {
    // SAFETY: rdtsc has no preconditions.
    unsafe { dpdk_sys::rte_rdtsc() }
}

/// TSC ticks per second as measured by EAL (0 before EAL init).
pub fn tsc_hz() -> u64 {
    // SAFETY: reads a value EAL computed at init; no preconditions.
    unsafe { dpdk_sys::rte_get_tsc_hz() }
}

/// Lets the calling thread run on every CPU the process may use, undoing
/// the affinity it inherited from an EAL lcore (EAL pins the main thread to
/// the main lcore, and threads it starts inherit that). Returns whether it
/// took.
pub fn unpin_current_thread() -> bool {
    let all: Vec<usize> = (0..libc::CPU_SETSIZE as usize).collect();
    run_current_thread_on(&all)
}

/// Restricts the calling thread to the CPUs `cpus` (ids at or above
/// `CPU_SETSIZE` are ignored). Returns whether it took.
pub fn run_current_thread_on(cpus: &[usize]) -> bool {
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cpus.iter().filter(|&&c| c < libc::CPU_SETSIZE as usize) {
        // SAFETY: c < CPU_SETSIZE, inside the set.
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: pid 0 is the calling thread; `set` is a valid cpu_set_t of the
    // size given. The kernel masks it with the CPUs that exist.
    unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0 }
}

/// The CPU of each lcore EAL enabled (`-l`/`-c`/`--lcores`), in lcore order
/// (the main lcore included).
pub fn lcore_cpus() -> Vec<usize> {
    (0..dpdk_sys::RTE_MAX_LCORE)
        .filter(|&l| {
            // SAFETY: reads EAL's lcore configuration; l < RTE_MAX_LCORE.
            unsafe { dpdk_sys::rte_lcore_is_enabled(l) != 0 }
        })
        .filter_map(|l| {
            // SAFETY: as above; returns -1 for an lcore without a CPU.
            let cpu = unsafe { dpdk_sys::rte_lcore_to_cpu_id(l as i32) };
            usize::try_from(cpu).ok()
        })
        .collect()
}
