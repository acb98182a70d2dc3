//! The SASL exchange on arbitrary client tokens, as a connection drives it before
//! authentication: never panics, and never authenticates without the password.
//!
//! The first byte picks the mechanism; the rest is split at 0xFF bytes into the client's
//! successive SaslAuthenticate tokens. OAUTHBEARER validates against a JWKS holding one public
//! key whose private half nobody has: no token may pass.
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use strata_server::sasl::{Exchange, MIN_ITERATIONS, Mechanism, ScramCredential, ScramStore, Step};

struct Users {
    plain: BTreeMap<String, String>,
    scram: ScramStore,
    oauth: strata_server::oauth::Validator,
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
        let jwks =
            std::env::temp_dir().join(format!("strata-fuzz-jwks-{}.json", std::process::id()));
        std::fs::write(
            &jwks,
            r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","alg":"ES256",
                "x":"7nY8RhCVcAlY7aBwwhH80C_4R4I9_YeHDMpTi1BMDQs",
                "y":"8lHBznmIj5UKuxj42RXAsK3ok5YaQTI8T8qm_xu5Fwg"}]}"#,
        )
        .expect("a temporary JWKS");
        let oauth = strata_server::oauth::Validator::new(strata_server::oauth::OAuthSettings {
            jwks: Some(jwks),
            ..Default::default()
        })
        .expect("the JWKS loads");
        Users {
            plain,
            scram,
            oauth,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let mechanism = match pick % 4 {
        0 => Mechanism::Plain,
        1 => Mechanism::ScramSha256,
        2 => Mechanism::ScramSha512,
        _ => Mechanism::OAuthBearer,
    };
    let users = users();
    let mut exchange = Exchange::new(mechanism);
    for token in rest.split(|b| *b == 0xFF).take(4) {
        match exchange.step_with(token, &users.plain, &users.scram, Some(&users.oauth)) {
            Step::Challenge(_) => {}
            Step::Done { .. } => {
                // Only PLAIN can finish on the fuzzer's bytes: a SCRAM proof needs the key, an
                // OAUTHBEARER token a signature.
                assert_eq!(
                    mechanism,
                    Mechanism::Plain,
                    "{mechanism:?} authenticated without the key"
                );
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
