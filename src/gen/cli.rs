//! The `roamlb gen` command line (kept here so `main.rs` only dispatches).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::traffic::{Mix, Profile, Transport};
use super::{live, write_pcap, RunLimits, DEFAULT_VIP4, DEFAULT_VIP6};

fn parse_duration(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Ok(Duration::from_secs_f64(secs));
        }
        return Err(format!("{s}: must be a non-negative number of seconds"));
    }
    humantime::parse_duration(s).map_err(|e| format!("{s}: {e}"))
}

/// Rates like `1000`, `2.5e6`, `500k`, `3M`, or `max`.
fn parse_rate(s: &str) -> Result<f64, String> {
    if s == "max" {
        return Ok(0.0);
    }
    let (num, mult) = match s.strip_suffix(['k', 'K']) {
        Some(n) => (n, 1e3),
        None => match s.strip_suffix('M') {
            Some(n) => (n, 1e6),
            None => (s, 1.0),
        },
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{s}: a rate in packets/s (e.g. 10000, 500k, 2M, max)"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("{s}: must be non-negative"));
    }
    Ok(v * mult)
}

/// Arguments of `roamlb gen`.
#[derive(Debug, Args)]
pub struct GenArgs {
    /// Established mobile nodes (one flow each, ids 0..N).
    #[arg(long, default_value_t = 1000)]
    pub nodes: u32,
    /// Kinds of client and their shares: hao, esp, slaac, bu, ipv4, ipv6.
    #[arg(long, default_value = "hao=60,esp=10,slaac=10,bu=10,ipv4=5,ipv6=5")]
    pub mix: Mix,
    /// A moving node changes its care-of address every this many of its packets (0: never).
    #[arg(long, default_value_t = 8)]
    pub move_every: u32,
    /// Share of packets from never-seen identities (0.0 to 1.0; 1.0 = every packet new).
    #[arg(long, default_value_t = 0.0)]
    pub new_share: f64,
    /// Transport of data packets.
    #[arg(long, value_enum, default_value = "udp")]
    pub proto: Transport,
    /// Frame size in octets including the 4-octet FCS (64 to 1518); kinds whose
    /// headers and 16-octet mark need more are sent at their minimum.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Packets per second (10000, 500k, 2M) or `max`.
    #[arg(long, default_value = "max", value_parser = parse_rate)]
    pub rate: f64,
    /// Packets to send (a capture needs it).
    #[arg(long)]
    pub count: Option<u64>,
    /// Stop sending after this long (e.g. 10, 500ms).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Throughput is measured after this warm-up.
    #[arg(long, default_value = "1", value_parser = parse_duration)]
    pub warmup: Duration,
    /// After sending, wait until nothing was received for this long.
    #[arg(long, default_value = "0.5", value_parser = parse_duration)]
    pub drain: Duration,
    /// Wait this long for the ports' links (the device under test).
    #[arg(long, default_value = "20", value_parser = parse_duration)]
    pub link_wait: Duration,
    /// The IPv6 VIP.
    #[arg(long, default_value_t = DEFAULT_VIP6)]
    pub vip6: Ipv6Addr,
    /// The IPv4 VIP.
    #[arg(long, default_value_t = DEFAULT_VIP4)]
    pub vip4: Ipv4Addr,
    /// Destination port.
    #[arg(long, default_value_t = 80)]
    pub dport: u16,
    /// Source MAC of the generated frames.
    #[arg(long, default_value = "02:00:00:00:00:01")]
    pub src_mac: String,
    /// Destination MAC (the appliance's client-side port).
    #[arg(long, default_value = "02:00:00:00:00:02")]
    pub dst_mac: String,
    /// Transmit port (ethdev name, e.g. net_memif0); default the first port.
    #[arg(long)]
    pub tx_port: Option<String>,
    /// Receive/verify port (ethdev name); default the second port, else the first.
    #[arg(long)]
    pub rx_port: Option<String>,
    /// Count received packets only (no per-flow checks): for maximum-rate runs.
    #[arg(long)]
    pub no_verify: bool,
    /// Spin instead of sleeping 20 us when an iteration did nothing.
    #[arg(long)]
    pub spin: bool,
    /// Write the traffic to this pcap instead of sending it (no EAL; needs --count).
    #[arg(long, value_name = "FILE")]
    pub write_pcap: Option<PathBuf>,
    /// Verify a capture of what the appliance sent toward the backends
    /// against the first --count packets of this profile (no EAL).
    #[arg(long, value_name = "FILE", conflicts_with = "write_pcap")]
    pub verify_pcap: Option<PathBuf>,
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// EAL arguments, after `--` (e.g. -l 0 --vdev net_memif0,role=client,...).
    #[arg(last = true)]
    pub eal: Vec<String>,
}

impl GenArgs {
    fn profile(&self) -> Result<Profile, String> {
        Ok(Profile {
            nodes: self.nodes,
            mix: self.mix.clone(),
            move_every: self.move_every,
            new_share: self.new_share,
            transport: self.proto,
            size: self.size,
            vip6: self.vip6,
            vip4: self.vip4,
            dport: self.dport,
            src_mac: super::parse_mac(&self.src_mac).map_err(|e| format!("--src-mac: {e}"))?,
            dst_mac: super::parse_mac(&self.dst_mac).map_err(|e| format!("--dst-mac: {e}"))?,
        })
    }
}

/// Runs `roamlb gen`.
pub fn run(args: GenArgs) -> ExitCode {
    let profile = match args.profile() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("roamlb gen: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(path) = &args.verify_pcap {
        let Some(count) = args.count else {
            eprintln!("roamlb gen: --verify-pcap needs --count (of the generated capture)");
            return ExitCode::from(2);
        };
        return match super::verify_pcap(&profile, count, path) {
            Ok(r) => {
                if args.json {
                    println!("{}", serde_json::to_string(&r).expect("report serialises"));
                } else {
                    live::print_verify(&r);
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("roamlb gen: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(path) = &args.write_pcap {
        let Some(count) = args.count else {
            eprintln!("roamlb gen: --write-pcap needs --count");
            return ExitCode::from(2);
        };
        return match write_pcap(&profile, count, args.rate, path) {
            Ok(r) => {
                if args.json {
                    println!("{}", serde_json::to_string(&r).expect("report serialises"));
                } else {
                    println!(
                        "wrote {} packets ({} data, {} new-identity, {} binding updates), {} bytes to {}",
                        r.packets,
                        r.generated.data,
                        r.generated.new_identity,
                        r.generated.binding_updates,
                        r.bytes,
                        r.file
                    );
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("roamlb gen: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if args.count.is_none() && args.duration.is_none() {
        eprintln!("roamlb gen: give --count or --duration (or --write-pcap FILE --count N)");
        return ExitCode::from(2);
    }
    let lim = RunLimits {
        rate: args.rate,
        count: args.count,
        duration: args.duration,
        warmup: args.warmup,
        drain: args.drain,
        link_wait: args.link_wait,
        verify: !args.no_verify,
        idle_sleep: !args.spin,
        tx_port: args.tx_port.clone(),
        rx_port: args.rx_port.clone(),
    };
    match live::run(&profile, &lim, &args.eal) {
        Ok(r) => {
            if args.json {
                println!("{}", serde_json::to_string(&r).expect("report serialises"));
            } else {
                live::print_summary(&r);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("roamlb gen: {e}");
            ExitCode::FAILURE
        }
    }
}
