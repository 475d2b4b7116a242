//! Bindings for DPDK 22.11 and the thin safe layer roamlb uses.
//!
//! This crate is the only place that calls raw `rte_*` functions. It is
//! deliberately small: EAL start-up ([`eal`]), mbuf pools ([`mempool`]), owned
//! packet buffers and fixed bursts ([`mbuf`]), ports and their per-queue
//! handles ([`port`]), lock-free rings ([`ring`]), lcore launch ([`lcore`]) and
//! the TSC clock ([`time`]). Every C failure becomes a [`DpdkError`] carrying
//! `rte_strerror`'s text.
//!
//! The crates.io `capsule` and `dpdk-sys` crates target DPDK 19.11 and older
//! and do not build against 22.11, hence this crate.

pub mod eal;
pub mod error;
pub mod ffi;
pub mod ids;
pub mod lcore;
pub mod mbuf;
pub mod mempool;
pub mod port;
pub mod ring;
pub mod time;

pub use eal::Eal;
pub use error::{DpdkError, Result};
pub use ids::{LcoreId, PortId, QueueId, SocketId};
pub use mbuf::{Mbuf, PacketBurst, MAX_BURST};
pub use mempool::Mempool;
pub use port::{Port, PortSetup, RxQueue, TxQueue};
