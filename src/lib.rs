//! roamlb: a clustered, mobility-aware L4 load balancer on DPDK.
//!
//! Everything that touches DPDK goes through the `dpdk` crate; the modules of
//! this crate are declared below as they land.

pub mod dataplane;
