//! The management core: everything that is not the packet path.
//!
//! It runs on the EAL main lcore: it aggregates the workers' published
//! counters every stats interval, feeds the `metrics` registry (Prometheus
//! endpoint in [`metrics`]), watches for signals, and decides when the
//! appliance stops. Workers are never locked or called: the management core
//! only reads what they publish and sets flags they poll between bursts.

pub mod metrics;
pub mod stats;
