//! roamlb: a clustered, mobility-aware L4 load balancer on DPDK.
//!
//! The crate is laid out the way the appliance is built: [`packet`] parses
//! and rewrites frames without DPDK, and [`identity`] derives the mobile
//! identity from them; [`dataplane`] holds the per-core tables, schedulers
//! and shard map; [`config`] is the validated, immutable configuration;
//! [`runtime`] brings up the EAL, pools and ports and runs one poll loop per
//! worker lcore plus the management loop on the main lcore; [`mgmt`] holds
//! what the management core does (counter aggregation, metrics);
//! [`classify`] is the operator's capture inspection tool. Everything that
//! touches DPDK goes through the `dpdk` crate.

pub mod aes128;
pub mod classify;
pub mod config;
pub mod dataplane;
pub mod gen;
pub mod identity;
pub mod memory;
pub mod mgmt;
pub mod packet;
pub mod runtime;
