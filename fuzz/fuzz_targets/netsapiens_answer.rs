//! NetSapiens answers (status, headers, JSON or not) through the create, lookup and token
//! readers, and every user a lookup finds through the comparison the adapter makes next.
#![no_main]

use std::sync::LazyLock;

use http::StatusCode;
use libfuzzer_sys::fuzz_target;
use provisioner::vendors::netsapiens::account::DomainNotFound;
use provisioner::vendors::netsapiens::response::{self, Answer};
use provisioner::vendors::netsapiens::{Domain, NewUser};

static USER: LazyLock<NewUser> = LazyLock::new(|| {
    NewUser::parse(&provisioner_fuzz::job(provisioner_fuzz::NETSAPIENS_JOB).user)
        .expect("the example user is valid for NetSapiens")
});
static DOMAIN: LazyLock<Domain> = LazyLock::new(|| Domain::parse("acme.example").expect("a valid domain"));

fuzz_target!(|data: &[u8]| {
    let answer = provisioner_fuzz::http_answer(data);
    let status = StatusCode::from_u16(answer.status).expect("http_answer keeps statuses in 100..=999");
    let a = Answer { status, headers: &answer.headers, body: answer.body };
    let (user, domain) = (&*USER, &*DOMAIN);
    for policy in [DomainNotFound::Auth, DomainNotFound::Transient] {
        let _ = response::interpret_create(&a, domain, user.user(), policy);
        if let Ok(Some(found)) = response::interpret_lookup(&a, domain, user.user(), policy) {
            let _ = found.differences(user);
            let _ = response::reconcile(domain, user, &found);
        }
    }
    if let Ok(t) = response::token(&a) {
        assert!(t.expires_in.is_none_or(|d| d <= response::TOKEN_LIFETIME_CEILING));
    }
});
