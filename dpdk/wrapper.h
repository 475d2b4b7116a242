/*
 * The DPDK 22.11 headers roamlb binds. Everything here is allow-listed in
 * build.rs; `static inline` functions get out-of-line wrappers through
 * bindgen's wrap_static_fns, compiled by build.rs with the same cflags.
 */
#include <rte_config.h>
#include <rte_common.h>
#include <rte_errno.h>
#include <rte_eal.h>
#include <rte_lcore.h>
#include <rte_launch.h>
#include <rte_cycles.h>
#include <rte_pause.h>
#include <rte_memory.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_ethdev.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>
#include <rte_dev.h>
#include <rte_bus_vdev.h>
#include <rte_version.h>

/* rte_errno is a per-lcore thread-local behind a macro; bindgen cannot see
 * it, so read it through a function. */
static inline int roamlb_rte_errno(void) { return rte_errno; }

/* rte_version() returns a static string; a plain accessor keeps the FFI
 * surface uniform. */
static inline const char *roamlb_rte_version(void) { return rte_version(); }

/* The RSS hash sits in an anonymous union of rte_mbuf whose bindgen name is
 * not stable across versions; read it through a function. */
static inline uint32_t roamlb_mbuf_rss(const struct rte_mbuf *m) { return m->hash.rss; }

/* EAL logs go to stdout by default on Linux; roamlb keeps stdout for its own
 * reports (JSON, final stats) and sends DPDK's log to stderr. */
#include <rte_log.h>
#include <stdio.h>
static inline int roamlb_log_to_stderr(void) { return rte_openlog_stream(stderr); }
