//! ClientToolbox answers (XML or JSON, any status) through the body reader, the create reader
//! and both lookup calls, and every user a lookup finds through the comparison the adapter
//! makes next. Whatever comes back, no error message may carry one of the call's secrets.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use provisioner::vendors::clienttoolbox::account::{Classifier, LookupMethod};
use provisioner::vendors::clienttoolbox::response::{self, Lookup};
use provisioner::vendors::clienttoolbox::NewUser;
use provisioner::vendors::VendorError;

static USER: LazyLock<NewUser> = LazyLock::new(|| {
    NewUser::parse(&provisioner_fuzz::job(provisioner_fuzz::CLIENTTOOLBOX_JOB).user)
        .expect("the example user is valid for ClientToolbox")
});
static CLASSIFIER: LazyLock<Classifier> = LazyLock::new(Classifier::default);
/// The caller's password, the new user's password and PIN: what the adapter scrubs.
const SECRETS: &[&str] = &["sandbox-password", "S3cure!pass", "4321"];
const WIRE_USER_NAME: &str = "jdoe";

fn no_secret_in(e: &VendorError) {
    for s in SECRETS {
        assert!(!e.message.contains(s), "a secret reached an error message: {:?}", e.message);
    }
}

fuzz_target!(|data: &[u8]| {
    let answer = provisioner_fuzz::http_answer(data);
    let (user, cls) = (&*USER, &*CLASSIFIER);
    let echoes = user.echoes();
    let _ = response::read_answer(answer.body);
    let created =
        response::interpret_create(answer.status, &answer.headers, answer.body, cls, WIRE_USER_NAME, SECRETS, &echoes);
    if let Err(e) = &created {
        no_secret_in(e);
    }
    for method in [LookupMethod::UserInfo, LookupMethod::UsersList, LookupMethod::None] {
        let lookup = response::interpret_lookup(
            method,
            answer.status,
            &answer.headers,
            answer.body,
            cls,
            WIRE_USER_NAME,
            SECRETS,
            &echoes,
        );
        match lookup {
            Ok(Lookup::Found(found)) => {
                assert!(found.user_name.eq_ignore_ascii_case(WIRE_USER_NAME));
                let _ = response::reconcile(&found, user, WIRE_USER_NAME);
            }
            Ok(Lookup::Unsupported(reason)) => {
                for s in SECRETS {
                    assert!(!reason.contains(s), "a secret reached a lookup's reason: {reason:?}");
                }
            }
            Ok(Lookup::Absent) => {}
            Err(e) => no_secret_in(&e),
        }
    }
});
