//! `strata-bench logins`: how many SASL logins (a new connection, SaslHandshake and the whole
//! SaslAuthenticate exchange) a broker completes per second, against new plaintext connections
//! answered one ApiVersions request on the same broker in the same run. SCRAM's client derives
//! its key with PBKDF2 (4096 or more iterations) on every login; the broker only checks HMACs
//! against the stored keys, so the rate is bound by the client side on a shared machine.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use strata_server::cluster::kafka_client::KafkaConnection;
use strata_server::cluster::link::LinkSecurity;
use strata_server::sasl::{Login, Mechanism};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Options of `strata-bench logins`.
#[derive(clap::Args, Debug, Clone)]
pub struct LoginsArgs {
    /// The broker's SASL_PLAINTEXT listener (`host:port`).
    #[arg(long)]
    sasl_bootstrap: String,
    /// A PLAINTEXT listener of the same broker, for the baseline.
    #[arg(long)]
    bootstrap_servers: String,
    /// PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
    #[arg(long, default_value = "SCRAM-SHA-512")]
    mechanism: String,
    /// User.
    #[arg(long)]
    user: String,
    /// Password.
    #[arg(long)]
    password: String,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Connections made at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
}

/// Connections completed per second by `concurrency` tasks, each connecting (and logging in,
/// with `link`) then closing, for `seconds`.
async fn rate(
    addr: &str,
    link: LinkSecurity,
    api_versions: bool,
    concurrency: usize,
    seconds: f64,
) -> Result<f64, BoxError> {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (addr, link, done) = (addr.to_string(), link.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let mut c = KafkaConnection::connect(&addr, "strata-bench-logins", &link).await?;
                if api_versions {
                    let _: ApiVersionsResponse = c
                        .request(
                            ApiKey::ApiVersions,
                            3,
                            &ApiVersionsRequest::default(),
                            Duration::from_secs(5),
                        )
                        .await?;
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<(), BoxError>(())
        }));
    }
    let start = Instant::now();
    for t in tasks {
        t.await??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64())
}

/// Runs the login and the baseline measurements and prints them.
pub fn run(args: LoginsArgs) -> Result<(), BoxError> {
    let mechanism = Mechanism::parse(&args.mechanism).ok_or("unknown mechanism")?;
    let sasl = LinkSecurity {
        tls: None,
        sasl: Some(Login {
            mechanism,
            user: args.user.clone(),
            password: args.password.clone(),
        }),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let plain = rate(
            &args.bootstrap_servers,
            LinkSecurity::default(),
            true,
            args.concurrency,
            args.seconds,
        )
        .await?;
        let logins = rate(
            &args.sasl_bootstrap,
            sasl,
            false,
            args.concurrency,
            args.seconds,
        )
        .await?;
        println!(
            "{} logins: {logins:.0}/s; new plaintext connections with one ApiVersions: {plain:.0}/s -> {:.3}x",
            mechanism.name(),
            logins / plain
        );
        Ok(())
    })
}
