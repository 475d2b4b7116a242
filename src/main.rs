//! The `roamlb` command line.
//!
//! Minimal for now: only `classify` (see `roamlb::classify`); the lead's CLI
//! replaces this file and calls `roamlb::classify::run` the same way.

use clap::{Parser, Subcommand};
use roamlb::classify::{self, ClassifyArgs};
use roamlb::identity::IdentityMode;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "roamlb",
    about = "Clustered, mobility-aware L4 load balancer on DPDK"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Show what roamlb makes of each packet of a pcap/pcapng capture.
    Classify {
        /// Capture file (pcap or pcapng, Ethernet link type).
        #[arg(long)]
        pcap: PathBuf,
        /// Identity precedence: default (SPI, HAO, source) or slaac (SPI, HAO, interface ID, source).
        #[arg(long, default_value = "default")]
        identity_mode: IdentityMode,
        /// One JSON object per packet.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Classify {
            pcap,
            identity_mode,
            json,
        } => {
            let args = ClassifyArgs {
                pcap,
                identity_mode,
                json,
            };
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            classify::run(&args, &mut out)?;
        }
    }
    Ok(())
}
