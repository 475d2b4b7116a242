//! `roamlb classify`: what roamlb makes of each packet of a capture, for
//! operators checking a trace against the balancer's view.
//!
//! The command runs the data plane's own classifier ([`crate::packet::parse_into`]),
//! identity extraction ([`crate::identity::identify`]) and Binding Update
//! reading on every frame of a pcap or pcapng file (detected by its magic
//! number, read with `pcap-file`), and prints either one JSON object per
//! packet or a table with a drop-reason summary. Only Ethernet captures are
//! accepted (a Linux cooked or raw-IP capture is refused with an error naming
//! its link type). For a dropped packet the identity is the best one found
//! before the refusal, with the same precedence, or `null` when the packet
//! was refused before any network-layer header was validated. The parse per
//! packet does not allocate; the output formatting does, which is fine for
//! an offline tool.

use crate::identity::{binding_update, identify, IdentityMode};
use crate::packet::{parse_into, DropCounters, DropReason, ParseConfig, Parsed};
use anyhow::{bail, Context};
use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::{Block, PcapNgReader};
use pcap_file::DataLink;
use serde::Serialize;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

/// Arguments of `roamlb classify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassifyArgs {
    /// Capture file, pcap or pcapng.
    pub pcap: PathBuf,
    /// Identity precedence to apply.
    pub identity_mode: IdentityMode,
    /// One JSON object per line instead of a table.
    pub json: bool,
}

/// Totals over a capture.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClassifySummary {
    /// Packets read.
    pub packets: u64,
    /// Packets the balancer would forward.
    pub forwarded: u64,
    /// Packets it would drop.
    pub dropped: u64,
    /// Binding Updates seen (forwarded ones).
    pub binding_updates: u64,
    /// Drops per reason.
    pub drops: DropCounters,
}

#[derive(Serialize)]
struct BuLine {
    home_address: String,
    care_of_address: String,
}

/// One output line; field order is the documented key order.
#[derive(Serialize)]
struct Line {
    index: u64,
    verdict: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    identity: Option<String>,
    binding_update: Option<BuLine>,
}

struct Classifier<'a> {
    cfg: ParseConfig,
    mode: IdentityMode,
    json: bool,
    out: &'a mut dyn Write,
    summary: ClassifySummary,
    parsed: Parsed,
    header_done: bool,
}

impl Classifier<'_> {
    fn packet(&mut self, frame: &[u8]) -> anyhow::Result<()> {
        let index = self.summary.packets;
        self.summary.packets += 1;
        let result = parse_into(frame, &self.cfg, &mut self.parsed);
        let p = &self.parsed;
        let identity = identify(frame, p, self.mode);
        let (verdict, reason, bu) = match result {
            Ok(()) => {
                self.summary.forwarded += 1;
                let bu = binding_update(frame, p);
                if bu.is_some() {
                    self.summary.binding_updates += 1;
                }
                ("forward", None, bu)
            }
            Err(r) => {
                self.summary.dropped += 1;
                self.summary.drops.inc(r);
                ("drop", Some(r), None)
            }
        };
        if self.json {
            let line = Line {
                index,
                verdict,
                reason: reason.map(DropReason::name),
                identity: identity.map(|i| i.to_string()),
                binding_update: bu.map(|b| BuLine {
                    home_address: b.home_address.to_string(),
                    care_of_address: b.care_of_address.to_string(),
                }),
            };
            serde_json::to_writer(&mut *self.out, &line)?;
            writeln!(self.out)?;
        } else {
            if !self.header_done {
                self.header_done = true;
                writeln!(
                    self.out,
                    "{:>6}  {:<7}  {:<28}  identity",
                    "index", "verdict", "reason"
                )?;
            }
            let id = identity.map_or_else(|| "-".to_string(), |i| i.to_string());
            let bu = bu.map_or_else(String::new, |b| {
                format!(
                    " BU home={} coa={} seq={} lifetime={}s",
                    b.home_address, b.care_of_address, b.sequence, b.lifetime_secs
                )
            });
            writeln!(
                self.out,
                "{index:>6}  {verdict:<7}  {:<28}  {id}{bu}",
                reason.map_or("", DropReason::name)
            )?;
        }
        Ok(())
    }
}

fn check_link(dl: DataLink, path: &std::path::Path) -> anyhow::Result<()> {
    if dl != DataLink::ETHERNET {
        bail!(
            "{}: link type {:?} ({}) is not supported; classify reads Ethernet (DLT_EN10MB, 1) captures only",
            path.display(),
            dl,
            u32::from(dl)
        );
    }
    Ok(())
}

/// Classifies every packet of `args.pcap`, writing to `out`.
pub fn run(args: &ClassifyArgs, out: &mut dyn Write) -> anyhow::Result<ClassifySummary> {
    let path = &args.pcap;
    let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut magic = [0u8; 4];
    file.read_exact(&mut magic)
        .with_context(|| format!("{}: too short to be a capture", path.display()))?;
    file.seek(SeekFrom::Start(0))?;
    let reader = BufReader::new(file);
    let mut c = Classifier {
        cfg: ParseConfig::new(),
        mode: args.identity_mode,
        json: args.json,
        out,
        summary: ClassifySummary::default(),
        parsed: Parsed::default(),
        header_done: false,
    };
    if magic == [0x0a, 0x0d, 0x0d, 0x0a] {
        let mut r = PcapNgReader::new(reader)
            .with_context(|| format!("{}: bad pcapng header", path.display()))?;
        let mut links: Vec<DataLink> = Vec::new();
        while let Some(block) = r.next_block() {
            let block = block.with_context(|| format!("{}: bad pcapng block", path.display()))?;
            match block {
                Block::SectionHeader(_) => links.clear(),
                Block::InterfaceDescription(idb) => {
                    check_link(idb.linktype, path)?;
                    links.push(idb.linktype);
                }
                Block::EnhancedPacket(epb) => {
                    let Some(dl) = links.get(epb.interface_id as usize) else {
                        bail!(
                            "{}: packet on undeclared interface {}",
                            path.display(),
                            epb.interface_id
                        );
                    };
                    check_link(*dl, path)?;
                    c.packet(&epb.data)?;
                }
                Block::SimplePacket(spb) => {
                    let Some(dl) = links.first() else {
                        bail!(
                            "{}: simple packet block before any interface",
                            path.display()
                        );
                    };
                    check_link(*dl, path)?;
                    c.packet(&spb.data)?;
                }
                _ => {}
            }
        }
    } else {
        let mut r = PcapReader::new(reader)
            .with_context(|| format!("{}: not a pcap or pcapng file", path.display()))?;
        check_link(r.header().datalink, path)?;
        while let Some(pkt) = r.next_packet() {
            let pkt = pkt.with_context(|| format!("{}: bad pcap record", path.display()))?;
            c.packet(&pkt.data)?;
        }
    }
    let s = c.summary.clone();
    if !c.json {
        writeln!(c.out)?;
        writeln!(
            c.out,
            "{} packets: {} forwarded, {} dropped, {} binding updates",
            s.packets, s.forwarded, s.dropped, s.binding_updates
        )?;
        for (reason, n) in s.drops.nonzero() {
            writeln!(c.out, "  {:<32} {n}", reason.name())?;
        }
    }
    Ok(s)
}
