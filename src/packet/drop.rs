//! Every way the parser refuses a packet, as one `Copy` enum.
//!
//! A [`DropReason`] is `#[repr(u8)]` and numbered densely from zero, so it
//! indexes a plain counter array ([`DropCounters`]) on a worker core: counting a
//! drop is one add, no hashing, no string. [`DropReason::name`] gives the
//! snake_case name used in metrics labels and in `roamlb classify` output; it is
//! a `&'static str`, never formatted per packet.

macro_rules! drop_reasons {
    ( $( $(#[$doc:meta])* $variant:ident => $name:literal, )+ ) => {
        /// Why a packet was refused. Each variant names one check; the doc
        /// comment cites the rule it enforces.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum DropReason {
            $( $(#[$doc])* $variant, )+
        }

        impl DropReason {
            /// Every reason, in counter-index order.
            pub const ALL: &'static [DropReason] = &[ $( DropReason::$variant, )+ ];
            /// Number of reasons (length of a counter array).
            pub const COUNT: usize = Self::ALL.len();

            /// The snake_case name used in metrics and operator output.
            #[inline]
            pub const fn name(self) -> &'static str {
                match self { $( DropReason::$variant => $name, )+ }
            }
        }
    };
}

drop_reasons! {
    /// Frame shorter than the 14-octet Ethernet header (IEEE 802.3 §3.1.1).
    EthTruncated => "eth_truncated",
    /// EtherType is neither IPv4, IPv6, ARP nor a VLAN tag.
    UnknownEthertype => "unknown_ethertype",
    /// A VLAN tag (IEEE 802.1Q §9.6) cut short.
    VlanTruncated => "vlan_truncated",
    /// More than two stacked VLAN tags (we accept 802.1Q and 802.1ad QinQ only).
    TooManyVlanTags => "too_many_vlan_tags",
    /// ARP packet shorter than its fixed part or its addresses (RFC 826).
    ArpTruncated => "arp_truncated",
    /// ARP for something other than Ethernet/IPv4 (RFC 826 hardware/protocol type).
    ArpUnsupported => "arp_unsupported",
    /// Fewer than 20 octets for the IPv4 header (RFC 791 §3.1).
    Ipv4Truncated => "ipv4_truncated",
    /// IPv4 version field is not 4.
    Ipv4BadVersion => "ipv4_bad_version",
    /// IHL below 5 (RFC 791 §3.1: minimum header is five 32-bit words).
    Ipv4BadHeaderLength => "ipv4_bad_header_length",
    /// IHL says the header runs past the end of the packet.
    Ipv4HeaderPastPacket => "ipv4_header_past_packet",
    /// Total Length smaller than the header length.
    Ipv4BadTotalLength => "ipv4_bad_total_length",
    /// Total Length runs past the end of the frame.
    Ipv4TotalLengthPastPacket => "ipv4_total_length_past_packet",
    /// Header checksum does not verify (RFC 791 §3.1, RFC 1071).
    Ipv4BadChecksum => "ipv4_bad_checksum",
    /// An IPv4 option's length runs past the header (RFC 791 §3.1 options).
    Ipv4OptionPastHeader => "ipv4_option_past_header",
    /// An IPv4 option with a length below 2.
    Ipv4BadOptionLength => "ipv4_bad_option_length",
    /// Fewer than 40 octets for the IPv6 header (RFC 8200 §3).
    Ipv6Truncated => "ipv6_truncated",
    /// IPv6 version field is not 6.
    Ipv6BadVersion => "ipv6_bad_version",
    /// Payload Length runs past the end of the frame (RFC 8200 §3).
    Ipv6PayloadPastPacket => "ipv6_payload_past_packet",
    /// Fewer than the 2 octets every extension header starts with.
    ExtTruncated => "ext_truncated",
    /// An extension header's Hdr Ext Len runs past the IPv6 payload (RFC 8200 §4).
    ExtHeaderPastPacket => "ext_header_past_packet",
    /// More extension headers than the configured limit (default 8, max 32).
    ExtChainTooLong => "ext_chain_too_long",
    /// Hop-by-Hop Options not immediately after the IPv6 header (RFC 8200 §4.1).
    HopByHopNotFirst => "hop_by_hop_not_first",
    /// An option TLV runs past its extension header (RFC 8200 §4.2).
    OptionPastHeader => "option_past_header",
    /// An unrecognised option whose two high type bits say discard (RFC 8200 §4.2).
    UnknownOptionDiscard => "unknown_option_discard",
    /// Home Address option with an Option Length other than 16 (RFC 6275 §6.3).
    HaoBadLength => "hao_bad_length",
    /// More than one Home Address option (RFC 6275 §6.3: at most one per packet).
    HaoDuplicate => "hao_duplicate",
    /// Home Address option carrying a multicast address (RFC 6275 §6.3: unicast).
    HaoNotUnicast => "hao_not_unicast",
    /// Type 2 Routing header with Hdr Ext Len other than 2 (RFC 6275 §6.4).
    RoutingType2BadLength => "routing_type2_bad_length",
    /// Type 2 Routing header with Segments Left other than 0 or 1 (RFC 6275 §6.4).
    RoutingType2BadSegments => "routing_type2_bad_segments",
    /// Fragment header shorter than 8 octets (RFC 8200 §4.5).
    FragmentTruncated => "fragment_truncated",
    /// Authentication Header shorter than its 12-octet fixed part (RFC 4302 §2).
    AhTruncated => "ah_truncated",
    /// AH Payload Len below the fixed part or past the packet (RFC 4302 §2.2).
    AhBadLength => "ah_bad_length",
    /// ESP cut before the SPI and Sequence Number (RFC 4303 §2).
    EspTruncated => "esp_truncated",
    /// ESP SPI 0, reserved for local use and never sent (RFC 4303 §2.1).
    EspSpiZero => "esp_spi_zero",
    /// Mobility Header shorter than its 6-octet fixed part (RFC 6275 §6.1.1).
    MhTruncated => "mh_truncated",
    /// Mobility Header Len runs past the packet (RFC 6275 §6.1.1).
    MhLengthPastPacket => "mh_length_past_packet",
    /// Mobility Header Len too short for its MH Type (RFC 6275 §9.2).
    MhBadLength => "mh_bad_length",
    /// A mobility option runs past the message (RFC 6275 §6.2.1).
    MobilityOptionPastMessage => "mobility_option_past_message",
    /// Alternate Care-of Address option with a length other than 16 (RFC 6275 §6.2.5).
    AltCoaBadLength => "alt_coa_bad_length",
    /// TCP header shorter than 20 octets (RFC 9293 §3.1).
    TcpTruncated => "tcp_truncated",
    /// TCP Data Offset below 5 (RFC 9293 §3.1).
    TcpBadDataOffset => "tcp_bad_data_offset",
    /// TCP Data Offset runs past the packet.
    TcpHeaderPastPacket => "tcp_header_past_packet",
    /// UDP header shorter than 8 octets (RFC 768).
    UdpTruncated => "udp_truncated",
    /// UDP Length below 8 (RFC 768).
    UdpBadLength => "udp_bad_length",
    /// UDP Length runs past the IP payload.
    UdpLengthPastPacket => "udp_length_past_packet",
    /// ICMP message shorter than its 8-octet header (RFC 792).
    IcmpTruncated => "icmp_truncated",
    /// ICMPv6 message shorter than its 4-octet header (RFC 4443 §2.1).
    Icmpv6Truncated => "icmpv6_truncated",
}

impl core::fmt::Display for DropReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// One counter per [`DropReason`], indexed by the reason itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DropCounters {
    counts: [u64; DropReason::COUNT],
}

impl Default for DropCounters {
    fn default() -> Self {
        DropCounters {
            counts: [0; DropReason::COUNT],
        }
    }
}

impl DropCounters {
    /// Counts one drop.
    #[inline]
    pub fn inc(&mut self, reason: DropReason) {
        // `reason as usize < COUNT` by construction: the discriminants are dense.
        self.counts[reason as usize] += 1;
    }

    /// The count for one reason.
    #[inline]
    pub fn get(&self, reason: DropReason) -> u64 {
        self.counts[reason as usize]
    }

    /// Sum over every reason.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// `(reason, count)` for every reason with a non-zero count, in index order.
    pub fn nonzero(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .iter()
            .map(move |r| (*r, self.get(*r)))
            .filter(|(_, c)| *c > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discriminants_are_dense_and_names_unique() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
            let n = r.name();
            assert!(
                n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{n}"
            );
        }
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
    }

    #[test]
    fn counters_index_by_reason() {
        let mut c = DropCounters::default();
        c.inc(DropReason::HaoBadLength);
        c.inc(DropReason::HaoBadLength);
        c.inc(DropReason::Icmpv6Truncated);
        assert_eq!(c.get(DropReason::HaoBadLength), 2);
        assert_eq!(c.total(), 3);
        assert_eq!(c.nonzero().count(), 2);
    }
}
