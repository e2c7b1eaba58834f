//! Seeds a dead-letter queue with N synthetic dead letters, for measuring `dlq` commands:
//! `cargo run --release --example seed_dlq -- CONFIG_DIR N`.

use provisioner::config::{Settings, Sources};
use provisioner::contract::VendorKey;
use provisioner::transport::headers as h;
use provisioner::transport::rabbitmq::{self, ConfirmPublisher};
use provisioner::transport::{Headers, Outbound, OutboundKind, Publisher};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(n)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: seed_dlq CONFIG_DIR N");
    };
    let n: usize = n.parse()?;
    let settings = Settings::load(&Sources::dir(dir))?;
    let conn = rabbitmq::connect(&settings).await?;
    let ch = rabbitmq::confirm_channel(&conn).await?;
    rabbitmq::declare(&ch, &settings).await?;
    let publisher = ConfirmPublisher::new(ch);
    let vendors = VendorKey::ALL;
    let started = std::time::Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let msgs: Vec<Outbound> = chunk
            .iter()
            .map(|i| {
                let vendor = vendors[i % 3];
                let job = provisioner::pipeline::sample_job(
                    &format!("seed-{i:07}"),
                    vendor,
                    "acme",
                    &format!("{}", 1000 + i),
                );
                let mut headers = Headers::new();
                h::set_text(&mut headers, h::REASON, ["auth", "rejected", "unavailable"][i % 3]);
                h::set_text(&mut headers, h::JOB_ID, format!("seed-{i:07}"));
                h::set_text(&mut headers, h::VENDOR, vendor.as_str());
                h::set_text(&mut headers, h::ACCOUNT, "acme");
                h::set_text(&mut headers, h::ERROR_MESSAGE, "seeded for a measurement");
                h::set_text(&mut headers, h::FIRST_FAILED_AT, h::timestamp(chrono::Utc::now()));
                h::set_text(&mut headers, h::LAST_FAILED_AT, h::timestamp(chrono::Utc::now()));
                Outbound {
                    kind: OutboundKind::DeadLetter,
                    exchange: settings.topology.dead_exchange.clone(),
                    routing_key: format!("create_user.{vendor}"),
                    body: job.to_string().into_bytes(),
                    message_id: Some(format!("seed-{i:07}")),
                    content_type: Some("application/json".into()),
                    timestamp: Some(chrono::Utc::now().timestamp() as u64),
                    headers,
                }
            })
            .collect();
        let confirms = futures_util::future::join_all(msgs.iter().map(|m| publisher.publish(m))).await;
        anyhow::ensure!(confirms.iter().all(Result::is_ok), "a seeded message was not confirmed");
    }
    eprintln!("seeded {n} dead letters in {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}
