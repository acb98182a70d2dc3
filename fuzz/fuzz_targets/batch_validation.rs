//! Batch validation on arbitrary bytes: never panics; whatever it accepts re-validates batch by
//! batch, frames exactly the input, and keeps validating after the log stamps offsets/epochs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_engine::batch::{self, Origin};
use strata_engine::{LeaderEpoch, Offset};

fuzz_target!(|data: &[u8]| {
    for origin in [Origin::Client, Origin::Replication] {
        let Ok(headers) = batch::validate_all(data, origin, 1 << 20) else {
            continue;
        };
        let mut end = 0usize;
        for (pos, h) in &headers {
            assert_eq!(*pos, end, "batches are contiguous");
            let one = &data[*pos..*pos + h.size()];
            let again =
                batch::validate(one, 0, origin, 1 << 20).expect("accepted batch re-validates");
            assert_eq!(&again, h);
            let mut stamped = one.to_vec();
            batch::stamp_base_offset(&mut stamped, Offset(1234));
            batch::stamp_leader_epoch(&mut stamped, LeaderEpoch(7));
            batch::validate(&stamped, 0, origin, 1 << 20).expect("stamping keeps the CRC valid");
            let _ = batch::records(one);
            end += h.size();
        }
        assert_eq!(end, data.len());
    }
});
