//! The data plane's pure-Rust building blocks, one owner per core.
//!
//! Everything here is single-threaded by design: each worker core owns its
//! tables and scheduler state exclusively and changes them only itself (other
//! cores and the management core send it messages through its command ring).
//! Hence no atomics, locks or allocation on the packet path; all memory is
//! allocated when a structure is built, and anything rebuilt (a backend set,
//! a bucket map) is built off the packet path and swapped in between bursts.
//!
//! - [`buckets`]: identity hash -> bucket -> (owner member, owner core), and
//!   the per-bucket load counters behind the cluster's rebalance.
//! - [`table`]: the fixed-capacity session table with bounded-work expiry,
//!   per-bucket export and import for hand-over and replication.
//! - [`fnat`]: full NAT's per-core connection table (both directions), the
//!   per-core local port ranges that steer replies, and its rewrites.
//! - [`icmp_error`]: the quote of an ICMP error, located and rewritten into
//!   the packet its sender sent (full NAT both ways, DNAT replies).
//! - [`hold`]: packets held per core while their next hop is resolved
//!   (ARP / neighbour discovery), released in order when it answers.
//! - [`maglev`]: Maglev consistent hashing with weights.
//! - [`ratelimit`]: the per-worker limits on the ICMP errors the data
//!   plane originates and translates.
//! - [`notify`]: authenticated home-agent notifications (care-of address
//!   changes over UDP) and their per-home replay guard.
//! - [`scheduler`]: backend sets with priority groups, published RCU-style,
//!   and the per-core selection policies (Maglev, smooth WRR, least
//!   connections).
//!
//! The hash split: buckets use the high bits of the caller's keyed 64-bit
//! hash, the session table its low bits, and Maglev folds both halves.
#![forbid(unsafe_code)]

pub mod buckets;
pub mod fnat;
pub mod hold;
pub mod icmp_error;
pub mod lb;
pub mod maglev;
pub mod neighbor;
pub mod notify;
pub mod ratelimit;
pub mod scheduler;
pub mod table;
