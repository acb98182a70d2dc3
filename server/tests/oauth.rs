//! SASL/OAUTHBEARER from the outside: a broker validating JWTs against a JWKS file (keys made
//! for the test with rcgen, tokens signed with jsonwebtoken), kafka-python (an independent
//! client) authenticating with them: the token's `sub` is the principal ACLs name, and expired,
//! foreign-issuer, foreign-key and unsigned tokens are refused.
#![allow(clippy::unwrap_used)]

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use jsonwebtoken::{Algorithm, EncodingKey, Header};

/// An ES256 signing key: its JWK (public) and what signs with it.
fn key(kid: &str) -> (serde_json::Value, EncodingKey) {
    let pair = rcgen::KeyPair::generate().unwrap();
    let raw = pair.public_key_raw();
    assert_eq!(raw.len(), 65, "an uncompressed P-256 point");
    let jwk = serde_json::json!({
        "kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
        "x": B64URL.encode(&raw[1..33]), "y": B64URL.encode(&raw[33..65]),
    });
    (jwk, EncodingKey::from_ec_der(&pair.serialize_der()))
}

fn token(kid: &str, key: &EncodingKey, sub: &str, issuer: &str, exp_in: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.into());
    let claims = serde_json::json!({
        "sub": sub, "iss": issuer, "aud": "strata", "iat": now, "exp": now + exp_in,
    });
    jsonwebtoken::encode(&header, &claims, key).unwrap()
}

#[test]
fn kafka_python_with_validated_oauthbearer_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let (jwk, signer) = key("k1");
    let (_, foreign) = key("k1");
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, serde_json::json!({ "keys": [jwk] }).to_string()).unwrap();
    let issuer = "https://idp.strata.test";
    let good = token("k1", &signer, "service-a", issuer, 300);
    let other_sub = token("k1", &signer, "service-b", issuer, 300);
    // Expired well beyond the 30 s clock skew allowed.
    let expired = token("k1", &signer, "service-a", issuer, -300);
    let wrong_issuer = token("k1", &signer, "service-a", "https://evil.test", 300);
    let foreign_key = token("k1", &foreign, "service-a", issuer, 300);
    let unsigned = {
        let header = B64URL.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let body = B64URL.encode(
            serde_json::json!({"sub": "service-a", "iss": issuer, "aud": "strata", "exp": 4102444800u64})
                .to_string(),
        );
        format!("{header}.{body}.")
    };
    let port = common::free_port();
    let _broker = common::Broker::start_on(
        port,
        &[
            &format!("listeners=SASL_PLAINTEXT://127.0.0.1:{port}"),
            "sasl.enabled.mechanisms=OAUTHBEARER",
            &format!(
                "sasl.oauthbearer.jwks.endpoint.url=file://{}",
                jwks.display()
            ),
            &format!("sasl.oauthbearer.expected.issuer={issuer}"),
            "sasl.oauthbearer.expected.audience=strata",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users=User:service-a",
        ],
    );
    let out = common::python(&[
        common::python_script("kafka_python_oauth.py"),
        format!("127.0.0.1:{port}"),
        good,
        other_sub,
        expired,
        wrong_issuer,
        foreign_key,
        unsigned,
    ]);
    println!("{out}");
    assert!(
        out.contains("oauth: service-a produced and read 50"),
        "{out}"
    );
    assert!(
        out.contains("oauth: service-b authenticated and was refused"),
        "{out}"
    );
    assert!(out.contains("oauth: ok"), "{out}");
}

#[test]
fn oauthbearer_without_a_jwks_does_not_start() {
    let port = common::free_port();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["serve", "--data-dir"])
        .arg(tempfile::tempdir().unwrap().path())
        .args([
            "--set",
            &format!("listeners=SASL_PLAINTEXT://127.0.0.1:{port}"),
        ])
        .args(["--set", "sasl.enabled.mechanisms=OAUTHBEARER"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("sasl.oauthbearer.jwks.endpoint.url"),
        "{stderr}"
    );
}
