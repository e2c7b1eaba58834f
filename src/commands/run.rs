//! `provisioner run`: the worker, with its admin port.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::admin::{self, Health};
use crate::config::Settings;
use crate::metrics::Metrics;
use crate::pipeline::Pipeline;
use crate::shared_limits::RedisLink;
use crate::vendors::build_adapters;
use crate::worker::Worker;

/// Runs the worker until `shutdown` is cancelled and the drain is over.
pub async fn run(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    // Building the adapters resolves every secret and checks every account now: a missing
    // or wrong one stops start-up, naming its key.
    let _ = settings.amqp_uris()?;
    let metrics = Metrics::new();
    // Not connected yet: a ledger that is down at start-up must not stop the worker.
    let ledger = crate::ledger::from_settings(&settings.ledger)?;
    let health = Health::default();
    let link = match settings.redis_url()? {
        Some(url) => {
            let link = RedisLink::start(&url, &settings.rate_limit).map_err(anyhow::Error::msg)?;
            // Redis answers in a few milliseconds when it is there; when it is not, the worker
            // starts anyway on its local share rather than wait for it.
            if !link.wait_up(settings.rate_limit.lease_ttl.min(Duration::from_secs(5))).await {
                tracing::warn!("Redis does not answer yet: starting on each account's local share of its limits");
            }
            health.watch_limits(link.clone());
            mirror_link(&link, &metrics);
            Some(link)
        }
        None => None,
    };
    let pipeline = Arc::new(Pipeline::with_shared_limits(
        &settings,
        build_adapters(&settings)?,
        &metrics,
        link.as_ref(),
        ledger.clone(),
    ));
    health.watch_circuits(pipeline.circuits());
    let safeguard = pipeline.safeguard();
    health.watch_safeguard(safeguard.clone());
    let admin_stop = CancellationToken::new();
    if let Some(ledger) = &ledger {
        if let Err(e) = ledger.ready().await {
            tracing::error!(error = %e, "the ledger is down at start-up; jobs that need it wait, the rest go on");
        }
        tokio::spawn(admin::watch_ledger(ledger.clone(), health.clone(), metrics.clone(), admin_stop.clone()));
    }
    let (addr, admin) =
        admin::serve(settings.admin.listen, settings.http.clone(), metrics.clone(), health.clone(), admin_stop.clone())
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on admin.listen = {}: {e}", settings.admin.listen))?;
    tracing::info!(admin = %addr, broker = %settings.amqp.redacted(), accounts = settings.accounts.len(), "provisioner starting");
    // One read before the worker consumes, so a restarted replica holds the removals of an
    // account whose held queue is not empty from its first job; then one every
    // safeguard.refresh.
    let mut held_queues = crate::safeguard::Refresher::new(safeguard, &settings, ledger.clone(), metrics.clone());
    if let Err(e) = held_queues.refresh().await {
        tracing::info!(error = %e, "the held queues could not be read at start-up; the safeguard reads them again shortly");
    }
    tokio::spawn(held_queues.watch(admin_stop.clone()));
    let settings = Arc::new(settings);
    // The intake stops taking hires as soon as shutdown begins; requests in flight finish.
    let intake = crate::hire::intake::serve(settings.clone(), shutdown.clone()).await?;
    if let Some((addr, _)) = &intake {
        tracing::info!(intake = %addr, "hire intake listening on POST /v1/hires");
    }
    let result = Worker::new(settings, pipeline, metrics, health).with_ledger(ledger).run(shutdown).await;
    if let Some((_, handle)) = intake {
        let _ = handle.await;
    }
    // The admin port outlives the drain so liveness probes keep passing during it.
    admin_stop.cancel();
    let _ = admin.await;
    result?;
    tracing::info!("provisioner stopped");
    Ok(())
}

/// Keeps `provisioner_limits_shared` equal to the link's state for the life of the process.
fn mirror_link(link: &RedisLink, metrics: &Metrics) {
    let gauge = metrics.limits_shared.with_label_values(&["redis"]);
    let mut changes = link.subscribe();
    gauge.set(i64::from(*changes.borrow_and_update()));
    tokio::spawn(async move {
        while changes.changed().await.is_ok() {
            gauge.set(i64::from(*changes.borrow_and_update()));
        }
    });
}
