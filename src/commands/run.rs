//! `provisioner run`: the worker, with its admin port.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::admin::{self, Health};
use crate::config::Settings;
use crate::metrics::Metrics;
use crate::pipeline::Pipeline;
use crate::vendors::build_adapters;
use crate::worker::Worker;

/// Runs the worker until `shutdown` is cancelled and the drain is over.
pub async fn run(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<()> {
    // Building the adapters resolves every secret and checks every account now: a missing
    // or wrong one stops start-up, naming its key.
    let _ = settings.amqp_uris()?;
    let metrics = Metrics::new();
    let pipeline = Arc::new(Pipeline::new(&settings, build_adapters(&settings)?, &metrics));
    let health = Health::default();
    health.watch_circuits(pipeline.circuits());
    let admin_stop = CancellationToken::new();
    let (addr, admin) =
        admin::serve(settings.admin.listen, settings.http.clone(), metrics.clone(), health.clone(), admin_stop.clone())
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on admin.listen = {}: {e}", settings.admin.listen))?;
    tracing::info!(admin = %addr, broker = %settings.amqp.redacted(), accounts = settings.accounts.len(), "provisioner starting");
    let settings = Arc::new(settings);
    // The intake stops taking hires as soon as shutdown begins; requests in flight finish.
    let intake = crate::hire::intake::serve(settings.clone(), shutdown.clone()).await?;
    if let Some((addr, _)) = &intake {
        tracing::info!(intake = %addr, "hire intake listening on POST /v1/hires");
    }
    let result = Worker::new(settings, pipeline, metrics, health).run(shutdown).await;
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
