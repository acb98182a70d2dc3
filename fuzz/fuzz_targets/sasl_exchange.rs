//! The SASL exchange on arbitrary client tokens, as a connection drives it before
//! authentication: never panics, and never authenticates without the password.
//!
//! The first byte picks the mechanism; the rest is split at 0xFF bytes into the client's
//! successive SaslAuthenticate tokens.
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use strata_server::sasl::{Exchange, MIN_ITERATIONS, Mechanism, ScramCredential, ScramStore, Step};

struct Users {
    plain: BTreeMap<String, String>,
    scram: ScramStore,
}

fn users() -> &'static Users {
    static USERS: OnceLock<Users> = OnceLock::new();
    USERS.get_or_init(|| {
        let scram = ScramStore::default();
        for m in [Mechanism::ScramSha256, Mechanism::ScramSha512] {
            let c = ScramCredential::new(m, "fuzz-secret", MIN_ITERATIONS);
            scram.set("fuzz", m, Some(c)).expect("an in-memory store");
        }
        let plain = BTreeMap::from([("fuzz".to_string(), "fuzz-secret".to_string())]);
        Users { plain, scram }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let mechanism = match pick % 3 {
        0 => Mechanism::Plain,
        1 => Mechanism::ScramSha256,
        _ => Mechanism::ScramSha512,
    };
    let users = users();
    let mut exchange = Exchange::new(mechanism);
    for token in rest.split(|b| *b == 0xFF).take(4) {
        match exchange.step(token, &users.plain, &users.scram) {
            Step::Challenge(_) => {}
            Step::Done { .. } => {
                // Only PLAIN can finish on the fuzzer's bytes: a SCRAM proof needs the key.
                assert_eq!(mechanism, Mechanism::Plain, "SCRAM authenticated without the key");
                assert!(
                    token.windows(11).any(|w| w == b"fuzz-secret"),
                    "PLAIN authenticated without the password"
                );
                return;
            }
            Step::Failed(_) => return,
        }
    }
});
