//! Topic creation through librdkafka's admin client.

use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use crate::BoxError;

/// An admin client of `bootstrap` and a runtime to wait on its futures with.
fn admin_client(
    bootstrap: &str,
) -> Result<(AdminClient<DefaultClientContext>, tokio::runtime::Runtime), BoxError> {
    let admin = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("log_level", "3")
        .create()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok((admin, rt))
}

/// Creates `topic` with `partitions` and replication factor `rf` through `bootstrap`. A topic
/// that already exists is fine. Other refusals (a cluster still forming: not enough live
/// brokers yet, no controller) are retried until `wait` has passed; then the last one is the
/// error.
pub fn create_topic(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    rf: i32,
    wait: Duration,
) -> Result<(), BoxError> {
    let (admin, rt) = admin_client(bootstrap)?;
    let deadline = Instant::now() + wait;
    loop {
        let res = rt.block_on(admin.create_topics(
            &[NewTopic::new(
                topic,
                partitions,
                TopicReplication::Fixed(rf),
            )],
            &AdminOptions::new(),
        ));
        match res.map(|r| r.into_iter().next()) {
            Ok(Some(Ok(_)) | None) => return Ok(()),
            Ok(Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists)))) => return Ok(()),
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            Ok(Some(Err((t, e)))) => return Err(format!("creating {t}: {e}").into()),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Deletes `topic` through `bootstrap` (its data goes with it: benchmarks free the disk
/// between measurements).
pub fn delete_topic(bootstrap: &str, topic: &str) -> Result<(), BoxError> {
    let (admin, rt) = admin_client(bootstrap)?;
    let res = rt.block_on(admin.delete_topics(&[topic], &AdminOptions::new()))?;
    match res.into_iter().next() {
        Some(Err((t, e))) => Err(format!("deleting {t}: {e}").into()),
        _ => Ok(()),
    }
}
