//! ESP crypto on a DPDK cryptodev (`crypto_aesni_gcm`/intel-ipsec-mb in the lab, `crypto_qat` on metal),
//! behind the dataplane's batch interface [`CryptoEngine`].
//!
//! Layer: between [`crate::esp`] (which prepares each burst's [`CryptoOp`]s) and the device. Contract:
//! - [`CryptoDev`] configures and starts one device with a queue pair per worker and a session pool, and
//!   stops and closes it when the last handle goes.
//! - [`CryptodevEngine`] is one worker's engine on one queue pair, for packets in [`Mbuf`]s. Per SA and
//!   direction it creates a session on first use (AEAD AES-GCM-128/256, 16-byte ICV, AAD of 8 bytes, or
//!   12 with ESN: RFC 4106 §5) and caches it by SA index and the SA's generation, so a republished
//!   [`SaDb`] with new keys at an index gets new sessions; sessions of SAs that left the table are freed
//!   by a sweep of a few slots per call. For each op it writes the nonce (salt || explicit IV, RFC 4106
//!   §4) and the AAD (SPI || [seq high ||] seq low) into the op's private area and points the op at the
//!   text in the mbuf, the ICV right behind it; then it enqueues the burst on its queue pair and
//!   dequeues until every op has completed, so no pointer into the packets outlives the call.
//! - Ops the device cannot run go through the software path ([`crate::crypto::SaKeys`]) one by one:
//!   AES-CBC + HMAC SAs (the ESN variant puts the high bits behind the text for the HMAC, RFC 4303
//!   §3.3.3, which no cryptodev chain does in place), GCM with a key size the device lacks, and SAs
//!   whose session could not be created (session pool empty).
//! - Statuses: success → [`OpStatus::Ok`], authentication failure → [`OpStatus::AuthFailed`], invalid
//!   arguments → [`OpStatus::BadLength`], any other device error → [`OpStatus::Pending`] (the ESP layer
//!   drops it as a crypto failure). Unlike the software engine, a GCM open that fails authentication has
//!   already decrypted the text in place: the packet's text is unspecified (the ESP layer drops it).

use core::ffi::c_void;
use core::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use dpdk_sys::{rte_crypto_op, rte_mempool};

use super::{c_name, check, last_error, DpdkError, Mbuf};
use crate::counters::Counter;
use crate::crypto::{AesKey, CipherConfig, CryptoEngine, CryptoOp, OpKind, OpStatus, SoftEngine, GCM_TAG_LEN};
use crate::ids::SaIndex;
use crate::pkt::PacketBuf;
use crate::sa::{Sa, SaDb};
use crate::wire::esp::HEADER_LEN;

/// Bytes of explicit IV of an AES-GCM ESP packet (RFC 4106 §3.1).
const GCM_IV_LEN: usize = 8;
/// Where the text starts in an ESP packet (header and IV).
const TEXT_OFFSET: usize = HEADER_LEN + GCM_IV_LEN;
/// Session slots examined for stale sessions per [`CryptoEngine::process`] call.
const SWEEP_PER_CALL: usize = 4;
const PRIV_SIZE: usize = dpdk_sys::DP_CRYPTO_PRIV_SIZE as usize;
const AAD_OFF: usize = dpdk_sys::DP_CRYPTO_AAD_OFF as usize;
const USER_OFF: usize = dpdk_sys::DP_CRYPTO_USER_OFF as usize;

/// Sizes of one device's setup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CryptoDevSetup {
    /// Queue pairs to configure (one per worker that uses the device).
    pub queue_pairs: u16,
    /// Descriptors per queue pair.
    pub descriptors: u32,
    /// Sessions in the device's session pool.
    pub sessions: u32,
}

/// A configured and started cryptodev with its session pool. Stopped and closed on drop, which the
/// engines on it delay by holding an `Arc`.
#[derive(Debug)]
pub struct CryptoDev {
    id: u8,
    name: String,
    setup: CryptoDevSetup,
    sessions: NonNull<rte_mempool>,
}

// SAFETY: the device id and the session pool are shared by the lcores by design: session creation and
// freeing go through the multi-producer/multi-consumer pool, and each queue pair is used by one engine.
// Configuration happens in `open` and `drop`, which have the only handle.
unsafe impl Send for CryptoDev {}
// SAFETY: as above; every `&self` method is a query or a pool operation.
unsafe impl Sync for CryptoDev {}

impl CryptoDev {
    /// The ids of the devices of `driver` (`crypto_aesni_gcm`, `crypto_qat`), in id order.
    pub fn ids_of_driver(driver: &str) -> Result<Vec<u8>, DpdkError> {
        let cname = c_name(driver)?;
        let mut ids = [0u8; 64];
        // SAFETY: `ids` has room for the 64 ids asked for.
        let n = unsafe { dpdk_sys::rte_cryptodev_devices_get(cname.as_ptr(), ids.as_mut_ptr(), ids.len() as u8) };
        Ok(ids[..usize::from(n)].to_vec())
    }

    /// Configures the device named `name` (the vdev's name, or `<PCI address>_qat_sym`) and starts it.
    pub fn open(name: &str, setup: CryptoDevSetup) -> Result<Self, DpdkError> {
        let cname = c_name(name)?;
        // SAFETY: a valid C string.
        let id = unsafe { dpdk_sys::rte_cryptodev_get_dev_id(cname.as_ptr()) };
        let id = u8::try_from(id)
            .map_err(|_| DpdkError::Port { port: name.to_owned(), what: "no cryptodev of that name".to_owned() })?;
        Self::open_id(id, setup)
    }

    /// Configures the device with id `id` and starts it.
    pub fn open_id(id: u8, setup: CryptoDevSetup) -> Result<Self, DpdkError> {
        let mut info = dpdk_sys::rte_cryptodev_info::default();
        // SAFETY: `info` is a valid out-parameter; an unknown id leaves it zeroed (no driver name).
        unsafe { dpdk_sys::rte_cryptodev_info_get(id, &mut info) };
        if info.driver_name.is_null() {
            return Err(DpdkError::Port { port: format!("cryptodev {id}"), what: "no such device".to_owned() });
        }
        // SAFETY: the driver name is a static NUL-terminated string of the driver.
        let driver = unsafe { core::ffi::CStr::from_ptr(info.driver_name) }.to_string_lossy().into_owned();
        let name = format!("cryptodev {id} ({driver})");
        if u32::from(setup.queue_pairs) > info.max_nb_queue_pairs || setup.queue_pairs == 0 {
            return Err(DpdkError::Port {
                port: name,
                what: format!(
                    "{} queue pairs asked (one per worker), the device has {}",
                    setup.queue_pairs, info.max_nb_queue_pairs
                ),
            });
        }
        // SAFETY: a valid device id.
        let socket = unsafe { dpdk_sys::rte_cryptodev_socket_id(id) };
        let socket = if socket < 0 { dpdk_sys::SOCKET_ID_ANY } else { socket };
        // SAFETY: a valid device id.
        let elt = unsafe { dpdk_sys::rte_cryptodev_sym_get_private_session_size(id) };
        let pool_name = c_name(&format!("dp_sess_{id}"))?;
        // SAFETY: a valid C string; the pool is ours until `drop`.
        let pool = unsafe {
            dpdk_sys::rte_cryptodev_sym_session_pool_create(pool_name.as_ptr(), setup.sessions, elt, 0, 0, socket)
        };
        let sessions = NonNull::new(pool)
            .ok_or_else(|| last_error("rte_cryptodev_sym_session_pool_create", format!("{name} session pool")))?;
        // From here on, `drop` stops and closes the device and frees the pool.
        let dev = Self { id, name, setup, sessions };
        let mut conf =
            dpdk_sys::rte_cryptodev_config { socket_id: socket, nb_queue_pairs: setup.queue_pairs, ff_disable: 0 };
        // SAFETY: a valid id and configuration; the device is stopped.
        check(unsafe { dpdk_sys::rte_cryptodev_configure(id, &mut conf) }, "rte_cryptodev_configure", || {
            dev.name.clone()
        })?;
        for qp in 0..setup.queue_pairs {
            let qp_conf =
                dpdk_sys::rte_cryptodev_qp_conf { nb_descriptors: setup.descriptors, mp_session: sessions.as_ptr() };
            // SAFETY: a configured device, a queue pair below the configured count.
            let ret = unsafe { dpdk_sys::rte_cryptodev_queue_pair_setup(id, qp, &qp_conf, socket) };
            check(ret, "rte_cryptodev_queue_pair_setup", || format!("{} queue pair {qp}", dev.name))?;
        }
        // SAFETY: a configured device with its queue pairs set up.
        check(unsafe { dpdk_sys::rte_cryptodev_start(id) }, "rte_cryptodev_start", || dev.name.clone())?;
        Ok(dev)
    }

    /// The device id.
    pub fn id(&self) -> u8 {
        self.id
    }

    /// `cryptodev <id> (<driver>)`, for logs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the device was set up with.
    pub fn setup(&self) -> CryptoDevSetup {
        self.setup
    }

    /// Sessions out of the pool (held by engines).
    pub fn sessions_in_use(&self) -> u32 {
        // SAFETY: the pool is alive; a racy but safe read.
        unsafe { dpdk_sys::rte_mempool_in_use_count(self.sessions.as_ptr()) }
    }

    /// A session for `key` sealing or opening, `None` if the device lacks the algorithm or the pool is
    /// empty.
    fn gcm_session(&self, key: &AesKey, kind: OpKind, aad_len: u16) -> Option<NonNull<c_void>> {
        let key: &[u8] = match key {
            AesKey::Aes128(k) => k,
            AesKey::Aes256(k) => k,
        };
        let key_len = key.len() as u16;
        // SAFETY: a started device; `key` lives across the call (DPDK copies or expands it).
        unsafe {
            if dpdk_sys::dp_gcm_supported(self.id, key_len, aad_len) == 0 {
                return None;
            }
            let encrypt = i32::from(kind == OpKind::Seal);
            NonNull::new(dpdk_sys::dp_gcm_session_create(
                self.id,
                self.sessions.as_ptr(),
                encrypt,
                key.as_ptr(),
                key_len,
                aad_len,
            ))
        }
    }

    fn free_session(&self, s: NonNull<c_void>) {
        // SAFETY: `s` was created on this device from its pool, and no op using it is in flight (engines
        // free sessions between bursts).
        unsafe { dpdk_sys::rte_cryptodev_sym_session_free(self.id, s.as_ptr()) };
    }
}

impl Drop for CryptoDev {
    fn drop(&mut self) {
        // SAFETY: the last handle: every engine (and its sessions and in-flight ops) is gone.
        unsafe {
            dpdk_sys::rte_cryptodev_stop(self.id);
            dpdk_sys::rte_cryptodev_close(self.id);
            if dpdk_sys::rte_mempool_in_use_count(self.sessions.as_ptr()) == 0 {
                dpdk_sys::rte_mempool_free(self.sessions.as_ptr());
            }
        }
    }
}

/// What one engine counts; written by its worker, read by management at any time.
#[derive(Debug, Default)]
pub struct CryptodevCounters {
    /// Ops the device ran.
    pub device_ops: Counter,
    /// Ops run in software (SAs the device cannot run).
    pub software_ops: Counter,
    /// Sessions created.
    pub sessions_created: Counter,
    /// Sessions the device refused (algorithm missing or pool empty); their SAs run in software.
    pub sessions_refused: Counter,
}

/// One SA direction's session.
#[derive(Debug, Clone, Copy, Default)]
enum Session {
    /// Not needed yet.
    #[default]
    Untried,
    /// On the device.
    Device(NonNull<c_void>),
    /// Runs in software.
    Software,
}

/// The sessions of the SA at one index, valid for one generation of it.
#[derive(Debug, Default)]
struct Slot {
    /// The SA's generation (0: empty slot; generations start at 1).
    generation: u64,
    salt: [u8; 4],
    esn: bool,
    seal: Session,
    open: Session,
}

/// One worker's engine: one queue pair of a [`CryptoDev`], its ops and its session cache.
#[derive(Debug)]
pub struct CryptodevEngine {
    dev: Arc<CryptoDev>,
    qp: u16,
    op_pool: NonNull<rte_mempool>,
    /// Every op of the pool, allocated once; a burst uses the first ones.
    ops: Vec<*mut rte_crypto_op>,
    /// Completed ops of a dequeue.
    done: Vec<*mut rte_crypto_op>,
    slots: Vec<Slot>,
    sweep_at: usize,
    counters: Arc<CryptodevCounters>,
}

static OP_POOLS: AtomicU32 = AtomicU32::new(0);

impl CryptodevEngine {
    /// An engine on queue pair `qp` of `dev` running up to `max_burst` ops per enqueue (larger batches
    /// run in several), counting into `counters`. Build it on the worker's lcore, which alone may use it.
    pub fn new(
        dev: Arc<CryptoDev>,
        qp: u16,
        max_burst: usize,
        counters: Arc<CryptodevCounters>,
    ) -> Result<Self, DpdkError> {
        if qp >= dev.setup.queue_pairs {
            return Err(DpdkError::Port {
                port: dev.name.clone(),
                what: format!("no queue pair {qp} (it has {})", dev.setup.queue_pairs),
            });
        }
        let n = max_burst.clamp(1, u16::MAX as usize);
        let name = format!("dp_cop_{}", OP_POOLS.fetch_add(1, Ordering::Relaxed));
        let cname = c_name(&name)?;
        // SAFETY: a valid C string; the pool is ours until `drop`.
        let pool = unsafe {
            dpdk_sys::rte_crypto_op_pool_create(
                cname.as_ptr(),
                dpdk_sys::rte_crypto_op_type_RTE_CRYPTO_OP_TYPE_SYMMETRIC,
                n as u32,
                0,
                PRIV_SIZE as u16,
                dpdk_sys::rte_cryptodev_socket_id(dev.id),
            )
        };
        let op_pool = NonNull::new(pool).ok_or_else(|| last_error("rte_crypto_op_pool_create", name.clone()))?;
        let mut ops = vec![core::ptr::null_mut(); n];
        // SAFETY: `ops` has room for `n` pointers; the pool holds exactly `n` ops.
        let got = unsafe { dpdk_sys::dp_crypto_op_sym_alloc_bulk(op_pool.as_ptr(), ops.as_mut_ptr(), n as u16) };
        if got as usize != n {
            // SAFETY: nothing was taken from the pool (bulk allocation is all or nothing).
            unsafe { dpdk_sys::rte_mempool_free(op_pool.as_ptr()) };
            return Err(DpdkError::Call {
                call: "rte_crypto_op_bulk_alloc",
                object: name,
                reason: format!("{n} ops asked"),
            });
        }
        Ok(Self {
            dev,
            qp,
            op_pool,
            ops,
            done: vec![core::ptr::null_mut(); n],
            slots: Vec::new(),
            sweep_at: 0,
            counters,
        })
    }

    /// The device and queue pair.
    pub fn queue(&self) -> (&CryptoDev, u16) {
        (&self.dev, self.qp)
    }

    /// The device session for `sa` (at `index`) and `kind`, with the SA's salt; `None`: run in software.
    fn session(&mut self, index: SaIndex, sa: &Sa, kind: OpKind) -> Option<(NonNull<c_void>, [u8; 4], bool)> {
        let slot = self.slots.get_mut(index.0 as usize)?;
        if slot.generation != sa.generation() {
            free_slot(&self.dev, slot);
            slot.generation = sa.generation();
            slot.esn = sa.config().esn;
            if let CipherConfig::AesGcm { salt, .. } = &sa.config().cipher {
                slot.salt = *salt;
            }
        }
        let s = match kind {
            OpKind::Seal => &mut slot.seal,
            OpKind::Open => &mut slot.open,
        };
        if let Session::Untried = s {
            *s = match &sa.config().cipher {
                CipherConfig::AesGcm { key, .. } => {
                    let aad_len = if slot.esn { 12 } else { 8 };
                    match self.dev.gcm_session(key, kind, aad_len) {
                        Some(p) => {
                            self.counters.sessions_created.inc();
                            Session::Device(p)
                        }
                        None => {
                            self.counters.sessions_refused.inc();
                            Session::Software
                        }
                    }
                }
                CipherConfig::AesCbc { .. } => Session::Software,
            };
        }
        match *s {
            Session::Device(p) => Some((p, slot.salt, slot.esn)),
            _ => None,
        }
    }

    /// Frees the sessions of a few slots whose SA is gone or was replaced.
    fn sweep(&mut self, sas: &SaDb) {
        let len = self.slots.len();
        for _ in 0..SWEEP_PER_CALL.min(len) {
            self.sweep_at = (self.sweep_at + 1) % len;
            let slot = &mut self.slots[self.sweep_at];
            let current = sas.get(SaIndex(self.sweep_at as u32)).map(Sa::generation);
            if slot.generation != 0 && current != Some(slot.generation) {
                free_slot(&self.dev, slot);
            }
        }
    }

    /// Runs up to `self.ops.len()` ops.
    fn run_batch(&mut self, sas: &SaDb, pkts: &mut [Mbuf], ops: &mut [CryptoOp]) {
        let mut n = 0;
        for (j, op) in ops.iter_mut().enumerate() {
            let (Some(sa), Some(pkt)) = (sas.get(op.sa), pkts.get_mut(op.pkt)) else {
                op.status = OpStatus::NoSa;
                continue;
            };
            let device = self.session(op.sa, sa, op.kind).filter(|&(_, _, esn)| esn == op.esn_hi.is_some());
            let Some((session, salt, _)) = device else {
                self.counters.software_ops.inc();
                op.status = match op.kind {
                    OpKind::Seal => sa.keys().seal(pkt.data_mut(), op.esn_hi),
                    OpKind::Open => sa.keys().open(pkt.data_mut(), op.esn_hi),
                };
                continue;
            };
            let esp = pkt.data();
            // The text (payload, padding, trailer) is at least the 4-byte-aligned trailer (RFC 4303 §2.4).
            let text_len = esp.len().checked_sub(TEXT_OFFSET + GCM_TAG_LEN).filter(|&l| l >= 4 && l % 4 == 0);
            let (Some(text_len), Some(&cop)) = (text_len, self.ops.get(n)) else {
                op.status = OpStatus::BadLength;
                continue;
            };
            // SAFETY: `cop` is an op of our pool, which has PRIV_SIZE bytes of private area; no other
            // reference to it exists (it is not in flight).
            let area = unsafe { core::slice::from_raw_parts_mut(dpdk_sys::dp_crypto_op_priv(cop), PRIV_SIZE) };
            // RFC 4106 §4: nonce = salt || explicit IV.
            area[..4].copy_from_slice(&salt);
            area[4..12].copy_from_slice(&esp[HEADER_LEN..TEXT_OFFSET]);
            // RFC 4106 §5: AAD = SPI || seq low, or with ESN SPI || seq high || seq low; zero-padded.
            let aad = &mut area[AAD_OFF..AAD_OFF + 16];
            aad.fill(0);
            aad[..4].copy_from_slice(&esp[..4]);
            match op.esn_hi {
                Some(hi) => {
                    aad[4..8].copy_from_slice(&hi.to_be_bytes());
                    aad[8..12].copy_from_slice(&esp[4..8]);
                }
                None => aad[4..8].copy_from_slice(&esp[4..8]),
            }
            area[USER_OFF..USER_OFF + 4].copy_from_slice(&(j as u32).to_ne_bytes());
            // SAFETY: `cop` is ours and idle; `pkt` is a single-segment mbuf we hold exclusively until the
            // op completes below; text and ICV lie inside its data (checked above); `session` belongs
            // to this device.
            unsafe {
                dpdk_sys::dp_gcm_op_fill(cop, session.as_ptr(), pkt.as_ptr(), TEXT_OFFSET as u32, text_len as u32)
            };
            op.status = OpStatus::Pending;
            n += 1;
        }
        self.counters.device_ops.add(n as u64);
        let (dev, qp) = (self.dev.id, self.qp);
        let (mut sent, mut got) = (0, 0);
        while got < n {
            if sent < n {
                // SAFETY: ops sent..n are filled and not in flight; the device takes the first `k`.
                let k = unsafe {
                    dpdk_sys::dp_cryptodev_enqueue_burst(dev, qp, self.ops[sent..n].as_mut_ptr(), (n - sent) as u16)
                };
                sent += usize::from(k);
            }
            // SAFETY: `done` has room for its length in op pointers.
            let k = unsafe {
                dpdk_sys::dp_cryptodev_dequeue_burst(dev, qp, self.done.as_mut_ptr(), self.done.len() as u16)
            };
            for &cop in &self.done[..usize::from(k)] {
                // SAFETY: a completed op of ours, no longer in flight.
                let (status, j) = unsafe {
                    let area = core::slice::from_raw_parts(dpdk_sys::dp_crypto_op_priv(cop), PRIV_SIZE);
                    let mut j = [0u8; 4];
                    j.copy_from_slice(&area[USER_OFF..USER_OFF + 4]);
                    (u32::from(dpdk_sys::dp_crypto_op_status(cop)), u32::from_ne_bytes(j) as usize)
                };
                if let Some(op) = ops.get_mut(j) {
                    op.status = map_status(status);
                }
            }
            got += usize::from(k);
        }
    }
}

fn map_status(status: u32) -> OpStatus {
    match status {
        dpdk_sys::rte_crypto_op_status_RTE_CRYPTO_OP_STATUS_SUCCESS => OpStatus::Ok,
        dpdk_sys::rte_crypto_op_status_RTE_CRYPTO_OP_STATUS_AUTH_FAILED => OpStatus::AuthFailed,
        dpdk_sys::rte_crypto_op_status_RTE_CRYPTO_OP_STATUS_INVALID_ARGS => OpStatus::BadLength,
        _ => OpStatus::Pending,
    }
}

fn free_slot(dev: &CryptoDev, slot: &mut Slot) {
    for s in [&mut slot.seal, &mut slot.open] {
        if let Session::Device(p) = *s {
            dev.free_session(p);
        }
        *s = Session::Untried;
    }
    slot.generation = 0;
}

impl CryptoEngine<Mbuf> for CryptodevEngine {
    fn process(&mut self, sas: &SaDb, pkts: &mut [Mbuf], ops: &mut [CryptoOp]) {
        if self.slots.len() < sas.slots() {
            // Once per growth of the published table, not per packet.
            self.slots.resize_with(sas.slots(), Slot::default);
        }
        self.sweep(sas);
        let batch = self.ops.len();
        for chunk in ops.chunks_mut(batch) {
            self.run_batch(sas, pkts, chunk);
        }
    }
}

impl Drop for CryptodevEngine {
    fn drop(&mut self) {
        for slot in &mut self.slots {
            free_slot(&self.dev, slot);
        }
        // SAFETY: no op is in flight (every `process` call dequeued all it enqueued); each op is ours and
        // returns to our pool, which is then freed.
        unsafe {
            for &op in &self.ops {
                dpdk_sys::dp_crypto_op_free(op);
            }
            dpdk_sys::rte_mempool_free(self.op_pool.as_ptr());
        }
    }
}

/// The crypto engines a hardware profile asks for: the software engine, or one queue pair per worker on
/// the profile's cryptodevs (worker `i` on device `i mod devices`, queue pair `i / devices`). Cheap to
/// clone into each worker's launch.
#[derive(Debug, Clone)]
pub enum CryptoSetup {
    /// [`SoftEngine`] on every worker.
    Software,
    /// Devices and each worker's engine counters.
    Cryptodev {
        /// The started devices.
        devs: Vec<Arc<CryptoDev>>,
        /// Per worker.
        counters: Vec<Arc<CryptodevCounters>>,
    },
}

impl CryptoSetup {
    /// Starts the devices of `crypto` (the EAL was started with the profile's arguments, which create
    /// the vdev or allow the PCI functions) for `workers` workers with bursts of `burst`.
    pub fn from_profile(crypto: &hw_profiles::CryptoConfig, workers: usize, burst: u16) -> Result<Self, DpdkError> {
        let hw_profiles::CryptoConfig::Cryptodev { driver, sessions, .. } = crypto else {
            return Ok(CryptoSetup::Software);
        };
        let ids = CryptoDev::ids_of_driver(driver)?;
        if ids.is_empty() {
            return Err(DpdkError::Port {
                port: driver.clone(),
                what: "no cryptodev of this driver (vdev not created, or no PCI function bound to it)".to_owned(),
            });
        }
        let used = ids.len().min(workers.max(1));
        let queue_pairs = workers.div_ceil(used) as u16;
        let setup = CryptoDevSetup { queue_pairs, descriptors: u32::from(burst).max(64) * 4, sessions: *sessions };
        let devs =
            ids[..used].iter().map(|&id| CryptoDev::open_id(id, setup).map(Arc::new)).collect::<Result<_, _>>()?;
        let counters = (0..workers).map(|_| Arc::default()).collect();
        Ok(CryptoSetup::Cryptodev { devs, counters })
    }

    /// Worker `worker`'s engine; call it on the worker's lcore.
    pub fn engine(&self, worker: usize, burst: usize) -> Result<Box<dyn CryptoEngine<Mbuf>>, DpdkError> {
        match self {
            CryptoSetup::Software => Ok(Box::new(SoftEngine)),
            CryptoSetup::Cryptodev { devs, counters } => {
                let (Some(dev), Some(c)) = (devs.get(worker % devs.len().max(1)), counters.get(worker)) else {
                    return Err(DpdkError::Port { port: "cryptodev".to_owned(), what: format!("no worker {worker}") });
                };
                let qp = (worker / devs.len()) as u16;
                Ok(Box::new(CryptodevEngine::new(dev.clone(), qp, burst, c.clone())?))
            }
        }
    }

    /// `software`, or the devices and their queue pairs, for logs.
    pub fn describe(&self) -> String {
        match self {
            CryptoSetup::Software => "software".to_owned(),
            CryptoSetup::Cryptodev { devs, .. } => {
                let d: Vec<String> =
                    devs.iter().map(|d| format!("{} with {} queue pairs", d.name(), d.setup().queue_pairs)).collect();
                d.join(", ")
            }
        }
    }

    /// Per worker: ops the device ran, ops run in software, sessions on the device.
    pub fn worker_counts(&self) -> Vec<(u64, u64, u64)> {
        match self {
            CryptoSetup::Software => Vec::new(),
            CryptoSetup::Cryptodev { counters, .. } => {
                counters.iter().map(|c| (c.device_ops.get(), c.software_ops.get(), c.sessions_created.get())).collect()
            }
        }
    }
}

#[cfg(test)]
mod tests;
