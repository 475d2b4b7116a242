//! The `roamlb` command line: run the appliance, replay a capture through it,
//! check a configuration.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use roamlb::classify::{self, ClassifyArgs};
use roamlb::config::{Config, DEMO_CONFIG};
use roamlb::identity::IdentityMode;
use roamlb::runtime::replay::{merge_outputs, replay_config, ReplayFiles};
use roamlb::runtime::{self, RunOptions, RunReport};

#[derive(Debug, Parser)]
#[command(
    name = "roamlb",
    version,
    about = "Clustered, mobility-aware L4 load balancer on DPDK"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the appliance (without --config: the embedded demo on virtual devices).
    Run {
        /// Configuration file (TOML); ROAMLB_* environment variables override it.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Exit once no packet was received for this long (e.g. 2, 500ms, 2s).
        #[arg(long, value_name = "SECS", value_parser = parse_duration)]
        until_idle: Option<Duration>,
        /// Exit after this long in any case.
        #[arg(long, value_name = "SECS", value_parser = parse_duration)]
        duration: Option<Duration>,
        /// Print the final report as one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Run the real data plane over a capture: net_pcap devices replace the
    /// configured ports; exits once the input is exhausted and queues drained.
    Replay {
        /// Configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// Capture (pcap) entering the client side, in file order.
        #[arg(long = "in", value_name = "CLIENT.pcap")]
        input: PathBuf,
        /// Where packets sent toward the backends are written.
        #[arg(long, value_name = "OUT.pcap")]
        out_server: PathBuf,
        /// Where packets sent toward the clients are written.
        #[arg(long, value_name = "OUT2.pcap")]
        out_client: Option<PathBuf>,
        /// Capture (pcap) received on the server side after the client side
        /// drained (e.g. backend replies to full-NAT traffic); its frames
        /// are spread over the workers as RSS would, and the run ends once
        /// they drained too.
        #[arg(long = "in-server", value_name = "SERVER.pcap")]
        in_server: Option<PathBuf>,
        /// How long all RX queues must stay empty before the run ends.
        #[arg(long, value_name = "SECS", default_value = "0.5", value_parser = parse_duration)]
        drain: Duration,
        /// Print the final report as one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
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
    /// Generate mobile-node traffic on DPDK ports and verify what comes back
    /// (or write it to a capture with --write-pcap).
    Gen(Box<roamlb::gen::cli::GenArgs>),
    /// Validate a configuration and print the effective settings.
    CheckConfig {
        /// Configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
}

/// Seconds as a number, or a humantime duration ("500ms", "2s").
fn parse_duration(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Ok(Duration::from_secs_f64(secs));
        }
        return Err(format!("{s}: must be a non-negative number of seconds"));
    }
    humantime::parse_duration(s).map_err(|e| format!("{s}: {e}"))
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Gen(args) => roamlb::gen::cli::run(*args),
        Command::Classify {
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
            match classify::run(&args, &mut out) {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("roamlb classify: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::CheckConfig { config } => match Config::load(&config) {
            Ok(cfg) => {
                print!("{}", cfg.to_toml());
                eprintln!("{}: OK", config.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}: invalid configuration\n{e}", config.display());
                ExitCode::from(2)
            }
        },
        Command::Replay {
            config,
            input,
            out_server,
            out_client,
            in_server,
            drain,
            json,
        } => {
            if let Some(p) = in_server.as_ref().filter(|p| !p.is_file()) {
                eprintln!(
                    "roamlb replay: --in-server: {} is not a readable file",
                    p.display()
                );
                return ExitCode::from(2);
            }
            let cfg = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{}: invalid configuration\n{e}", config.display());
                    return ExitCode::from(2);
                }
            };
            let scratch =
                std::env::temp_dir().join(format!("roamlb-replay-{}", std::process::id()));
            if let Err(e) = std::fs::create_dir_all(&scratch) {
                eprintln!("roamlb: creating {}: {e}", scratch.display());
                return ExitCode::FAILURE;
            }
            let files = ReplayFiles {
                input,
                out_server,
                out_client,
                scratch: scratch.clone(),
            };
            let result = match replay_config(&cfg, &files) {
                Ok(rcfg) => {
                    let opts = RunOptions {
                        until_idle: Some(drain),
                        duration: None,
                        replay: true,
                        config_path: None,
                        inject_server: in_server.clone(),
                    };
                    let code = run_and_report(&rcfg, &opts, json);
                    match merge_outputs(&rcfg, &files) {
                        Ok(_) => code,
                        Err(e) => {
                            eprintln!("roamlb replay: {e}");
                            ExitCode::FAILURE
                        }
                    }
                }
                Err(e) => {
                    eprintln!("roamlb replay: {e}");
                    ExitCode::from(2)
                }
            };
            let _ = std::fs::remove_dir_all(&scratch);
            result
        }
        Command::Run {
            config,
            until_idle,
            duration,
            json,
        } => {
            let loaded = match &config {
                Some(path) => Config::load(path),
                None => {
                    log::info!("no --config given: running the embedded demo configuration (conf/demo.toml)");
                    Config::from_toml(DEMO_CONFIG, "embedded conf/demo.toml")
                }
            };
            let cfg = match loaded {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("invalid configuration\n{e}");
                    return ExitCode::from(2);
                }
            };
            run_and_report(
                &cfg,
                &RunOptions {
                    until_idle,
                    duration,
                    replay: false,
                    config_path: config.clone(),
                    inject_server: None,
                },
                json,
            )
        }
    }
}

fn run_and_report(cfg: &Config, opts: &RunOptions, json: bool) -> ExitCode {
    match runtime::run(cfg, opts) {
        Ok(report) => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string(&report).expect("report serialises")
                );
            } else {
                print_report(&report);
            }
            if report.mbufs_leaked > 0 {
                eprintln!(
                    "error: {} mbufs were not returned to the pool",
                    report.mbufs_leaked
                );
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("roamlb: {e}");
            ExitCode::FAILURE
        }
    }
}

fn print_report(r: &RunReport) {
    println!(
        "final stats: stopped by {:?} after {:.2}s ({}, {})",
        r.stop_reason,
        r.elapsed_secs,
        r.dpdk_version,
        if r.hugepages {
            "hugepages"
        } else {
            "no hugepages"
        }
    );
    println!(
        "{:<12} {:>12} {:>12} {:>14} {:>14} {:>8} {:>8}",
        "port", "rx packets", "tx packets", "rx bytes", "tx bytes", "missed", "nombuf"
    );
    for p in &r.ports {
        println!(
            "{:<12} {:>12} {:>12} {:>14} {:>14} {:>8} {:>8}",
            p.name, p.rx_packets, p.tx_packets, p.rx_bytes, p.tx_bytes, p.rx_missed, p.rx_nombuf
        );
    }
    for (i, w) in r.workers.iter().enumerate() {
        let line: Vec<String> = w
            .iter()
            .filter(|(_, v)| **v > 0)
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        println!("worker {i}: {}", line.join(" "));
    }
    if !r.backends.is_empty() {
        println!("{:<12} {:<40} {:>12}", "service", "backend", "packets");
        for b in &r.backends {
            println!("{:<12} {:<40} {:>12}", b.service, b.address, b.packets);
        }
    }
    if r.drops.is_empty() {
        println!("drops: none");
    } else {
        let d: Vec<String> = r.drops.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("drops: {}", d.join(" "));
    }
    let b = &r.buckets;
    if b.active > 0 {
        let busiest = b
            .busiest
            .iter()
            .map(|e| format!("{}={}", e.bucket, e.packets))
            .collect::<Vec<_>>()
            .join(" ");
        println!(
            "buckets: {} of {} active, {} packets, {} owner drops; busiest {} packets ({:.2}x the mean): {}",
            b.active, b.buckets, b.packets, b.drops, b.max_packets, b.imbalance, busiest
        );
    }
    println!("mbufs not returned to the pool: {}", r.mbufs_leaked);
}
