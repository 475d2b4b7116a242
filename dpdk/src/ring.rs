//! Lock-free rings between lcores: one for mbufs (packet handoff between
//! workers) and one for typed messages (commands from the management core).
//!
//! Both are split into a producer and a consumer half. The consumer half is
//! unique and the ring is created single-consumer, so dequeue needs no
//! compare-and-swap; producers may be cloned (multi-producer). Typed messages
//! are copied by value into the ring's own memory (`rte_ring_*_elem`), so
//! sending a message allocates nothing.

use std::ffi::CString;
use std::marker::PhantomData;
use std::mem::{ManuallyDrop, MaybeUninit};
use std::ptr::NonNull;
use std::sync::Arc;

use crate::error::{DpdkError, Result};
use crate::ffi;
use crate::ids::SocketId;
use crate::mbuf::PacketBurst;

#[derive(Debug)]
struct RawRing {
    raw: NonNull<ffi::rte_ring>,
    /// The entries are owned mbufs: whatever is still queued when the last
    /// handle goes is freed, so a producer that enqueued after the consumer
    /// was dropped (a worker still running while another has stopped) leaks
    /// nothing.
    holds_mbufs: bool,
}

// SAFETY: rte_ring is a lock-free MP/SC queue in shared memory; the producer
// side is multi-thread safe and the consumer side is held by one handle.
unsafe impl Send for RawRing {}
// SAFETY: as above.
unsafe impl Sync for RawRing {}

impl RawRing {
    fn create(name: &str, capacity: u32, elem_size: Option<u32>, socket: SocketId) -> Result<Self> {
        let cname = CString::new(name)
            .map_err(|_| DpdkError::Invalid(format!("ring name {name:?} contains NUL")))?;
        let count = capacity.max(1).checked_next_power_of_two().ok_or_else(|| {
            DpdkError::Invalid(format!("ring {name}: capacity {capacity} is too large"))
        })?;
        // The ring holds count-1 entries; EXACT_SZ gives exactly `count`.
        let flags = ffi::RING_F_SC_DEQ | ffi::RING_F_EXACT_SZ;
        // SAFETY: cname is valid for the call; DPDK validates the other values.
        let raw = unsafe {
            match elem_size {
                None => ffi::rte_ring_create(cname.as_ptr(), count, socket.0, flags),
                Some(es) => ffi::rte_ring_create_elem(cname.as_ptr(), es, count, socket.0, flags),
            }
        };
        let raw = NonNull::new(raw).ok_or_else(|| {
            DpdkError::from_rte_errno(format!("rte_ring_create({name}, {count})"))
        })?;
        Ok(RawRing {
            raw,
            holds_mbufs: false,
        })
    }

    fn count(&self) -> u32 {
        // SAFETY: the ring is live while self exists.
        unsafe { ffi::rte_ring_count(self.raw.as_ptr()) }
    }

    fn capacity(&self) -> u32 {
        // SAFETY: the ring is live while self exists.
        unsafe { ffi::rte_ring_get_capacity(self.raw.as_ptr()) }
    }
}

impl Drop for RawRing {
    fn drop(&mut self) {
        if self.holds_mbufs {
            let mut burst = PacketBurst::new();
            loop {
                let (ptr, room) = burst.spare_raw();
                // SAFETY: this is the last handle (inside an Arc), so no
                // producer or consumer runs concurrently; ptr has room for
                // `room` pointers.
                let n = unsafe {
                    ffi::rte_ring_dequeue_burst(
                        self.raw.as_ptr(),
                        ptr as *mut *mut std::ffi::c_void,
                        room as u32,
                        std::ptr::null_mut(),
                    )
                } as usize;
                if n == 0 {
                    break;
                }
                // SAFETY: the ring held owned mbufs; the burst frees them.
                unsafe { burst.commit(n) };
                burst.clear();
            }
        }
        // SAFETY: last reference (inside an Arc); nothing uses the ring after.
        unsafe { ffi::rte_ring_free(self.raw.as_ptr()) }
    }
}

/// Creates an mbuf ring with room for `capacity` packets (rounded up to a
/// power of two).
pub fn mbuf_ring(
    name: &str,
    capacity: u32,
    socket: SocketId,
) -> Result<(MbufProducer, MbufConsumer)> {
    let mut ring = RawRing::create(name, capacity, None, socket)?;
    ring.holds_mbufs = true;
    let ring = Arc::new(ring);
    Ok((MbufProducer { ring: ring.clone() }, MbufConsumer { ring }))
}

/// Enqueue side of an mbuf ring; clone it for several producers.
#[derive(Debug, Clone)]
pub struct MbufProducer {
    ring: Arc<RawRing>,
}

impl MbufProducer {
    /// Moves as many mbufs of `burst` into the ring as fit; the rest stay in
    /// the burst (at its front). Returns how many were enqueued.
    #[inline]
    pub fn enqueue(&self, burst: &mut PacketBurst) -> usize {
        let (ptr, len) = burst.filled_raw();
        if len == 0 {
            return 0;
        }
        // SAFETY: ptr holds len owned mbufs; the ring takes ownership of the
        // first n, which we then forget from the burst.
        let n = unsafe {
            ffi::rte_ring_enqueue_burst(
                self.ring.raw.as_ptr(),
                ptr as *const *mut std::ffi::c_void,
                len as u32,
                std::ptr::null_mut(),
            )
        } as usize;
        burst.consume_front(n);
        n
    }

    /// Packets waiting in the ring.
    pub fn len(&self) -> u32 {
        self.ring.count()
    }

    /// Whether the ring is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Dequeue side of an mbuf ring (one per ring).
#[derive(Debug)]
pub struct MbufConsumer {
    ring: Arc<RawRing>,
}

impl MbufConsumer {
    /// Moves up to `max` mbufs from the ring into the free room of `burst`.
    #[inline]
    pub fn dequeue(&mut self, burst: &mut PacketBurst, max: usize) -> usize {
        let (ptr, room) = burst.spare_raw();
        let want = room.min(max) as u32;
        if want == 0 {
            return 0;
        }
        // SAFETY: ptr has room for `want` pointers; this is the ring's only
        // consumer (SC ring, unique handle).
        let n = unsafe {
            ffi::rte_ring_dequeue_burst(
                self.ring.raw.as_ptr(),
                ptr as *mut *mut std::ffi::c_void,
                want,
                std::ptr::null_mut(),
            )
        } as usize;
        // SAFETY: the ring held owned mbufs; they are now the burst's.
        unsafe { burst.commit(n) };
        n
    }

    /// Packets waiting in the ring.
    pub fn len(&self) -> u32 {
        self.ring.count()
    }

    /// Whether the ring is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Ring capacity.
    pub fn capacity(&self) -> u32 {
        self.ring.capacity()
    }
}

impl Drop for MbufConsumer {
    fn drop(&mut self) {
        // Free packets still queued so they return to their pool.
        let mut burst = PacketBurst::new();
        while self.dequeue(&mut burst, usize::MAX) > 0 {
            burst.clear();
        }
    }
}

/// A message slot: the element size of `rte_ring_*_elem` must be a multiple
/// of 4, which an alignment of (at least) 4 guarantees.
#[repr(C, align(4))]
struct Slot<T>(T);

/// Creates a ring of typed messages with room for `capacity` (rounded up to a
/// power of two). `T` is copied into the ring's memory; nothing is allocated
/// per message.
pub fn typed_ring<T: Send>(
    name: &str,
    capacity: u32,
    socket: SocketId,
) -> Result<(Sender<T>, Receiver<T>)> {
    let size = std::mem::size_of::<Slot<T>>();
    if size == 0 || size > u16::MAX as usize {
        return Err(DpdkError::Invalid(format!(
            "ring {name}: message size {size} not supported (1..=65535 bytes)"
        )));
    }
    let ring = Arc::new(RawRing::create(name, capacity, Some(size as u32), socket)?);
    Ok((
        Sender {
            ring: ring.clone(),
            _t: PhantomData,
        },
        Receiver {
            ring,
            _t: PhantomData,
        },
    ))
}

/// Sending half of a typed ring; clone it for several producers.
#[derive(Debug)]
pub struct Sender<T> {
    ring: Arc<RawRing>,
    _t: PhantomData<fn(T)>,
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Sender {
            ring: self.ring.clone(),
            _t: PhantomData,
        }
    }
}

// SAFETY: messages of type T: Send cross threads by value; the ring is MP-safe.
unsafe impl<T: Send> Send for Sender<T> {}
// SAFETY: as above; enqueue through &self is multi-producer safe.
unsafe impl<T: Send> Sync for Sender<T> {}

impl<T: Send> Sender<T> {
    /// Sends a message; gives it back when the ring is full.
    pub fn send(&self, msg: T) -> std::result::Result<(), T> {
        let slot = ManuallyDrop::new(Slot(msg));
        let size = std::mem::size_of::<Slot<T>>() as u32;
        // SAFETY: slot is a valid readable value of the ring's element size;
        // on success the ring owns a bitwise copy and we forget ours.
        let ret = unsafe {
            ffi::rte_ring_enqueue_elem(
                self.ring.raw.as_ptr(),
                &*slot as *const Slot<T> as *mut std::ffi::c_void,
                size,
            )
        };
        if ret == 0 {
            Ok(())
        } else {
            Err(ManuallyDrop::into_inner(slot).0)
        }
    }
}

/// Receiving half of a typed ring (one per ring).
#[derive(Debug)]
pub struct Receiver<T> {
    ring: Arc<RawRing>,
    _t: PhantomData<fn() -> T>,
}

// SAFETY: messages of type T: Send; the unique receiver may move threads.
unsafe impl<T: Send> Send for Receiver<T> {}

impl<T: Send> Receiver<T> {
    /// Takes the next message, if any.
    pub fn try_recv(&mut self) -> Option<T> {
        let mut slot = MaybeUninit::<Slot<T>>::uninit();
        let size = std::mem::size_of::<Slot<T>>() as u32;
        // SAFETY: slot has room for one element; this is the ring's only
        // consumer.
        let ret = unsafe {
            ffi::rte_ring_dequeue_elem(
                self.ring.raw.as_ptr(),
                slot.as_mut_ptr() as *mut std::ffi::c_void,
                size,
            )
        };
        if ret == 0 {
            // SAFETY: DPDK copied a value enqueued by Sender::send, whose
            // original was forgotten: this is now its only owner.
            Some(unsafe { slot.assume_init() }.0)
        } else {
            None
        }
    }

    /// Messages waiting.
    pub fn len(&self) -> u32 {
        self.ring.count()
    }

    /// Whether no message is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let size = std::mem::size_of::<Slot<T>>() as u32;
        loop {
            let mut slot = MaybeUninit::<Slot<T>>::uninit();
            // SAFETY: as in try_recv.
            let ret = unsafe {
                ffi::rte_ring_dequeue_elem(
                    self.ring.raw.as_ptr(),
                    slot.as_mut_ptr() as *mut std::ffi::c_void,
                    size,
                )
            };
            if ret != 0 {
                break;
            }
            // SAFETY: as in try_recv; dropping the message we now own.
            drop(unsafe { slot.assume_init() });
        }
    }
}
