//! Test certificates made with rcgen: a CA and leaf certificates it signs, written as Kafka's
//! PEM stores (`ssl.keystore.location`: the key, then the chain; `ssl.truststore.location`: CAs).
#![allow(dead_code, clippy::unwrap_used)]

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

pub use rcgen::ExtendedKeyUsagePurpose as Purpose;

/// A CA: its certificate and what signs with it.
pub struct Ca {
    pub cert: rcgen::Certificate,
    pub key: KeyPair,
}

/// A self-signed CA named `name`.
pub fn ca(name: &str) -> Ca {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let cert = p.self_signed(&key).unwrap();
    Ca { cert, key }
}

/// A leaf certificate signed by `ca` for `names` (DNS names or IP addresses) and `purposes`:
/// (certificate PEM, key PEM).
pub fn leaf(ca: &Ca, cn: &str, names: &[&str], purposes: &[Purpose]) -> (String, String) {
    let mut p =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.extended_key_usages = purposes.to_vec();
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &ca.cert, &ca.key).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// A PEM keystore file's text: the private key, then the certificate.
pub fn keystore(leaf: &(String, String)) -> String {
    format!("{}{}", leaf.1, leaf.0)
}
