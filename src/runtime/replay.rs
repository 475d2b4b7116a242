//! `roamlb replay`: the real appliance over capture files.
//!
//! The configured ports are swapped for DPDK `net_pcap` devices: the client
//! side (the first port with role `client` or `both`) reads the input capture
//! in file order; what the appliance sends toward the backends (ports with
//! role `server` or `both`) is written to the server-side output, and what it
//! sends toward clients to the optional client-side output. Everything else —
//! EAL, workers, rings, tables — is the production path. The run ends when the
//! input is exhausted and the queues have drained.
//!
//! Nothing answers neighbour resolution in a capture, so the data plane runs
//! in replay mode: a next hop without a static neighbour entry resolves to a
//! deterministic, locally administered MAC derived from its address, and the
//! ARP/ND requests it would have sent are counted, not written.

use std::path::{Path, PathBuf};

use crate::config::{Config, ConfigError, PortRole};

/// Files of one replay.
#[derive(Debug, Clone)]
pub struct ReplayFiles {
    /// Capture entering the client side.
    pub input: PathBuf,
    /// What is sent toward the backends.
    pub out_server: PathBuf,
    /// What is sent toward the clients (discarded when absent).
    pub out_client: Option<PathBuf>,
    /// Directory for the empty capture the other ports read.
    pub scratch: PathBuf,
}

fn pcap_path(p: &Path, what: &str) -> Result<String, ConfigError> {
    let s = p
        .to_str()
        .ok_or_else(|| ConfigError::Load(format!("{what}: {} is not UTF-8", p.display())))?;
    if s.contains(',') || s.contains('=') || s.is_empty() {
        return Err(ConfigError::Load(format!(
            "{what}: {s:?} cannot be passed to DPDK's net_pcap (no ',' or '=' in the path)"
        )));
    }
    Ok(s.to_owned())
}

/// Writes an empty Ethernet pcap (what the non-input ports read).
fn write_empty_pcap(path: &Path) -> Result<(), ConfigError> {
    let f = std::fs::File::create(path)
        .map_err(|e| ConfigError::Load(format!("creating {}: {e}", path.display())))?;
    pcap_file::pcap::PcapWriter::new(f)
        .map(|_| ())
        .map_err(|e| ConfigError::Load(format!("writing {}: {e}", path.display())))
}

/// The configuration with every port replaced by a `net_pcap` device.
pub fn replay_config(cfg: &Config, files: &ReplayFiles) -> Result<Config, ConfigError> {
    if !files.input.is_file() {
        return Err(ConfigError::Load(format!(
            "--in: {} is not a readable file",
            files.input.display()
        )));
    }
    let input = pcap_path(&files.input, "--in")?;
    let out_server = pcap_path(&files.out_server, "--out-server")?;
    let out_client = match &files.out_client {
        Some(p) => pcap_path(p, "--out-client")?,
        None => "/dev/null".to_owned(),
    };
    let empty = files.scratch.join("roamlb-replay-empty.pcap");
    write_empty_pcap(&empty)?;
    let empty = pcap_path(&empty, "scratch directory")?;

    let workers = cfg.workers.lcores.len();
    // net_pcap has one TX queue per tx_pcap argument, and every worker sends
    // on its own queue: one part file per worker, merged after the run.
    let tx_args = |path: &str| -> String {
        if path == "/dev/null" {
            (0..workers)
                .map(|_| "tx_pcap=/dev/null".to_owned())
                .collect::<Vec<_>>()
                .join(",")
        } else {
            (0..workers)
                .map(|w| format!("tx_pcap={}", part_path(path, w)))
                .collect::<Vec<_>>()
                .join(",")
        }
    };
    let mut out = cfg.clone();
    let client_port = out
        .ports
        .iter()
        .position(|p| p.role != PortRole::Server)
        .ok_or_else(|| {
            ConfigError::Load(
                "replay: no port with role \"client\" or \"both\" to feed the capture into".into(),
            )
        })?;
    let mut server_written = false;
    for (i, p) in out.ports.iter_mut().enumerate() {
        let rx = if i == client_port {
            input.as_str()
        } else {
            empty.as_str()
        };
        let tx = match p.role {
            PortRole::Client => out_client.as_str(),
            PortRole::Server | PortRole::Both if !server_written => {
                server_written = true;
                out_server.as_str()
            }
            _ => {
                return Err(ConfigError::Load(format!(
                "replay: ports[{i}] ({}) would be a second server-side output; replay takes one",
                p.name
            )))
            }
        };
        p.device = format!("net_pcap{i},rx_pcap={rx},{}", tx_args(tx));
        p.rx_queues = Some(1);
        p.tx_queues = None;
        p.mtu = None;
    }
    if !server_written {
        return Err(ConfigError::Load(
            "replay: no port with role \"server\" or \"both\" to write --out-server".into(),
        ));
    }
    // Only the configured memory mode and lcores carry over; PCI is off.
    out.eal
        .extra_args
        .retain(|a| !a.starts_with("-a") && !a.starts_with("--allow"));
    out.validate()?;
    Ok(out)
}

/// The part file worker `w` writes for output `path`.
fn part_path(path: &str, w: usize) -> String {
    format!("{path}.part{w}")
}

/// Merges the workers' part files of each output into the output itself
/// (ordered by the time each packet was sent) and removes the parts.
pub fn merge_outputs(cfg: &Config, files: &ReplayFiles) -> Result<u64, ConfigError> {
    let workers = cfg.workers.lcores.len();
    let mut total = 0;
    for out in std::iter::once(&files.out_server).chain(files.out_client.iter()) {
        let path = pcap_path(out, "output")?;
        let mut packets: Vec<(std::time::Duration, usize, Vec<u8>, u32)> = Vec::new();
        for w in 0..workers {
            let part = part_path(&path, w);
            let Ok(f) = std::fs::File::open(&part) else {
                continue;
            };
            let mut r = pcap_file::pcap::PcapReader::new(f)
                .map_err(|e| ConfigError::Load(format!("reading {part}: {e}")))?;
            while let Some(p) = r.next_packet() {
                let p = p.map_err(|e| ConfigError::Load(format!("reading {part}: {e}")))?;
                packets.push((p.timestamp, packets.len(), p.data.into_owned(), p.orig_len));
            }
            let _ = std::fs::remove_file(&part);
        }
        packets.sort_by_key(|(t, seq, _, _)| (*t, *seq));
        let f = std::fs::File::create(out)
            .map_err(|e| ConfigError::Load(format!("creating {}: {e}", out.display())))?;
        let mut w = pcap_file::pcap::PcapWriter::new(f)
            .map_err(|e| ConfigError::Load(format!("writing {}: {e}", out.display())))?;
        for (t, _, data, orig) in &packets {
            w.write_packet(&pcap_file::pcap::PcapPacket::new(*t, *orig, data))
                .map_err(|e| ConfigError::Load(format!("writing {}: {e}", out.display())))?;
        }
        total += packets.len() as u64;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_become_pcap_devices() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.pcap");
        write_empty_pcap(&input).unwrap();
        let cfg = Config::load(
            &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/config/services.toml"),
        )
        .unwrap();
        let files = ReplayFiles {
            input: input.clone(),
            out_server: dir.path().join("srv.pcap"),
            out_client: None,
            scratch: dir.path().to_owned(),
        };
        let r = replay_config(&cfg, &files).unwrap();
        let d = dir.path().display();
        assert_eq!(
            r.ports[0].device,
            format!("net_pcap0,rx_pcap={d}/in.pcap,tx_pcap=/dev/null")
        );
        assert_eq!(
            r.ports[1].device,
            format!("net_pcap1,rx_pcap={d}/roamlb-replay-empty.pcap,tx_pcap={d}/srv.pcap.part0")
        );
        assert!(r.eal_args().contains(&"--no-pci".to_owned()));

        let bad = ReplayFiles {
            out_server: dir.path().join("a,b.pcap"),
            ..files.clone()
        };
        assert_eq!(
            replay_config(&cfg, &bad).unwrap_err().to_string(),
            format!("--out-server: \"{d}/a,b.pcap\" cannot be passed to DPDK's net_pcap (no ',' or '=' in the path)")
        );
        let missing = ReplayFiles {
            input: dir.path().join("nope.pcap"),
            ..files
        };
        assert_eq!(
            replay_config(&cfg, &missing).unwrap_err().to_string(),
            format!("--in: {d}/nope.pcap is not a readable file")
        );
    }
}
