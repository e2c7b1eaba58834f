//! Hire event bodies through the decoder, and every hire through the example tenant mapping:
//! template rendering and the vendors' field rules on hostile names.
#![no_main]

use std::sync::LazyLock;

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use provisioner::config::TopologySettings;
use provisioner::hire::Mapper;

static MAPPER: LazyLock<Mapper> =
    LazyLock::new(|| Mapper::new(&provisioner_fuzz::mapping_settings()).expect("the example mapping compiles"));
static TOPOLOGY: LazyLock<TopologySettings> = LazyLock::new(TopologySettings::default);

fuzz_target!(|data: &[u8]| {
    let Ok(hire) = provisioner::hire::decode(data) else { return };
    // A fixed clock keeps a crash reproducible.
    let now = Utc.with_ymd_and_hms(2026, 11, 22, 9, 30, 0).unwrap();
    let Ok(jobs) = MAPPER.derive(&hire, now) else { return };
    for j in &jobs {
        let _ = j.redacted();
        let _ = j.outbound(&TOPOLOGY, Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
    }
});
