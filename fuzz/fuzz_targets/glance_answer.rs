//! Glance answers (XML, possibly hostile) through the create and lookup readers, and every
//! user a lookup finds through the comparison the adapter makes next.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use provisioner::vendors::glance::fields::{NewUser, Rules};
use provisioner::vendors::glance::response::{self, CreateAnswer, Markers};

static USER: LazyLock<NewUser> = LazyLock::new(|| {
    NewUser::parse(&provisioner_fuzz::job(provisioner_fuzz::GLANCE_JOB).user, &Rules::default())
        .expect("the example user is valid for Glance")
});
static MARKERS: LazyLock<Markers> = LazyLock::new(Markers::default);

fuzz_target!(|data: &[u8]| {
    let answer = provisioner_fuzz::http_answer(data);
    let body = String::from_utf8_lossy(answer.body);
    let user = &*USER;
    match response::interpret_create(answer.status, &answer.headers, &body, &MARKERS, user) {
        CreateAnswer::Created(r) => assert!(!r.existing),
        CreateAnswer::Unrecognised { candidate, excerpt } => {
            assert!(!candidate.existing);
            assert!(excerpt.chars().count() <= 201, "an excerpt is bounded");
        }
        CreateAnswer::AlreadyExists { .. } | CreateAnswer::AudioFailed { .. } | CreateAnswer::Failed(_) => {}
    }
    if let Ok(found) = response::interpret_lookup(answer.status, &answer.headers, &body, &MARKERS, &user.echoes()) {
        for f in &found {
            let _ = response::difference(user, f);
            let _ = response::reconcile(user, f);
            let _ = response::existing_receipt(user, f);
        }
    }
});
