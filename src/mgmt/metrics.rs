//! Prometheus metrics on the management core.
//!
//! Workers never touch the `metrics` registry: the management core copies the
//! aggregated counters into it once per stats interval. The endpoint is served
//! by `tiny_http` on its own thread (a blocking server needs no async runtime
//! and never calls into DPDK); it renders the recorder's current state on each
//! `GET /metrics`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Why the metrics endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// Another recorder is installed in this process.
    #[error("installing the Prometheus recorder: {0}")]
    Recorder(String),
    /// The listen address is unusable.
    #[error("metrics endpoint on {addr}: {reason}")]
    Listen {
        /// The configured address.
        addr: SocketAddr,
        /// What went wrong.
        reason: String,
    },
}

/// The running endpoint; stops its thread when dropped.
pub struct MetricsEndpoint {
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
    addr: SocketAddr,
}

/// Installs the global recorder (once per process) and returns its handle.
pub fn install_recorder() -> Result<PrometheusHandle, MetricsError> {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| MetricsError::Recorder(e.to_string()))?;
    Ok(HANDLE.get_or_init(|| handle).clone())
}

impl std::fmt::Debug for MetricsEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsEndpoint")
            .field("addr", &self.addr)
            .finish()
    }
}

impl MetricsEndpoint {
    /// Serves `GET /metrics` on `addr`.
    pub fn start(addr: SocketAddr, handle: PrometheusHandle) -> Result<Self, MetricsError> {
        let server = tiny_http::Server::http(addr).map_err(|e| MetricsError::Listen {
            addr,
            reason: e.to_string(),
        })?;
        let bound = server.server_addr().to_ip().unwrap_or(addr);
        let server = Arc::new(server);
        let srv = server.clone();
        let thread = std::thread::Builder::new()
            .name("roamlb-metrics".into())
            .spawn(move || {
                for req in srv.incoming_requests() {
                    let resp = if req.method() == &tiny_http::Method::Get && req.url() == "/metrics"
                    {
                        let body = handle.render();
                        let ct = tiny_http::Header::from_bytes(
                            &b"Content-Type"[..],
                            &b"text/plain; version=0.0.4"[..],
                        )
                        .expect("static header is valid");
                        tiny_http::Response::from_string(body)
                            .with_header(ct)
                            .boxed()
                    } else {
                        tiny_http::Response::from_string("not found: try GET /metrics\n")
                            .with_status_code(404)
                            .boxed()
                    };
                    if let Err(e) = req.respond(resp) {
                        log::debug!("metrics client went away: {e}");
                    }
                }
            })
            .map_err(|e| MetricsError::Listen {
                addr,
                reason: e.to_string(),
            })?;
        log::info!("metrics on http://{bound}/metrics");
        Ok(MetricsEndpoint {
            server,
            thread: Some(thread),
            addr: bound,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsEndpoint {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
