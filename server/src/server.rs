//! The broker process: listeners, background tasks (session expiry, retention), and graceful
//! shutdown (stop accepting, let in-flight requests finish, flush, close logs cleanly).

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::broker::Broker;
use crate::cluster::controller::Controller;
use crate::config::BrokerConfig;
use crate::group::GroupCoordinator;
use crate::handler::Context;
use crate::metrics::Metrics;

/// Binds every listener (`listener.rs`), with the TLS acceptor of SSL ones.
async fn bind_listeners(
    config: &BrokerConfig,
) -> anyhow::Result<Vec<(TcpListener, Arc<crate::listener::Bound>)>> {
    let resolved = config.resolved_listeners()?;
    // One acceptor per distinct TLS setting (listeners differ in client authentication).
    let mut acceptors: Vec<(crate::tls::SslSettings, Arc<crate::tls::ReloadingAcceptor>)> =
        Vec::new();
    let mut out = Vec::with_capacity(resolved.len());
    for l in resolved {
        let acceptor = if matches!(
            l.protocol,
            crate::listener::SecurityProtocol::Ssl | crate::listener::SecurityProtocol::SaslSsl
        ) {
            let settings = config.ssl_for(&l);
            match acceptors.iter().find(|(s, _)| *s == settings) {
                Some((_, a)) => Some(a.clone()),
                None => {
                    let a = Arc::new(crate::tls::ReloadingAcceptor::new(settings.clone())?);
                    acceptors.push((settings, a.clone()));
                    Some(a)
                }
            }
        } else {
            None
        };
        let tcp = TcpListener::bind(l.bind).await.map_err(|e| {
            anyhow::anyhow!("binding the Kafka listener {} ({}): {e}", l.name, l.bind)
        })?;
        out.push((
            tcp,
            Arc::new(crate::listener::Bound {
                listener: l,
                tls: acceptor,
            }),
        ));
    }
    Ok(out)
}

/// A place for an accepted connection within the connection limits, or `None`: the
/// connection is closed at once (dropped), counted, and logged (thinned to powers of two).
fn admit(
    ctx: &Context,
    limits: &Arc<crate::connection_limits::ConnectionLimits>,
    stream: &tokio::net::TcpStream,
    protected: bool,
) -> Option<Option<crate::connection_limits::Permit>> {
    use crate::connection_limits::Refusal;
    let Ok(peer) = stream.peer_addr() else {
        return Some(None);
    };
    // KIP-612's per-address quota (`connection_creation_rate` of an ip entity).
    if !protected && !ctx.quotas.admit_connection(peer.ip()) {
        let counter = &ctx.metrics.connections_refused_ip_rate;
        counter.inc();
        let n = counter.get();
        if n <= 3 || n.is_power_of_two() {
            tracing::warn!(%peer, refused = n, "connection refused: its address is over its connection_creation_rate quota");
        }
        return None;
    }
    match limits.try_acquire(peer.ip(), protected) {
        Ok(permit) => Some(Some(permit)),
        Err(refusal) => {
            let counter = match refusal {
                Refusal::Total => &ctx.metrics.connections_refused_total_limit,
                Refusal::PerIp => &ctx.metrics.connections_refused_ip_limit,
            };
            counter.inc();
            let n = counter.get();
            if n <= 3 || n.is_power_of_two() {
                let (total, from_ip) = limits.open(peer.ip());
                tracing::warn!(%peer, ?refusal, open = total, open_from_address = from_ip, refused = n, "connection refused: over its limit");
            }
            None
        }
    }
}

/// Runs a broker until SIGTERM or SIGINT.
pub async fn run(config: BrokerConfig) -> anyhow::Result<()> {
    // One owner per data directory, taken before anything binds, opens or writes: a second
    // `strata serve` on a live broker's directory exits here and changes nothing.
    let data_dir_lock = strata_engine::io::lock_dir(&config.log_dir).map_err(|e| match e {
        strata_engine::io::LockError::Held { dir, holder_pid } => anyhow::anyhow!(
            "data directory {} is locked by {}: another strata (or another program embedding \
             strata-engine) is using it; stop it, or give this broker its own --data-dir",
            dir.display(),
            strata_engine::io::dir_lock::holder_description(holder_pid)
        ),
        e => anyhow::anyhow!("{e}"),
    })?;
    match crate::open_files::raise_limit() {
        Ok((soft, hard)) => tracing::info!(soft, hard, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "reading the open-file limit"),
    }
    let metrics_listener = match config.metrics_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("binding metrics.listen {addr}: {e}"))?,
        ),
        None => None,
    };
    let console_listener = match config.console_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("binding console.listen {addr}: {e}"))?,
        ),
        None => None,
    };
    let metrics = Arc::new(Metrics::new());
    // A controller node binds its quorum listener first, so peers can reach it while it opens.
    let controller = match config.controller_address() {
        Some(addr) if config.is_cluster() && config.has_role("controller") => {
            let l = TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("binding the controller listener {addr}: {e}"))?;
            Some(Controller::start(&config, l, metrics.clone()).await?)
        }
        _ => None,
    };
    if !config.has_role("broker") {
        let Some(controller) = controller else {
            anyhow::bail!("process.roles=controller needs this node in controller.quorum.voters");
        };
        println!(
            "strata: controller listening on {:?}",
            config.controller_address()
        );
        let mut sigterm =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = sigterm.recv() => {}
        }
        tokio::task::spawn_blocking(move || controller.stop()).await?;
        return Ok(());
    }
    let listeners = bind_listeners(&config).await?;
    let data_dir_lock = Arc::new(data_dir_lock);
    let broker_lock = data_dir_lock.clone();
    let broker = tokio::task::spawn_blocking(move || Broker::open(config, broker_lock)).await??;
    let groups = GroupCoordinator::load(broker.clone())?;
    let txns =
        crate::txn::TransactionCoordinator::load(broker.clone(), groups.clone(), metrics.clone())?;
    // A standalone broker keeps its SCRAM credentials and ACLs in its data directory; a
    // cluster member takes them from the metadata image, as the watch delivers it.
    let c = &broker.config;
    let (scram, acl) = if broker.cluster.is_some() {
        (
            crate::sasl::ScramStore::replicated(),
            crate::acl::Authorizer::replicated(
                c.authorizer,
                c.super_users.clone(),
                c.allow_everyone_if_no_acl_found,
            ),
        )
    } else {
        (
            crate::sasl::ScramStore::open(&c.log_dir).map_err(anyhow::Error::msg)?,
            crate::acl::Authorizer::open(
                &c.log_dir,
                c.authorizer,
                c.super_users.clone(),
                c.allow_everyone_if_no_acl_found,
            )
            .map_err(anyhow::Error::msg)?,
        )
    };
    let (scram, acl) = (Arc::new(scram), Arc::new(acl));
    let oauth = if c
        .sasl_mechanisms
        .contains(&crate::sasl::Mechanism::OAuthBearer)
        && c.oauth.jwks.is_some()
    {
        Some(Arc::new(
            crate::oauth::Validator::new(c.oauth.clone()).map_err(anyhow::Error::msg)?,
        ))
    } else {
        None
    };
    let quotas = Arc::new(if broker.cluster.is_some() {
        crate::quota::QuotaStore::replicated(c.quota_window_num, c.quota_window)
    } else {
        crate::quota::QuotaStore::open(&c.log_dir, c.quota_window_num, c.quota_window)
            .map_err(anyhow::Error::msg)?
    });
    if broker.cluster.is_some() {
        crate::cluster::membership::start(
            broker.clone(),
            groups.clone(),
            txns.clone(),
            crate::cluster::membership::Security {
                scram: scram.clone(),
                acl: acl.clone(),
                quotas: quotas.clone(),
            },
        );
    }
    let ctx = Arc::new(Context {
        broker: broker.clone(),
        groups: groups.clone(),
        txns: txns.clone(),
        metrics,
        controller: controller.clone(),
        backoff: crate::error_backoff::ErrorBackoff::new(),
        fetch_sessions: Default::default(),
        scram,
        acl,
        quotas,
        oauth,
    });
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    tracing::info!(
        listener = %broker.config.listener,
        node_id = broker.config.node_id,
        data = ?broker.config.log_dir,
        "strata broker ready"
    );
    println!("strata: listening on {}", broker.config.listener);
    for (_, b) in listeners.iter().skip(1) {
        println!(
            "strata: listening on {} ({}, {})",
            b.listener.bind,
            b.listener.name,
            b.listener.protocol.name()
        );
    }
    if let Some(l) = metrics_listener {
        tracing::info!(addr = ?l.local_addr().ok(), "metrics endpoint at /metrics");
        tokio::spawn(crate::metrics::serve(l, ctx.clone(), shutdown_rx.clone()));
    }
    if let Some(l) = console_listener {
        // The console looks at the cluster as a client of this broker's inter-broker
        // listener, with this broker's own credentials there.
        let config = &broker.config;
        let link = crate::cluster::link::LinkSecurity::inter_broker(config)
            .map_err(|e| anyhow::anyhow!("console: {e}"))?;
        let mut client = crate::admin::client::AdminClient::new(
            &config.inter_broker_endpoint(),
            link,
            "strata-console",
        );
        // A look may not wait on one slow answer (a coordinator loading its groups, say)
        // longer than a few poll intervals.
        client.set_timeout(Duration::from_millis(
            config.console_poll_interval_ms.max(2000),
        ));
        let tls = if config.console_ssl {
            let settings = crate::tls::SslSettings {
                client_auth: crate::tls::ClientAuth::None,
                ..config.ssl.clone()
            };
            Some(Arc::new(
                crate::tls::ReloadingAcceptor::new(settings)
                    .map_err(|e| anyhow::anyhow!("console.ssl.enabled: {e}"))?,
            ))
        } else {
            None
        };
        let at = l.local_addr().ok();
        let scheme = if tls.is_some() { "https" } else { "http" };
        tracing::info!(addr = ?at, "web console at {scheme}://{}/", at.map_or(String::new(), |a| a.to_string()));
        tokio::spawn(crate::console::serve(
            l,
            tls,
            client,
            Duration::from_millis(config.console_poll_interval_ms),
            shutdown_rx.clone(),
        ));
    }
    // Transactions past their timeout are aborted.
    {
        let txns = txns.clone();
        let mut stop = shutdown_rx.clone();
        let every = Duration::from_millis(broker.config.transaction_abort_interval_ms);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = tick.tick() => txns.abort_timed_out().await,
                    _ = async { let _ = stop.wait_for(|s| *s).await; } => return,
                }
            }
        });
    }
    // Session expiry and retention.
    {
        let groups = groups.clone();
        let mut stop = shutdown_rx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tokio::select! {
                    _ = tick.tick() => groups.expire_sessions(),
                    _ = async { let _ = stop.wait_for(|s| *s).await; } => return,
                }
            }
        });
    }
    {
        let broker = broker.clone();
        let mut stop = shutdown_rx.clone();
        let every = Duration::from_millis(broker.config.retention_check_interval_ms);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        let b = broker.clone();
                        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
                        let _ = tokio::task::spawn_blocking(move || b.run_cleanup(now)).await;
                    }
                    _ = async { let _ = stop.wait_for(|s| *s).await; } => return,
                }
            }
        });
    }

    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut connections = tokio::task::JoinSet::new();
    // One accept task per listener, handing connections to this loop.
    let (accepted_tx, mut accepted_rx) = tokio::sync::mpsc::channel(64);
    // A renewed certificate is picked up without a restart, by every acceptor.
    let mut watched: Vec<Arc<crate::tls::ReloadingAcceptor>> = Vec::new();
    for tls in listeners.iter().filter_map(|(_, b)| b.tls.clone()) {
        if !watched.iter().any(|w| Arc::ptr_eq(w, &tls)) {
            watched.push(tls);
        }
    }
    let _tls_watch: Vec<_> = watched
        .iter()
        .map(|tls| tls.watch(ctx.broker.config.ssl_reload_interval, ctx.metrics.clone()))
        .collect();
    let limits = Arc::new(crate::connection_limits::ConnectionLimits::new(
        ctx.broker.config.max_connections,
        ctx.broker.config.max_connections_per_ip,
        ctx.broker.config.max_connections_per_ip_overrides.clone(),
    ));
    let mut acceptors = tokio::task::JoinSet::new();
    // KIP-612: new connections beyond the broker-wide rate wait before they are served.
    let creation = Arc::new(crate::cluster::throttle::Throttle::default());
    let creation_rate = ctx.broker.config.max_connection_creation_rate;
    // A cluster's inter-broker listener is protected: neither the total limit nor the
    // creation rate applies to it (clients cannot starve replication).
    let inter_broker = ctx
        .broker
        .cluster
        .is_some()
        .then(|| ctx.broker.config.inter_broker_listener_name());
    let protected =
        move |b: &crate::listener::Bound| inter_broker.as_deref() == Some(b.listener.name.as_str());
    for (tcp, bound) in listeners {
        let tx = accepted_tx.clone();
        let exempt = protected(&bound);
        let creation = creation.clone();
        let metrics = ctx.metrics.clone();
        acceptors.spawn(async move {
            loop {
                match tcp.accept().await {
                    Ok((stream, _)) => {
                        if exempt {
                            if tx.send((stream, bound.clone())).await.is_err() {
                                return;
                            }
                            continue;
                        }
                        if let Some(wait) = creation.delay(creation_rate) {
                            metrics.connections_creation_throttled.inc();
                            tokio::time::sleep(wait).await;
                        }
                        creation.record(creation_rate, 1);
                        if tx.send((stream, bound.clone())).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(listener = %bound.listener.name, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        });
    }
    drop(accepted_tx);
    loop {
        tokio::select! {
            Some((stream, bound)) = accepted_rx.recv() => {
                let Some(permit) = admit(&ctx, &limits, &stream, protected(&bound)) else {
                    continue;
                };
                let serve = crate::connection::serve(ctx.clone(), stream, bound, shutdown_rx.clone());
                connections.spawn(async move {
                    serve.await;
                    drop(permit);
                });
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = sigterm.recv() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    if broker.cluster.is_some() {
        tracing::info!("controlled shutdown: moving leaderships away");
        crate::cluster::membership::controlled_shutdown(&broker).await;
    }
    tracing::info!("shutting down: no new connections; finishing in-flight requests");
    acceptors.abort_all();
    while acceptors.join_next().await.is_some() {}
    drop(accepted_rx);
    // Connections finish the request they are handling, then stop reading.
    let _ = shutdown_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    tokio::task::spawn_blocking(move || {
        broker.shutdown();
        if let Some(c) = controller {
            c.stop();
        }
    })
    .await?;
    Ok(())
}
