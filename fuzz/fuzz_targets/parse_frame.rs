//! Ethernet-to-L4 classifier on arbitrary frames: must never panic or hang,
//! whatever it accepts must have in-bounds offsets, and the identity with
//! its hash in one step must equal the two steps.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roamlb::identity::{binding_update, identify, IdentityHasher, IdentityMode};
use roamlb::packet::{parse_into, ParseConfig, Parsed};

fuzz_target!(|data: &[u8]| {
    let (limit, frame) = match data.split_first() {
        Some((l, f)) => (*l, f),
        None => return,
    };
    let cfg = ParseConfig::new().with_max_ext_headers(limit);
    let mut p = Parsed::default();
    let ok = parse_into(frame, &cfg, &mut p).is_ok();
    let hasher = IdentityHasher::new([7; 16]);
    for mode in [IdentityMode::Default, IdentityMode::Slaac] {
        let two_steps = identify(frame, &p, mode).map(|id| (id, hasher.hash(&id)));
        assert_eq!(
            hasher.identify(frame, &p, mode).map(|(k, h)| (k.identity(), h)),
            two_steps
        );
    }
    let _ = binding_update(frame, &p);
    if ok {
        assert!(usize::from(p.l3_end) <= frame.len());
        assert!(usize::from(p.l4_offset) <= usize::from(p.l3_end));
        assert!(p.ext_count <= cfg.max_ext_headers());
        if p.has_hao() {
            assert!(p.home_address(frame).is_some());
        }
    }
});
