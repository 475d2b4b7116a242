//! Mobility Header / Binding Update parser on arbitrary octets: the checked
//! view must never panic, and an accepted BU must survive emit → parse.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roamlb::packet::mobility::{BindingUpdateRepr, MobilityHeader};

fuzz_target!(|data: &[u8]| {
    let Ok(mh) = MobilityHeader::new_checked(data) else {
        return;
    };
    let _ = mh.bu_options().count();
    if let Some(bu) = BindingUpdateRepr::parse(&mh) {
        let mut buf = vec![0u8; bu.buffer_len()];
        bu.emit(&mut buf);
        let again = MobilityHeader::new_checked(&buf[..]).expect("emitted BU parses");
        assert_eq!(BindingUpdateRepr::parse(&again), Some(bu));
    }
});
