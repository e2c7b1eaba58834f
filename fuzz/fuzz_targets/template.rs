//! Mapping templates as an operator may write them, compiled and rendered against fixed hires.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use provisioner::hire::template::Template;
use provisioner::hire::Hire;

/// Hires from the docs and tests: plain, Unicode with apostrophes and symbols, and sparse.
static HIRES: LazyLock<Vec<Hire>> = LazyLock::new(|| {
    [
        r#"{"event_id": "hire-000731", "type": "hire", "tenant": "acme",
            "employee": {"id": "000731", "first_name": "Zoë", "last_name": "O'Brien-Smith",
                         "email": "zoe.obrien-smith@acme.example", "department": "Support", "location": "HQ",
                         "extension": "+1 (858) 555-1731", "start_date": "2026-12-01"}}"#,
        r#"{"event_id": "e.1", "type": "hire", "tenant": "acme",
            "employee": {"id": "7", "first_name": "王 🙂 伟", "last_name": "Nguyễn\u00a0Đặng‐Ǆ", "location": " - "}}"#,
    ]
    .iter()
    .map(|json| match provisioner::hire::decode(json.as_bytes()) {
        Ok(provisioner::hire::PersonEvent::Hire(hire)) => hire,
        other => panic!("the fixed hires are valid hires: {other:?}"),
    })
    .collect()
});

fuzz_target!(|data: &[u8]| {
    let source = String::from_utf8_lossy(data);
    let Ok(template) = Template::parse(&source, &[]) else { return };
    assert_eq!(template.source(), source);
    for hire in HIRES.iter() {
        let _ = template.render(hire);
    }
});
