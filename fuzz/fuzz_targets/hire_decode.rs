//! Person event bodies (hire, update, leave, rehire) through the decoder, and every event
//! through the example tenant mapping and a person's links: template rendering and the
//! vendors' field rules on hostile names.
#![no_main]

use std::sync::LazyLock;

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use provisioner::config::TopologySettings;
use provisioner::hire::{Mapper, PersonEvent};
use provisioner::ledger::Link;

static MAPPER: LazyLock<Mapper> =
    LazyLock::new(|| Mapper::new(&provisioner_fuzz::mapping_settings()).expect("the example mapping compiles"));
static TOPOLOGY: LazyLock<TopologySettings> = LazyLock::new(TopologySettings::default);
static LINKS: LazyLock<Vec<Link>> = LazyLock::new(provisioner_fuzz::links);

fuzz_target!(|data: &[u8]| {
    let Ok(event) = provisioner::hire::decode(data) else { return };
    // A fixed clock keeps a crash reproducible.
    let now = Utc.with_ymd_and_hms(2026, 11, 22, 9, 30, 0).unwrap();
    let jobs = match &event {
        PersonEvent::Hire(hire) if hire.rehire => MAPPER.derive_rehire(hire, &LINKS, now).map(|d| d.jobs),
        PersonEvent::Hire(hire) => MAPPER.derive(hire, now),
        PersonEvent::Update(update) => MAPPER.derive_update(update, &LINKS, now).map(|d| d.jobs),
        PersonEvent::Leave(leave) => MAPPER.derive_leave(leave, &LINKS, now).map(|d| d.jobs),
    };
    let Ok(jobs) = jobs else { return };
    for j in &jobs {
        let _ = j.redacted();
        let _ = j.outbound(&TOPOLOGY, Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
    }
});
